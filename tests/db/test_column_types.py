"""How mail-derived values are bounded for their columns (db.types), without a database."""

from __future__ import annotations

import pytest

from mailbridge.db.types import ClippedString, DigestString, StorableJSON, clipped, fitted, storable

pytestmark = pytest.mark.unit


def test_unstorable_characters_become_replacement_characters() -> None:
    assert storable("plain") == "plain"
    assert storable("a\x00b\udce9ü") == "a\ufffdb\ufffdü"


def test_free_text_is_clipped_and_a_file_name_keeps_its_extension() -> None:
    assert clipped("short", 10) == "short"
    assert clipped("abcdefghijkl", 10) == "abcdefghi…"
    name = ClippedString(255, tail=16).bound("f" * 10_000 + ".quarterly.pdf")
    assert name is not None and len(name) == 255 and name.endswith("f.quarterly.pdf")


def test_a_long_identifier_gets_a_stable_digest_form_that_fits() -> None:
    one, other = "a" * 5_000 + "1", "a" * 5_000 + "2"
    assert fitted(one, 998) == fitted(one, 998) != fitted(other, 998)
    assert len(fitted(one, 998)) == 998 and fitted(one, 998).startswith("aaa")
    assert fitted(fitted(one, 998), 998) == fitted(one, 998), "a stored form stays as it is"
    assert fitted("short@x.example", 998) == "short@x.example"
    assert len(fitted("€" * 400, 998).encode()) <= 998, "bounded in bytes, for its index"
    assert len(fitted("b" * 100, 64)) == 64


def test_bounds_apply_before_writing_and_comparing() -> None:
    column = DigestString(320)
    assert column.process_bind_param("a\x00" + "b" * 400, None) == column.bound(  # type: ignore[arg-type]
        "a\ufffd" + "b" * 400
    )
    assert StorableJSON().bound({"k\x00": ["v\x00", 1, None, ("t\x00",)]}) == {
        "k\ufffd": ["v\ufffd", 1, None, ["t\ufffd"]]
    }
