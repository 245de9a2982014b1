"""Mail with an attachment, received as the daemon does: for the [storage] files tests,
and for the subprocess that crashes between writing a file and committing its row."""

from __future__ import annotations

from email.message import EmailMessage

from mailbridge.adapters.imap import FetchedMessage
from mailbridge.inbound.fetch import store_raw
from mailbridge.inbound.process import process_pending
from tests.support.sla_world import World

PDF = b"%PDF-1.4 the same invoice, sent by two customers\n" * 50


def letter(sender: str, subject: str, attachment: bytes = PDF) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@shop.example", subject
    msg["Message-ID"] = f"<{abs(hash((sender, subject)))}@customer.example>"
    msg.set_content(f"Please see the attachment. {subject}\n")
    # Hostile: the name must never reach a path.
    msg.add_attachment(attachment, "application", "pdf", filename="../../etc/passwd")
    return msg.as_bytes()


def receive(world: World, raw: bytes) -> None:
    """As the daemon does: fetch stores the raw mail, processing makes the ticket."""
    world._uid += 1
    mailbox = world.app.config.mailbox[0]
    store_raw(world.app, mailbox, 1, [FetchedMessage(world._uid, raw, world.now)], world._uid)
    assert process_pending(world.app).failed == 0
