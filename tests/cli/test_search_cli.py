"""`tickets search` as operators run it: a real process over mail the real daemon
fetched from the embedded IMAP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from tests.support.builders import mail
from tests.support.cli_process import config, imap_server, mailbridge

pytestmark = pytest.mark.integration

__all__ = ["config", "imap_server"]  # the fixtures these tests use

ADA = "ada@customer.example"


def invoice_mail() -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"Ada <{ADA}>", "support@shop.example", "Documenti"
    msg.set_content("In allegato la fattura, perché la chiedevate.\n")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="fattura_marzo.pdf")
    return msg.as_bytes()


def test_search_prints_ranked_hits_as_json_and_as_a_table(
    config: Path, imap_server: EmbeddedImapServer
) -> None:
    imap_server.append(invoice_mail())
    imap_server.append(mail(f"Ada <{ADA}>", "Stampante rotta", "Non stampa più.\n"))
    assert mailbridge(config, "run", "--once").returncode == 0

    found = mailbridge(config, "tickets", "search", "FATTURA marzo", "--json")
    assert found.returncode == 0, found.stderr
    (hit,) = json.loads(found.stdout)
    assert set(hit) == {"number", "subject", "status", "requester", "snippet", "rank"}
    assert (hit["number"], hit["subject"], hit["status"]) == (1000, "Documenti", "new")
    assert hit["requester"] == ADA and "[fattura]" in hit["snippet"]
    assert isinstance(hit["rank"], float)

    table = mailbridge(config, "tickets", "search", "perche").stdout.decode()
    assert table.splitlines()[0].split() == ["TICKET", "STATUS", "REQUESTER", "SUBJECT"]
    assert "#1000" in table and "[perché]" in table and "#1001" not in table
    none = mailbridge(config, "tickets", "search", "stampante", "--status", "closed", "--json")
    assert json.loads(none.stdout) == []

    hostile = mailbridge(config, "tickets", "search", '" * - : NEAR OR', "--json")
    assert hostile.returncode == 0 and json.loads(hostile.stdout) == []
    empty = mailbridge(config, "tickets", "search", '"*-:', "--json")
    assert empty.returncode == 2 and json.loads(empty.stdout) == []
    assert b"nothing to search for" in empty.stderr
