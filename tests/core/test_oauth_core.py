"""OAuth2 arithmetic without IO: endpoints and scopes per provider, the SASL initial
responses, when a token is refreshed, and the token file's record."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.core.oauth import (
    TokenRecord,
    choose_mechanism,
    default_scopes,
    describe_sasl_failure,
    endpoints,
    oauthbearer_response,
    refresh_due,
    refresh_margin,
    xoauth2_response,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_microsoft_endpoints_are_those_of_the_tenant() -> None:
    found = endpoints("microsoft", tenant="contoso.onmicrosoft.com")
    base = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0"
    assert found.token_url == f"{base}/token"
    assert found.device_authorization_url == f"{base}/devicecode"
    assert found.authorization_url == f"{base}/authorize"


def test_google_endpoints() -> None:
    found = endpoints("google")
    assert found.token_url == "https://oauth2.googleapis.com/token"
    assert found.device_authorization_url == "https://oauth2.googleapis.com/device/code"


def test_explicit_urls_win_and_generic_needs_a_token_url() -> None:
    found = endpoints("microsoft", token_url="https://login.microsoftonline.us/t/token")
    assert found.token_url == "https://login.microsoftonline.us/t/token"
    assert found.device_authorization_url is not None
    assert "microsoftonline.com" in found.device_authorization_url
    generic = endpoints(
        "generic", token_url="https://idp/token", device_authorization_url="https://idp/device"
    )
    assert (generic.token_url, generic.device_authorization_url) == (
        "https://idp/token",
        "https://idp/device",
    )
    with pytest.raises(ValueError, match="token_url"):
        endpoints("generic")


def test_microsoft_scopes_per_service_always_with_offline_access() -> None:
    assert default_scopes("microsoft", {"imap"}) == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "offline_access",
    )
    assert default_scopes("microsoft", {"imap", "smtp"}) == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    )
    assert default_scopes("microsoft", {"smtp"}) == (
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    )


def test_app_only_microsoft_scope_and_the_others() -> None:
    assert default_scopes("microsoft", {"imap", "smtp"}, "client_credentials") == (
        "https://outlook.office365.com/.default",
    )
    assert default_scopes("google", {"imap", "smtp"}) == ("https://mail.google.com/",)
    assert default_scopes("generic", {"imap"}) == ()


def test_xoauth2_initial_response_is_googles_format() -> None:
    raw = xoauth2_response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    # The example of Google's XOAUTH2 protocol page, base64-encoded there.
    assert base64.b64encode(raw) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSb"
        b"GNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_oauthbearer_initial_response_follows_rfc_7628() -> None:
    raw = oauthbearer_response(
        "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143
    )
    assert raw == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    # "," and "=" in the authorization identity are escaped (RFC 5801 saslname).
    assert oauthbearer_response("a,b=c", "t").startswith(b"n,a=a=2Cb=3Dc,\x01auth=Bearer t")


def test_xoauth2_is_preferred_then_oauthbearer() -> None:
    assert choose_mechanism(["PLAIN", "OAUTHBEARER", "XOAUTH2"]) == "XOAUTH2"
    assert choose_mechanism(["plain", "oauthbearer"]) == "OAUTHBEARER"
    assert choose_mechanism(["PLAIN", "LOGIN"]) is None


def test_the_servers_json_error_is_described() -> None:
    challenge = json.dumps(
        {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
    ).encode()
    failure = describe_sasl_failure(challenge)
    assert failure is not None
    assert str(failure) == "status 401, needs scope 'https://mail.google.com/'"
    junk = describe_sasl_failure(b"not json")
    assert junk is not None and str(junk) == "not json"
    assert describe_sasl_failure(b"") is None


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [
        (timedelta(hours=1), timedelta(minutes=5)),  # the usual: 5 minutes before
        (timedelta(hours=24), timedelta(minutes=5)),
        (timedelta(seconds=60), timedelta(seconds=6)),  # short-lived: a tenth of it
        (timedelta(0), timedelta(0)),
    ],
)
def test_refresh_margin(lifetime: timedelta, margin: timedelta) -> None:
    assert refresh_margin(lifetime) == margin


def test_refresh_is_due_within_the_margin() -> None:
    expires = T0 + timedelta(hours=1)
    assert not refresh_due(T0, T0, expires)
    assert not refresh_due(T0 + timedelta(minutes=54, seconds=59), T0, expires)
    assert refresh_due(T0 + timedelta(minutes=55), T0, expires)
    assert refresh_due(T0 + timedelta(hours=2), T0, expires)
    assert not refresh_due(T0 + timedelta(days=30), T0, None)  # no expiry given


def _record(**changes: object) -> TokenRecord:
    values: dict[str, object] = {
        "account": "support",
        "client_id": "app",
        "token_url": "https://idp/token",
        "scopes": ("mail",),
        "obtained_at": T0,
        "access_token": "at-1",
        "expires_at": T0 + timedelta(hours=1),
        "refresh_token": "rt-1",
    }
    values.update(changes)
    return TokenRecord(**values)  # type: ignore[arg-type]


def test_the_record_round_trips_through_json_and_hides_tokens_from_repr() -> None:
    record = _record(problem="revoked")
    again = TokenRecord.from_json(json.loads(json.dumps(record.as_json())))
    assert again == record
    assert "at-1" not in repr(record) and "rt-1" not in repr(record)


def test_usable_and_seconds_left() -> None:
    record = _record()
    assert record.usable(T0 + timedelta(minutes=50))
    assert not record.usable(T0 + timedelta(minutes=56))
    assert record.seconds_left(T0 + timedelta(minutes=59)) == 60
    assert record.seconds_left(T0 + timedelta(hours=3)) == 0
    assert not _record(access_token="").usable(T0)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ([], "not a JSON object"),
        ({"version": 2}, "version 2"),
        ({**_record().as_json(), "client_id": ""}, "client_id is missing"),
        ({**_record().as_json(), "obtained_at": "2025-03-01T09:00:00"}, "no time zone"),
    ],
)
def test_a_broken_record_says_what_is_wrong(data: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        TokenRecord.from_json(data)
