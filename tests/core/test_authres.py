"""Authentication-Results read by RFC 8601's grammar, and what it proves, on plain values;
with the forgeries an attacker sends, and a property-based fuzz."""

from __future__ import annotations

import gc
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbridge.core.authres import (
    AuthResults,
    MethodResult,
    authenticates,
    contradicts,
    parse_authentication_results,
    proves_author,
    tokens,
    trusted_results,
)

pytestmark = pytest.mark.unit

MX = "mx.example.com"


def proof(*headers: str, domain: str = "example.com") -> str | None:
    return proves_author(trusted_results(headers, MX), domain)


# --- the grammar ------------------------------------------------------------------------------


def test_results_properties_versions_and_comments_are_read() -> None:
    parsed = parse_authentication_results(
        "MX.example.com 1; dkim/1=pass (2048-bit key; secure) header.d=Example.com "
        'header.s=s1 header.b="ab;c"; spf=pass reason="aligned; ok" '
        'smtp.mailfrom="john doe"@example.com; dmarc=none'
    )
    assert parsed == AuthResults(
        "mx.example.com",
        (
            MethodResult(
                "dkim", "pass", {"header.d": "Example.com", "header.s": "s1", "header.b": "ab;c"}
            ),
            MethodResult("spf", "pass", {"smtp.mailfrom": "john doe@example.com"}),
            MethodResult("dmarc", "none", {}),
        ),
    )
    assert parsed.results[0].domain("header.d") == "example.com"


def test_no_result_and_no_authserv_id() -> None:
    assert parse_authentication_results("mx.example.com; none") == AuthResults(MX, ())
    assert parse_authentication_results("") is None
    assert parse_authentication_results("; dkim=pass header.d=example.com") is None


def test_tokens_honour_escapes_nested_comments_and_unterminated_quotes() -> None:
    found = [(t.kind, t.text) for t in tokens(r'a (x (y; z) \) ;) "q\";" @ b "open;end')]
    assert found == [
        ("atom", "a"),
        ("quoted", 'q";'),
        ("@", "@"),
        ("atom", "b"),
        ("quoted", "open;end"),
    ]


# --- what proves a From address ---------------------------------------------------------------


def test_dkim_aligned_with_the_from_domain_is_proof() -> None:
    assert proof(f"{MX}; dkim=pass header.d=example.com header.s=s1") == "dkim"
    assert proof(f"{MX}; dkim=pass header.i=@mail.example.com") == "dkim"  # relaxed
    assert proof(f"{MX}; dkim=pass header.d=example.com", domain="eu.example.com") == "dkim"


def test_dmarc_pass_naming_the_from_domain_is_proof() -> None:
    assert proof(f"{MX}; dmarc=pass (p=reject) header.from=example.com") == "dmarc"
    assert proof(f"{MX}; dmarc=pass header.from=other.example") is None


def test_spf_alone_never_proves_a_from_address() -> None:
    header = f"{MX}; spf=pass smtp.mailfrom=alice@example.com"
    assert proof(header) is None
    # ...though it does say the mail came through authenticated, for acknowledgements
    assert authenticates(trusted_results([header], MX), "example.com") == "spf"


@pytest.mark.parametrize(
    "header",
    [
        # the attacker's envelope sender, copied by the MTA into its own header
        f'{MX}; spf=pass smtp.mailfrom="x;dkim=pass header.d=example.com x"@evil.example',
        f'{MX}; spf=pass smtp.mailfrom="x\\";dkim=pass header.d=example.com"@evil.example',
        f"{MX}; spf=pass smtp.mailfrom=x@evil.example (ok;dkim=pass header.d=example.com)",
        # Gmail's comment naming the sender
        f'{MX}; spf=pass (google.com: domain of "a;dkim=pass header.d=example.com"@evil.example'
        " designates 1.2.3.4 as permitted sender) smtp.mailfrom=evil.example",
        f'{MX}; spf=pass (domain of "a);dkim=pass header.d=example.com (b"@evil.example '
        "designates 192.0.2.1) smtp.mailfrom=evil.example",
        # encoded words are not decoded in a structured header
        f"{MX}; spf=pass smtp.mailfrom==?utf-8?q?x=3Bdkim=3Dpass_header.d=3Dexample.com?="
        "@evil.example",
        f"{MX}; dkim=pass header.d==?utf-8?b?ZXhhbXBsZS5jb20=?=",
        # a value that is a property of another result
        f'{MX}; dkim=pass reason="header.d=example.com" header.d=evil.example',
        # somebody else's domain, failures, look-alikes, comments
        f"{MX}; dkim=pass header.d=attacker.net; spf=pass smtp.mailfrom=attacker.net",
        f"{MX}; dkim=fail header.d=example.com; dmarc=fail header.from=example.com",
        f"{MX}; dkim=pass header.d=notexample.com",
        f"{MX}; dkim=pass header.d=example.com.evil.example",
        f"{MX}; dkim=fail (dkim=pass header.d=example.com) header.d=example.com",
        "mx.attacker.net; dkim=pass header.d=example.com",
        f"{MX}; none",
    ],
)
def test_no_proof(header: str) -> None:
    assert proof(header) is None


def test_only_the_topmost_header_of_the_trusted_server_counts() -> None:
    ours = f"{MX}; dkim=fail header.d=example.com"
    forged_below = f"{MX}; dkim=pass header.d=example.com"
    assert proof(ours, forged_below) is None
    other_hop = "relay.elsewhere.net; dkim=fail header.d=example.com"
    assert proof(other_hop, forged_below) == "dkim"
    assert proves_author(trusted_results([forged_below], ""), "example.com") is None


def test_contradiction_means_the_from_domain_did_not_send_it() -> None:
    def said(header: str) -> bool:
        return contradicts(trusted_results([header], MX), "customer.example")

    assert said(f"{MX}; dmarc=fail header.from=customer.example")
    assert said(f"{MX}; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=evil.example")
    assert not said(f"{MX}; dkim=pass header.d=customer.example")
    assert not said(f"{MX}; spf=pass smtp.mailfrom=bounce@mail.customer.example")
    assert not said(f"{MX}; dkim=none; spf=none")  # nothing known is no contradiction
    assert not contradicts(None, "customer.example")


# --- hostile input: no exception, linear time, proof only from a real pass -----------------------

_PIECES = st.sampled_from(
    [
        ";",
        "=",
        "@",
        ".",
        "(",
        ")",
        '"',
        "\\",
        " ",
        "\t",
        "dkim",
        "spf",
        "dmarc",
        "pass",
        "fail",
        "header.d",
        "header.i",
        "header.from",
        "smtp.mailfrom",
        "example.com",
        "evil.example",
        "=?utf-8?q?",
        "?=",
        "reason",
        "/",
        "1",
        "\u00e9",
        "\udcc3",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=60))
def test_fuzz_proof_comes_only_from_a_real_pass(pieces: list[str]) -> None:
    value = f"{MX}; " + "".join(pieces)
    parsed = parse_authentication_results(value)  # never raises
    result = proves_author(trusted_results([value], MX), "example.com")
    if result is None:
        return
    assert parsed is not None
    # A proof names a result that really is a dkim/dmarc pass for the domain, read outside
    # every quoted string and comment: the text before it holds balanced quotes/comments.
    assert any(r.method == result and r.result == "pass" for r in parsed.results)
    assert "dkim=pass" in value.replace(" ", "") or "dmarc=pass" in value.replace(" ", "")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_fuzz_any_text_parses_without_error(text: str) -> None:
    parse_authentication_results(text)
    contradicts(trusted_results([text], MX), "example.com")


@pytest.mark.parametrize("unit", ["(", '"', ";", "\\(", "a=", "dkim=pass header.d=x ", "((()"])
def test_work_grows_linearly_with_the_header(unit: str) -> None:
    def cost(size: int) -> float:  # under MAX_VALUE, so every character is read
        value = f"{MX}; " + unit * (size // len(unit))
        best = float("inf")
        for _ in range(5):  # CPU time, best of five, no collections: only the parser's work
            gc.collect()
            gc.disable()
            start = time.thread_time()
            parse_authentication_results(value)
            best = min(best, time.thread_time() - start)
            gc.enable()
        return best

    small, large = cost(400), cost(4000)  # characters
    assert large < small * 40 + 0.002, (unit, small, large)
