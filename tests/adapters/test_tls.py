"""The shared TLS context: made once, verifying certificates and host names."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from mailbridge.adapters.tls import verifying_context
from tests.conftest import SelfSignedCertificate


def test_every_connection_shares_one_verifying_context() -> None:
    context = verifying_context()
    assert verifying_context() is context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_ca_file_gets_a_context_of_its_own_that_trusts_it(
    self_signed_certificate: SelfSignedCertificate,
) -> None:
    cert = Path(self_signed_certificate.cert)
    own = verifying_context(cert)
    assert own is verifying_context(cert) and own is not verifying_context()
    assert own.verify_mode == ssl.CERT_REQUIRED and own.check_hostname
    assert own.get_ca_certs() and not any(
        ca in verifying_context().get_ca_certs() for ca in own.get_ca_certs()
    )


def test_a_ca_file_replaced_on_disk_is_read_again(
    self_signed_certificate: SelfSignedCertificate, tmp_path: Path
) -> None:
    """An operator who rotates a webhook's CA file and reloads gets the new one trusted."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(Path(self_signed_certificate.cert).read_bytes())
    first = verifying_context(ca_file)
    assert verifying_context(ca_file) is first
    ca_file.write_bytes(ca_file.read_bytes())
    os.utime(ca_file, ns=(0, ca_file.stat().st_mtime_ns + 1_000_000_000))
    assert verifying_context(ca_file) is not first
    ca_file.unlink()
    with pytest.raises(OSError):
        verifying_context(ca_file)
