"""core/webhook_events.py: which audit events announce what, what one webhook is sent,
and the signature a receiver checks."""

from __future__ import annotations

import pytest

from mailbridge.core.webhook_events import WEBHOOK_EVENTS, announced, chosen, sign, verify

KEY = b"0123456789abcdef0123456789abcdef"
BODY = b'{"version":1,"event":"escalated"}'
T = 1_795_424_400


@pytest.mark.parametrize(
    ("event_type", "data", "status", "expected"),
    [
        ("created", {"kind": "customer"}, "new", ("ticket_created",)),
        ("created", {"kind": "autoreply"}, "new", ()),  # automated mail: nobody is told
        ("created", {"kind": "customer"}, "spam", ()),
        (
            "escalated",
            {"level": 1, "deadline": "first_response"},
            "new",
            ("sla_breached", "escalated"),
        ),
        ("escalated", {"level": 2, "deadline": "first_response"}, "new", ("escalated",)),
        ("sla_warning", {"level": -1}, "new", ()),  # a warning is no breach
        ("tagged", {"tags": ["unhappy"], "reason": "rated not solved"}, "open", ("unhappy",)),
        ("tagged", {"tags": ["vip"]}, "new", ()),
        ("tags_changed", {"tags_added": ["unhappy"], "tags_removed": []}, "new", ("unhappy",)),
        ("tags_changed", {"tags_added": [], "tags_removed": ["unhappy"]}, "new", ()),
        ("staff_reply", {"changes": {"tags_added": ["unhappy"]}}, "waiting", ("unhappy",)),
        ("staff_reply", {"changes": {"status": ["open", "resolved"]}}, "resolved", ("resolved",)),
        ("staff_note", {"changes": {"status": ["new", "closed"]}}, "closed", ("resolved",)),
        ("staff_reply", {"changes": {}}, "resolved", ()),  # already resolved: no news
        ("resolved_by_customer", {"said": "solved, thanks"}, "resolved", ("resolved",)),
        ("auto_closed", {"by": "system"}, "resolved", ("resolved",)),
        (
            "staff_reply",
            {"changes": {"tags_added": ["unhappy"], "status": ["open", "resolved"]}},
            "resolved",
            ("unhappy", "resolved"),
        ),
        ("followup", {"tags": "unhappy"}, "open", ()),  # a string is not a list of tags
    ],
)
def test_audit_events_announce_what_they_mean(
    event_type: str, data: dict[str, object], status: str, expected: tuple[str, ...]
) -> None:
    assert announced(event_type, data, status) == expected


def test_a_level_one_goes_once_to_each_webhook() -> None:
    both = announced("escalated", {"level": 1}, "new")
    assert chosen(both, {"sla_breached", "escalated"}) == ("sla_breached",)
    assert chosen(both, {"escalated"}) == ("escalated",)
    assert chosen(both, {"sla_breached"}) == ("sla_breached",)
    assert chosen(both, {"resolved"}) == ()
    later = announced("escalated", {"level": 2}, "new")
    assert chosen(later, {"sla_breached", "escalated"}) == ("escalated",)
    assert chosen(later, {"sla_breached"}) == ()


def test_every_event_can_be_announced() -> None:
    seen = {
        *announced("created", {"kind": "customer"}, "new"),
        *announced("escalated", {"level": 1}, "new"),
        *announced("tagged", {"tags": ["unhappy"]}, "open"),
        *announced("auto_closed", {}, "resolved"),
    }
    assert seen == set(WEBHOOK_EVENTS)


def test_a_signature_verifies_only_for_the_same_body_key_and_a_recent_time() -> None:
    header = sign(KEY, T, BODY)
    assert header.startswith(f"t={T},v1=") and len(header.rpartition("=")[2]) == 64
    assert verify(KEY, header, BODY, now=T + 10)
    assert not verify(KEY, header, BODY + b" ", now=T), "one byte more"
    assert not verify(KEY[:-1] + b"X", header, BODY, now=T), "another key"
    assert not verify(KEY, header, BODY, now=T + 301), "replayed later"
    forged = header.replace(f"t={T}", f"t={T + 600}")
    assert not verify(KEY, forged, BODY, now=T + 600), "the timestamp is signed too"
    assert not verify(KEY, "v1=abc", BODY, now=T) and not verify(KEY, "", BODY, now=T)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(KEY, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(KEY, T, BODY) == f"t={T},v1={expected}"
