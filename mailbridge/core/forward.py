"""Forwarded mail: find the customer's original in a staff member's forward. Pure functions.

A forward is either inline, under one of the separators the common mail clients write
(Gmail, Outlook, Thunderbird, Apple Mail; in English, Italian, German and French), followed
by a header block naming the original sender, or a `message/rfc822` attachment. The text
is the forwarder's and the original's author's: hostile. Every line is read with string
operations and bounded prefixes, no regular expression runs over the mail's text, and only
the first MAX_LINES lines are looked at, so time grows linearly with the mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from mailbridge.core.addresses import parse_address_list
from mailbridge.core.compose import can_write_address
from mailbridge.core.language import detect_language
from mailbridge.core.message import Address, Attachment, ParsedMessage, ParseLimits
from mailbridge.core.parse import normalize_subject, parse_message
from mailbridge.core.reply_trim import trim_reply

MAX_LINES = 2000  # lines searched for a separator; a forward starts near the top
_MAX_GAP = 3  # blank lines between a separator and its header block
_MAX_BLOCK = 12  # lines of one header block
_MAX_LABEL = 24  # characters before the colon of a header line
_MAX_VALUE = 2000  # characters of a header value read (a long To: list fits)
_MAX_MARKER = 80  # a separator line is short

# Separators written with dashes around a phrase ("-----Original Message-----").
DASHED: dict[str, str] = {
    "forwarded message": "gmail",
    "original message": "outlook",
    "messaggio inoltrato": "gmail",
    "messaggio originale": "outlook",
    "weitergeleitete nachricht": "gmail",
    "ursprüngliche nachricht": "outlook",
    "originalnachricht": "outlook",
    "message transféré": "gmail",
    "message d'origine": "outlook",
    "message original": "outlook",
}
# Apple Mail's line before the quoted original.
APPLE: tuple[str, ...] = (
    "begin forwarded message",
    "inizio messaggio inoltrato",
    "anfang der weitergeleiteten nachricht",
    "début du message réexpédié",
)
# Header labels in forwarded blocks, per field; Gmail mixes languages ("Da:" then "Date:").
LABELS: dict[str, str] = {
    **dict.fromkeys(("from", "da", "mittente", "von", "de"), "from"),
    **dict.fromkeys(
        ("date", "sent", "data", "inviato", "gesendet", "datum", "envoyé", "envoye"), "date"
    ),
    **dict.fromkeys(("subject", "oggetto", "betreff", "objet", "sujet"), "subject"),
    **dict.fromkeys(("to", "a", "an", "à", "pour", "destinatario", "per"), "to"),
    **dict.fromkeys(("cc", "kopie", "copie"), "cc"),
    **dict.fromkeys(("reply-to", "rispondi a", "antwort an", "répondre à"), "reply-to"),
    **dict.fromkeys(("bcc", "ccn", "organization", "organizzazione", "organisation"), "other"),
}
# Outer subjects that say "forward" (Outlook's "-----Original Message-----" and its bare
# header block are written for replies as well).
FORWARD_PREFIXES: tuple[str, ...] = ("fwd", "fw", "i", "inoltro", "wg", "tr", "rv", "enc")
_SPACES = " \t\u00a0"


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The customer's original found in a forward, and the forwarder's own lines above it.

    `form` names how it was found: "gmail", "outlook", "outlook-block", "apple",
    "thunderbird" (the dashed forms are told apart by their wording, not by client), or
    "rfc822" for an attached message."""

    form: str
    sender: Address
    subject: str
    text: str
    own_text: str
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    message: ParsedMessage | None = None  # the attached message itself (rfc822)


def find_forward(parsed: ParsedMessage, limits: ParseLimits | None = None) -> Forwarded | None:
    """The forwarded original in `parsed`, inline first, else an attached message; None
    when there is none, or when its sender also received this mail (a reply-all quoting
    them, not a forward to us)."""
    found = find_inline(parsed.text, parsed.subject, parsed.attachments)
    if found is None:
        found = find_attached(parsed, limits)
    if found is None:
        return None
    recipients = {a.address for a in (*parsed.to, *parsed.cc)}
    return None if found.sender.address in recipients else found


# --- inline -----------------------------------------------------------------------------


def find_inline(
    text: str, subject: str = "", attachments: Sequence[Attachment] = ()
) -> Forwarded | None:
    """An inline forward in `text`; `subject` (the forward's own) decides the forms that
    replies use too, `attachments` are the original's (clients carry them over)."""
    lines = text.splitlines()
    forwarded_subject = _says_forward(subject)
    for index, raw in enumerate(lines[:MAX_LINES]):
        form, block = _separator(raw), index + 1
        if form is None and _is_rule(raw):
            form = "outlook"
        elif form is None and index and not lines[index - 1].strip() and _opens_block(raw):
            form, block = "outlook-block", index  # the block starts on this very line
        if form is None or (form.startswith("outlook") and not forwarded_subject):
            continue
        found = _block_after(lines, block, form)
        if found is not None:
            own = "\n".join(lines[:index]).strip("\n")
            return replace(found, own_text=own, attachments=tuple(attachments))
    return None


def _separator(line: str) -> str | None:
    """The form a separator line names, or None."""
    bare = _unquoted(line).strip(_SPACES)
    if not bare or len(bare) > _MAX_MARKER:
        return None
    if bare.startswith("--"):
        phrase = bare.strip("-").strip(_SPACES).lower()
        form = DASHED.get(phrase)
        if form == "gmail" and bare.startswith("-------- ") and not bare.startswith("---------"):
            return "thunderbird"  # eight dashes and a space; Gmail writes ten
        return form
    if bare.endswith(":") and bare[:-1].strip(_SPACES).lower() in APPLE:
        return "apple"
    return None


def _opens_block(line: str) -> bool:
    """Can a bare header block (no separator) start with this line? Clients start it with
    From (Outlook), or with Subject or Date (some webmail: "Objet: …", "Date: …", "De: …")."""
    return _label(line) in ("from", "subject", "date")


def _is_rule(line: str) -> bool:
    """Outlook's line of underscores above the header block of a forward."""
    bare = line.strip(_SPACES)
    return 20 <= len(bare) <= _MAX_MARKER and not bare.strip("_")


def _says_forward(subject: str) -> bool:
    head = subject.lstrip(_SPACES)[:12].lower()
    word = head.partition(":")[0].strip(_SPACES)
    return ":" in head and word in FORWARD_PREFIXES


def _unquoted(line: str) -> str:
    """`line` without one level of "> " quoting."""
    stripped = line.lstrip(" ")
    if stripped.startswith(">"):
        return stripped[2:] if stripped.startswith("> ") else stripped[1:]
    return line


def _label(line: str) -> str | None:
    """The field a "Label: value" line names (LABELS), or None."""
    colon = line.find(":", 0, _MAX_LABEL + 1)
    if colon < 1:
        return None
    return LABELS.get(line[:colon].strip(_SPACES + "*").lower())


def _field(line: str) -> tuple[str, str] | None:
    name = _label(line)
    if name is None:
        return None
    value = line[line.find(":") + 1 :][:_MAX_VALUE]
    return name, value.strip(_SPACES + "*")


def _block_after(lines: list[str], start: int, form: str) -> Forwarded | None:
    """The header block that starts within _MAX_GAP blank lines of `start` and the text
    below it (the caller fills in the forwarder's own lines); None unless it names a
    sender with an address and at least one more field."""
    index = start
    while index < len(lines) and index - start < _MAX_GAP and not _unquoted(lines[index]).strip():
        index += 1
    if index >= len(lines):
        return None
    quoted = lines[index].lstrip(" ").startswith(">")

    def read(rows: list[str]) -> list[str]:
        return [_unquoted(line) if quoted else line for line in rows]

    fields: dict[str, str] = {}
    end = 0
    for line in read(lines[index : index + _MAX_BLOCK]):  # a failed try reads no further
        field = _field(line)
        if field is None:
            break
        fields.setdefault(*field)
        end += 1
    sender = sender_address(fields.get("from", ""))
    if sender is None or len(fields) < 2:  # From and one more
        return None
    if form == "outlook-block" and not {"date", "subject"} <= fields.keys():
        return None
    return Forwarded(
        form=form,
        sender=sender,
        subject=fields.get("subject", ""),
        text="\n".join(read(lines[index + end :])).strip("\n"),
        own_text="",
        to=_addresses(fields.get("to", "")),
        cc=_addresses(fields.get("cc", "")),
    )


def sender_address(value: str) -> Address | None:
    """The one mailbox a forwarded From line names ("Ada <ada@x>", "ada@x", Outlook's
    "Lovelace, Ada [mailto:ada@x]"); None unless it is one address mail can go to."""
    value = value.strip(_SPACES)
    mailto = value.rfind("[mailto:")
    if mailto >= 0 and value.endswith("]"):
        name = value[:mailto].strip(_SPACES + '"')
        spec = value[mailto + len("[mailto:") : -1].strip()
        value = f'"{name}" <{spec}>' if name and '"' not in name else f"<{spec}>"
    found = parse_address_list(value)
    if found.defects or len(found.mailboxes) != 1:
        return None
    mailbox = found.mailboxes[0]
    if not mailbox.address or "@" not in mailbox.address:
        return None
    if not can_write_address(mailbox.address):
        return None
    return Address(mailbox.name, mailbox.address)


def _addresses(value: str) -> tuple[Address, ...]:
    if not value:
        return ()
    found = parse_address_list(value)
    return tuple(Address(m.name, m.address) for m in found.mailboxes if m.address)


# --- attached -----------------------------------------------------------------------------


def find_attached(parsed: ParsedMessage, limits: ParseLimits | None = None) -> Forwarded | None:
    """The first attached message (`message/rfc822`, kept whole) with a sender, parsed by
    our own parser within `limits`; the attachments listed as its contents go with it."""
    for attachment in parsed.attachments:
        if attachment.content_type != "message/rfc822" or attachment.container is not None:
            continue
        if attachment.skipped or not attachment.payload:
            continue
        inner = parse_message(attachment.payload, limits)
        sender = inner.from_
        if sender is None or not sender.address or not can_write_address(sender.address):
            continue
        return Forwarded(
            form="rfc822",
            sender=Address(sender.name, sender.address),
            subject=inner.subject,
            text=inner.text,
            own_text=(parsed.reply_text or parsed.text).strip("\n"),
            to=inner.to,
            cc=inner.cc,
            attachments=inner.attachments,
            message=inner,
        )
    return None


# --- the original as a message ---------------------------------------------------------------


def original_message(found: Forwarded) -> ParsedMessage:
    """The original as the pipeline reads a customer's mail: its sender, subject, text and
    attachments. No Reply-To, no threading headers but an attached original's own ids,
    and of its headers only the Authentication-Results (the ones our trusted MTA may have
    added when it reached the staff member); an inline original brings no headers at all."""
    inner = found.message
    text = found.text
    reply_text = inner.reply_text if inner is not None else trim_reply(text)
    headers: dict[str, tuple[str, ...]] = {}
    if inner is not None and "authentication-results" in inner.headers:
        headers["authentication-results"] = inner.headers["authentication-results"]
    return ParsedMessage(
        message_id=inner.message_id if inner is not None else None,
        from_=found.sender,
        to=found.to,
        cc=found.cc,
        reply_to=(),
        subject=found.subject,
        date=inner.date if inner is not None else None,
        in_reply_to=inner.in_reply_to if inner is not None else None,
        references=inner.references if inner is not None else (),
        text=text,
        reply_text=reply_text,
        html=inner.html if inner is not None else None,
        attachments=found.attachments,
        language=detect_language(reply_text or text),
        defects=inner.defects if inner is not None else (),
        headers=headers,
        unread=inner.unread if inner is not None else (),
        sender_header="from",
    )


def ticket_subject(found: Forwarded, outer_subject: str) -> str:
    """The original's subject; without one, the forward's, its "Fwd:" taken off."""
    return normalize_subject(found.subject) or normalize_subject(outer_subject)


SAME_TEXT_CHARS = 200  # characters of words that tell a forwarded copy's text from others
_MIN_SAME_TEXT = 40  # fewer say too little ("Hi, thanks!") to call two mails the same
_READ_FOR_SAME = 4000  # characters of a text read for its start: bounded, whatever its size


def text_start(text: str) -> str:
    """The start of a mail's words, lower-cased, spacing and `>` quoting aside: what a
    forwarded copy shares with the original it copies, however the client rewrapped or
    quoted it; "" when too short to tell one mail from another."""
    words = " ".join(text[:_READ_FOR_SAME].replace(">", " ").split()).lower()
    start = words[:SAME_TEXT_CHARS]
    return start if len(start) >= _MIN_SAME_TEXT else ""


def same_start(one: str, other: str) -> bool:
    """Do two `text_start`s begin the same, over the shorter one? A forward may drop or add
    a line at the end of a short mail (a signature, a client's footer)."""
    shorter = min(len(one), len(other))
    return shorter >= _MIN_SAME_TEXT and one[:shorter] == other[:shorter]
