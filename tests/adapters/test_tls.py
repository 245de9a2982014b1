"""The shared TLS context: made once, verifying certificates and host names."""

from __future__ import annotations

import ssl
from pathlib import Path

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
