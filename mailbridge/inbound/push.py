"""Push delivery's storage: a mail an MTA hands in over LMTP becomes one inbound_message
row per mailbox its recipients reach, committed before the MTA hears 250
(service/lmtp_server.py answers). The rows go through the same insert as IMAP fetch
(inbound/fetch.py), so the same mail arriving both ways is stored once, and processing
takes it from there as it does any fetched mail.

Such a row has no IMAP folder: `folder` is LMTP_FOLDER, `uidvalidity` LMTP_UIDVALIDITY
(never an IMAP folder's) and `uid` a number read from the fingerprint, so the row's
unique (mailbox, folder, uidvalidity, uid) says the same as (fingerprint, mailbox). Nothing
moves or flags a server copy of it: only fetch does that, to the copies it fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from mailbridge.app import App
from mailbridge.core.envelope import trace_headers
from mailbridge.inbound.fetch import Origin, inbound_row, insert_new

LMTP_FOLDER = "(lmtp)"
LMTP_UIDVALIDITY = 0  # RFC 3501 makes an IMAP folder's nonzero
_UID_HEX_DIGITS = 15  # 60 bits: fits the signed BIGINT column

Outcome = Literal["stored", "duplicate", "refused"]


def lmtp_uid(fingerprint: str) -> int:
    return int(fingerprint[:_UID_HEX_DIGITS], 16)


def store_delivered(
    app: App, raw: bytes, sender: str, recipients: Mapping[str, Sequence[str]]
) -> dict[str, Outcome]:
    """Store `raw` for each mailbox in `recipients` (mailbox name -> the envelope
    recipients that reached it), in one transaction, each copy under its trace headers.
    Per mailbox: stored, duplicate (it holds this mail already, however it came) or
    refused (the database takes no form of it). Raises when the transaction fails: then
    nothing is stored, and the MTA must keep the mail."""
    now = app.clock.now()
    outcomes: dict[str, Outcome] = {}
    with app.transaction() as session:
        for name, reached in recipients.items():
            row = inbound_row(
                name,
                Origin(LMTP_FOLDER, LMTP_UIDVALIDITY, 0),
                trace_headers(sender, reached) + raw,
                received_at=now,
                arrived_at=now,
            )
            row["uid"] = lmtp_uid(row["fingerprint"])
            new, refused = insert_new(session, app.config.mailbox_named(name), [row])
            outcomes[name] = "refused" if refused else "stored" if new else "duplicate"
    return outcomes
