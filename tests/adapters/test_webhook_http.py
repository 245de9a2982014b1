"""The webhook HTTP adapter against a real local server: what counts as delivered, what is
tried again and what fails for good, and that no answer (or a trickle) takes longer than
the timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.adapters.webhook_http import HttpAnswer, HttpRequest, RetryLater, send_request
from mailbridge.errors import PermanentError, TransientError
from tests.conftest import SelfSignedCertificate
from tests.support.webhook_server import HookServer, serving

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def module_server() -> Iterator[HookServer]:
    with serving() as server:
        yield server


@pytest.fixture
def server(module_server: HookServer) -> HookServer:
    module_server.reset()
    return module_server


def request(url: str, timeout: float = 5.0, ca_file: Path | None = None) -> HttpRequest:
    headers = {"Content-Type": "application/json"}
    return HttpRequest("POST", url, headers, b'{"event":"escalated"}', timeout, ca_file)


def test_a_2xx_is_delivered_with_the_exact_body_and_headers(server: HookServer) -> None:
    server.script(204)
    answer = send_request(request(server.url("/hooks/T1?x=1")))
    assert answer == HttpAnswer(204, "No Content")
    [got] = server.received
    assert (got.method, got.path, got.body) == ("POST", "/hooks/T1?x=1", b'{"event":"escalated"}')
    assert got.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_5xx_408_and_429_are_tried_again(server: HookServer, status: int) -> None:
    server.script(status)
    with pytest.raises(RetryLater) as raised:
        send_request(request(server.url()))
    assert raised.value.code == status
    assert f"HTTP {status}" in str(raised.value) and f"error {status}" in str(raised.value)


def test_retry_after_in_seconds_is_kept(server: HookServer) -> None:
    server.script(
        (429, {"Retry-After": "120"}), (503, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    )
    with pytest.raises(RetryLater) as first:
        send_request(request(server.url()))
    with pytest.raises(RetryLater) as second:
        send_request(request(server.url()))
    assert (first.value.retry_after, second.value.retry_after) == (120.0, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413])
def test_other_4xx_fail_for_good(server: HookServer, status: int) -> None:
    server.script(status)
    with pytest.raises(PermanentError) as raised:
        send_request(request(server.url()))
    assert raised.value.code == status


def test_a_redirect_is_not_followed(server: HookServer) -> None:
    server.script((302, {"Location": server.url("/elsewhere")}))
    with pytest.raises(PermanentError, match="redirects are not followed"):
        send_request(request(server.url()))
    assert [r.path for r in server.received] == ["/hook"], "nothing went to the new place"


def test_no_answer_is_a_transient_failure_after_the_timeout(server: HookServer) -> None:
    server.script("hang")
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"no answer within 1 s"):
        send_request(request(server.url(), timeout=1.0))
    assert 0.9 < time.monotonic() - started < 2.5


def test_an_answer_trickling_in_is_cut_at_the_timeout(server: HookServer) -> None:
    server.script("drip")  # a byte every 0.2 s: each read alone meets a 1 s timeout
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"no answer within 1 s"):
        send_request(request(server.url(), timeout=1.0))
    assert time.monotonic() - started < 2.5


def test_a_dropped_connection_is_tried_again(server: HookServer) -> None:
    server.script("drop")
    with pytest.raises(TransientError, match="connection failed") as raised:
        send_request(request(server.url()))
    assert not isinstance(raised.value, PermanentError)


def test_nobody_listening_is_tried_again_and_the_message_names_no_url() -> None:
    with serving() as gone:
        url = gone.url("/services/T0/B0/secret-token-in-path")
    with pytest.raises(TransientError) as raised:
        send_request(request(url))
    assert "secret-token-in-path" not in str(raised.value)
    assert "connection failed" in str(raised.value)


def test_a_certificate_nobody_vouches_for_is_refused_and_a_given_ca_is_trusted(
    self_signed_certificate: SelfSignedCertificate,
) -> None:
    pair = self_signed_certificate
    with serving(pair.cert, pair.key) as server:
        with pytest.raises(TransientError, match="certificate is not trusted"):
            send_request(request(server.url()))
        assert server.received == [], "nothing was sent to the unverified server"
        answer = send_request(request(server.url(), ca_file=pair.cert))
        assert answer.status == 200 and len(server.received) == 1
