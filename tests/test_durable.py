"""Files written whole or not at all (mailbridge/durable.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.durable import replace_file


def test_a_file_is_replaced_whole_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "tokens.json"
    target.write_bytes(b"old")
    target.chmod(0o644)
    replace_file(target, b"new contents", 0o600)
    assert target.read_bytes() == b"new contents"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]


def test_a_failed_replace_leaves_the_old_file_and_no_draft(tmp_path: Path) -> None:
    target = tmp_path / "in-the-way"
    target.mkdir()  # a rename cannot put a file over a directory
    (target / "kept").write_bytes(b"x")
    with pytest.raises(IsADirectoryError):
        replace_file(target, b"new", 0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["in-the-way"]
    assert (target / "kept").read_bytes() == b"x"
