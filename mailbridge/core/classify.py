"""Deciding what kind of mail a parsed message is, as a table of small named rules.

Each rule looks at one signal and names the kind it points to. `classify` runs every
rule, records all that matched, and takes the kind of the first match: the table is
ordered by precedence (loop > bounce > auto_reply > bulk), so our own mail coming
back is never mistaken for a bounce and a bounce never for an out-of-office. A rule of
kind NO_ACK names no kind: the mail stays a customer's, with its ticket, deadlines and
staff notification, and only the acknowledgement is withheld (a person's client that
marks its mail `Precedence: bulk`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mailbridge.core.compose import MESSAGE_ID_PREFIX
from mailbridge.core.message import ParsedMessage, Verdict


@dataclass(frozen=True)
class Identity:
    """Who we are, so our own mail can be recognised when it comes back."""

    own_addresses: frozenset[str] = frozenset()
    own_domains: frozenset[str] = frozenset()  # domains of the Message-IDs we generate
    loop_token: str = ""  # the value we put in X-Loop
    loop_tokens: frozenset[str] = frozenset()  # and each brand's (config/brands.py)


Check = Callable[[ParsedMessage, Identity], bool]

NO_ACK = "no_ack"  # the rule's "kind": a customer's mail, not acknowledged


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    check: Check


_DSN_BODY_RE = re.compile(
    r"delivery status notification|undeliverable|undelivered mail|delivery has failed"
    r"|mail delivery (?:failed|subsystem)|could not be delivered|returned mail"
    r"|delivery to the following recipient|permanent(?:ly)? (?:error|fatal)"
    r"|unzustellbar|non recapitabile|impossible de remettre|no se puede entregar",
    re.I,
)
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_DAEMON_RE = re.compile(r"^(?:mailer[-_.]?daemon|postmaster)(?:[+@]|$)", re.I)
_NOREPLY_RE = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|mailer[-_.]?daemon)(?:[+@.-]|$)",
    re.I,
)
# Reply and forward prefixes a client or a server may put before the auto phrase, in the
# languages we read: "Re: AW: Automatische Antwort: …", "R: Risposta automatica: …".
_REPLY_PREFIXES = r"(?:(?:re|aw|r|rif|sv|vs|fw|fwd|wg|tr|rv|enc)\s*(?:\[\d+\])?\s*:\s*)*"
# Labels an autoresponder puts before the original subject, or alone; a person asking
# about one ("Automatic reply not working") writes on, so a colon or the end must follow.
_AUTO_LABELS = (
    r"automatic reply|auto(?:matic)?[- ]?(?:reply|response)|autoreply|autoresponder|auto"
    r"|risposta automatica|messaggio automatico"  # it
    r"|automatische antwort"  # de
    r"|r[ée]ponse automatique"  # fr
    r"|respuesta autom[áa]tica"  # es
    r"|resposta autom[áa]tica|automatisch antwoord"  # pt, nl
)
# Out-of-office phrases, which only such replies begin with.
_AWAY_PHRASES = (
    r"out of (?:the )?office(?! hours)|away from (?:the |my )?office"  # en
    r"|fuori (?:ufficio|sede)|assente dall'ufficio|risposta di assenza"  # it
    r"|abwesenheitsnotiz|abwesenheitsmeldung|abwesend\s*:|nicht im b(?:ü|ue)ro"  # de
    r"|absente? du bureau|absence du bureau|message d'absence|r[ée]ponse d'absence"  # fr
    r"|fuera de (?:la )?oficina|mensaje de ausencia|ausente de la oficina"  # es
    r"|afwezig"  # nl
)
_AUTO_SUBJECT_RE = re.compile(
    rf"^\s*{_REPLY_PREFIXES}(?:(?:{_AUTO_LABELS})\s*(?::|$)|(?:{_AWAY_PHRASES})(?!\w))", re.I
)
_MDN_TYPE = "message/disposition-notification"
_SUPPRESS_VALUES = frozenset({"all", "oof", "autoreply"})
_LIST_PRECEDENCE = "list"
_BULK_PRECEDENCE = frozenset({"bulk", "junk"})
# Campaign tools stamp these; plain mail clients never do. Feedback-ID is left out on
# purpose: transactional mail services add it to one-to-one mail too.
_CAMPAIGN_HEADERS = ("x-campaign", "x-campaignid", "x-mc-user", "x-mailchimp-campaign")


def _sender(msg: ParsedMessage) -> str:
    return msg.from_.address if msg.from_ else ""


def _has(msg: ParsedMessage, name: str) -> bool:
    return name in msg.headers


def _content_type(msg: ParsedMessage) -> str:
    return (msg.header("content-type") or "").lower()


def _has_dsn_part(msg: ParsedMessage) -> bool:
    return any(att.content_type in _DSN_TYPES for att in msg.attachments)


def _dsn_looking(msg: ParsedMessage) -> bool:
    return _has_dsn_part(msg) or bool(_DSN_BODY_RE.search(f"{msg.subject}\n{msg.text[:4000]}"))


# --- loop: our own mail coming back ---------------------------------------------------


def own_loop_header(msg: ParsedMessage, identity: Identity) -> bool:
    tokens = {t.strip().lower() for t in (identity.loop_token, *identity.loop_tokens)} - {""}
    return any(v.strip().lower() in tokens for v in msg.headers.get("x-loop", ()))


def own_message_id(msg: ParsedMessage, identity: Identity) -> bool:
    # Only ids of our own form: staff mail servers stamp ids in the same domain too.
    local, _, domain = (msg.message_id or "").rpartition("@")
    return local.startswith(MESSAGE_ID_PREFIX) and domain.lower() in {
        d.lower() for d in identity.own_domains
    }


def own_sender(msg: ParsedMessage, identity: Identity) -> bool:
    sender = _sender(msg)
    return bool(sender) and sender in {a.lower() for a in identity.own_addresses}


# --- bounce: delivery status notifications ----------------------------------------------


def delivery_status_report(msg: ParsedMessage, identity: Identity) -> bool:
    content_type = _content_type(msg)
    return content_type.startswith("multipart/report") and "delivery-status" in content_type


def daemon_sender_with_dsn(msg: ParsedMessage, identity: Identity) -> bool:
    return bool(_DAEMON_RE.match(_sender(msg))) and _dsn_looking(msg)


def null_return_path_with_dsn(msg: ParsedMessage, identity: Identity) -> bool:
    paths = msg.headers.get("return-path", ())
    return any(p.strip() in ("<>", "") for p in paths) and bool(paths) and _dsn_looking(msg)


def _null_path(value: str) -> bool:
    return value.replace(" ", "").replace("\t", "") in ("<>", "")


# --- auto_reply: RFC 3834 and the vendor variants ---------------------------------------


def auto_submitted(msg: ParsedMessage, identity: Identity) -> bool:
    value = msg.header("auto-submitted")
    return value is not None and value.split(";")[0].strip().lower() not in ("no", "")


def x_autoreply(msg: ParsedMessage, identity: Identity) -> bool:
    return _has(msg, "x-autoreply") or _has(msg, "x-autorespond")


def auto_response_suppress(msg: ParsedMessage, identity: Identity) -> bool:
    values = (msg.header("x-auto-response-suppress") or "").lower().replace(";", ",")
    return any(v.strip() in _SUPPRESS_VALUES for v in values.split(","))


def exchange_rules_loop(msg: ParsedMessage, identity: Identity) -> bool:
    return _has(msg, "x-ms-exchange-inbox-rules-loop")


def precedence_auto_reply(msg: ParsedMessage, identity: Identity) -> bool:
    return (msg.header("precedence") or "").strip().lower() == "auto_reply"


def auto_reply_subject(msg: ParsedMessage, identity: Identity) -> bool:
    return bool(_AUTO_SUBJECT_RE.match(msg.subject))


def automated_address(address: str) -> bool:
    """A no-reply, mailer-daemon or postmaster address: nobody reads what is sent there."""
    return bool(_NOREPLY_RE.match(address) or _DAEMON_RE.match(address))


def noreply_sender(msg: ParsedMessage, identity: Identity) -> bool:
    return bool(_NOREPLY_RE.match(_sender(msg)))


def read_receipt(msg: ParsedMessage, identity: Identity) -> bool:
    """An MDN (RFC 8098). A `Disposition-Notification-To` header is not one: it asks for
    a receipt, and people's clients send it."""
    content_type = _content_type(msg)
    return (
        content_type.startswith("multipart/report") and "disposition-notification" in content_type
    ) or any(att.content_type == _MDN_TYPE for att in msg.attachments)


def null_return_path(msg: ParsedMessage, identity: Identity) -> bool:
    """The delivering MTA's Return-Path (the topmost; lower ones are the sender's to
    write) is null: RFC 5321 forbids answering such mail, which only machines send."""
    paths = msg.headers.get("return-path", ())
    return bool(paths) and _null_path(paths[0])


# --- bulk: lists, newsletters, campaigns -------------------------------------------------


def precedence_list(msg: ParsedMessage, identity: Identity) -> bool:
    return (msg.header("precedence") or "").strip().lower() == _LIST_PRECEDENCE


def list_id(msg: ParsedMessage, identity: Identity) -> bool:
    return _has(msg, "list-id")


def list_unsubscribe(msg: ParsedMessage, identity: Identity) -> bool:
    return _has(msg, "list-unsubscribe")


def list_post(msg: ParsedMessage, identity: Identity) -> bool:
    """RFC 2369's posting address: only a list manager writes it."""
    return _has(msg, "list-post")


def campaign_headers(msg: ParsedMessage, identity: Identity) -> bool:
    return any(_has(msg, name) for name in _CAMPAIGN_HEADERS)


# --- no_ack: a customer's mail that only looks like bulk --------------------------------


def precedence_bulk(msg: ParsedMessage, identity: Identity) -> bool:
    """`Precedence: bulk` or `junk` alone: some people's clients send it. With a list or
    campaign header beside it the bulk rules above decide; alone it only withholds the
    acknowledgement, as RFC 3834 asks of automatic responses."""
    return (msg.header("precedence") or "").strip().lower() in _BULK_PRECEDENCE


RULES: tuple[Rule, ...] = (
    Rule("own_loop_header", "loop", own_loop_header),
    Rule("own_message_id", "loop", own_message_id),
    Rule("own_sender", "loop", own_sender),
    Rule("delivery_status_report", "bounce", delivery_status_report),
    Rule("daemon_sender_with_dsn", "bounce", daemon_sender_with_dsn),
    Rule("null_return_path_with_dsn", "bounce", null_return_path_with_dsn),
    Rule("auto_submitted", "auto_reply", auto_submitted),
    Rule("x_autoreply", "auto_reply", x_autoreply),
    Rule("auto_response_suppress", "auto_reply", auto_response_suppress),
    Rule("exchange_rules_loop", "auto_reply", exchange_rules_loop),
    Rule("precedence_auto_reply", "auto_reply", precedence_auto_reply),
    Rule("auto_reply_subject", "auto_reply", auto_reply_subject),
    Rule("noreply_sender", "auto_reply", noreply_sender),
    Rule("read_receipt", "auto_reply", read_receipt),
    Rule("null_return_path", "auto_reply", null_return_path),
    Rule("precedence_list", "bulk", precedence_list),
    Rule("list_id", "bulk", list_id),
    Rule("list_unsubscribe", "bulk", list_unsubscribe),
    Rule("list_post", "bulk", list_post),
    Rule("campaign_headers", "bulk", campaign_headers),
    Rule("precedence_bulk", NO_ACK, precedence_bulk),
)


def classify(msg: ParsedMessage, identity: Identity) -> Verdict:
    """Run every rule; the first match in table order that names a kind decides, all
    matches are recorded, and NO_ACK matches on a customer's mail withhold its ack."""
    matched = [rule for rule in RULES if rule.check(msg, identity)]
    kinds = [rule.kind for rule in matched if rule.kind != NO_ACK]
    kind = kinds[0] if kinds else "customer"
    withheld = tuple(r.name for r in matched if r.kind == NO_ACK) if kind == "customer" else ()
    return Verdict(kind=kind, rules=tuple(rule.name for rule in matched), ack_withheld_by=withheld)
