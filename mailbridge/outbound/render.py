"""A mail queued as a recipe, rendered when it is sent.

Queueing an acknowledgement, a notification or an escalation writes the outbox row only:
the template's name, language and mailbox, its values (plain data, already cut to size
and checked, as the sandbox would), and every header decided at queue time (From, To, Cc,
Reply-To, threading, Date; the Message-ID is the row's). The sender renders the template
and composes the MIME message from that, through `compose`, the one path for both, so an
unchanged template gives the very bytes queue time would have given, and an edited one
applies to mail not yet sent. Once rendered for sending, the row keeps its bytes and drops
its recipe: every retry sends the same mail, and what reads sent mail reads bytes.

A mail that carries attachments stored with the ticket's articles (a staff notification
with the customer's files) keeps, in its recipe, each one's name, type and sha256 instead
of its bytes; the sender reads the bytes from whichever attachment row still holds them
(`stored_attachments`), so queueing writes a row of a few hundred bytes whatever the mail
carries (docs/architecture.md, "6. Queue").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from mailbridge.adapters.template_context import plain_context
from mailbridge.app import App
from mailbridge.core.compose import Outgoing, build_message
from mailbridge.core.compose import tag_subject as add_tag
from mailbridge.core.message import Address, Attachment
from mailbridge.db.blobs import BlobError
from mailbridge.db.models import AttachmentRecord, Outbox
from mailbridge.db.stored_bytes import attachment_bytes, attachment_held
from mailbridge.errors import TemplateError

RECIPE_VERSION = 1

log = logging.getLogger(__name__)


class RecipeError(TemplateError):
    """A row's recipe that no longer renders: a value its template needs is missing or of
    another shape (the live template set itself is always valid)."""


def make_recipe(
    *,
    template: str,
    language: str,
    mailbox: str,
    signed: bool,
    context: Mapping[str, object],
    headers: Outgoing,
    tag: str,
) -> dict[str, Any]:
    """The JSON the row keeps. `context` is checked and copied to plain data here, so a
    value that could not be rendered fails the change that queues it, as before; `headers`
    holds everything but the words (its subject, text and html are ignored)."""
    return {
        "v": RECIPE_VERSION,
        "template": template,
        "language": language,
        "mailbox": mailbox,
        "signed": signed,
        "context": plain_context(context),
        "tag": tag,
        "from": _pair(headers.from_),
        "to": [_pair(a) for a in headers.to],
        "cc": [_pair(a) for a in headers.cc],
        "reply_to": [_pair(a) for a in headers.reply_to],
        "in_reply_to": headers.in_reply_to,
        "references": list(headers.references),
        "auto_submitted": headers.auto_submitted,
        "extra_headers": [list(h) for h in headers.extra_headers],
        "date": headers.date.isoformat() if headers.date else None,
    }


def recipe_attachments(attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """A recipe's `attachments`: what composing needs of each attachment but its bytes,
    which attachment rows hold, and the sha256 that finds them (`stored_attachments`)."""
    return [
        {
            "sha256": hashlib.sha256(a.payload).hexdigest(),
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "inline": a.inline,
            "content_id": a.content_id,
        }
        for a in attachments
    ]


def compose(
    app: App,
    recipe: Mapping[str, Any],
    message_id: str,
    attachments: tuple[Attachment, ...] = (),
) -> bytes:
    """Render the recipe's template with the live templates and build the message
    (with `attachments`: those given when the mail is rendered as it is queued, or those
    `stored_attachments` read for its recipe).

    Raises RecipeError when the template cannot be rendered from the stored values."""
    try:
        if recipe.get("v") != RECIPE_VERSION:
            raise ValueError(f"recipe version {recipe.get('v')!r}")
        rendered = app.templates.for_mailbox(recipe["mailbox"]).render(
            recipe["template"],
            recipe["context"],
            recipe["language"],
            signed=recipe["signed"],
        )
        date = recipe["date"]
        return build_message(
            Outgoing(
                from_=_address(recipe["from"]),
                to=_addresses(recipe["to"]),
                cc=_addresses(recipe["cc"]),
                subject=add_tag(rendered.subject, recipe["tag"]),
                text=rendered.text,
                html=rendered.html,
                message_id=message_id,
                in_reply_to=recipe["in_reply_to"],
                references=tuple(recipe["references"]),
                auto_submitted=recipe["auto_submitted"],
                reply_to=_addresses(recipe["reply_to"]),
                attachments=attachments,
                extra_headers=tuple((str(k), str(v)) for k, v in recipe["extra_headers"]),
                date=datetime.fromisoformat(date) if date else None,
            )
        )
    except RecipeError:
        raise
    except (TemplateError, KeyError, TypeError, ValueError) as exc:
        what = recipe.get("template", "?") if isinstance(recipe, Mapping) else "?"
        raise RecipeError(f"cannot render template {what!r}: {exc}") from exc


def outbox_bytes(app: App, row: Outbox) -> bytes:
    """The mail a row sends: its bytes, rendered from its recipe if it has not been yet.
    What must show or search a pending mail (export, tests) reads it through here."""
    if row.recipe is None:
        return row.raw
    return compose(app, row.recipe, row.message_id, stored_attachments(app, row))


def stored_attachments(app: App, row: Outbox) -> tuple[Attachment, ...]:
    """The attachments the row's recipe names, their bytes read from any attachment row
    that still holds them (the same bytes, by their sha256). One whose bytes no row holds
    any more (a retention purge, an erasure) is left out, with a warning: the mail goes
    without it. A stored file that is missing or damaged raises RecipeError, so the row
    fails naming it (`outbox retry` once the files store is mended), never an attachment
    sent empty."""
    entries = (row.recipe or {}).get("attachments") or ()
    if not entries:
        return ()
    try:
        wanted = [(str(e["sha256"]), e) for e in entries]
        with app.sessions() as session:
            # One row per file, however many mails carried the same bytes (a sender can
            # send one file a thousand times): only its first holder is loaded.
            first = (
                select(func.min(AttachmentRecord.id))
                .where(AttachmentRecord.sha256.in_({sha for sha, _ in wanted}), attachment_held())
                .group_by(AttachmentRecord.sha256)
            )
            query = select(AttachmentRecord).where(AttachmentRecord.id.in_(first))
            holders = {held.sha256: held for held in session.scalars(query)}
            found: list[Attachment] = []
            for sha, entry in wanted:
                record = holders.get(sha)
                payload = attachment_bytes(session, record) if record is not None else None
                if payload is None:
                    log.warning(
                        "outbox %s: attachment %r is no longer stored (purged or erased); "
                        "the mail goes without it",
                        row.id,
                        entry["filename"],
                    )
                    continue
                found.append(
                    Attachment(
                        filename=str(entry["filename"]),
                        content_type=str(entry["content_type"]),
                        size=len(payload),
                        inline=bool(entry["inline"]),
                        content_id=entry["content_id"],
                        payload=payload,
                    )
                )
    except BlobError as exc:
        raise RecipeError(f"cannot read an attachment of outbox row {row.id}: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise RecipeError(f"outbox row {row.id}: a recipe attachment lacks {exc}") from exc
    return tuple(found)


def _pair(address: Address) -> list[str]:
    return [address.name, address.address]


def _address(pair: Sequence[str]) -> Address:
    name, address = pair
    return Address(str(name), str(address))


def _addresses(pairs: Sequence[Sequence[str]]) -> tuple[Address, ...]:
    return tuple(_address(pair) for pair in pairs)
