"""Compiled templates are kept between loads, and never stand in for a changed file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.adapters import template_cache, templates
from mailbridge.adapters.template_cache import CACHE_DIR
from mailbridge.adapters.template_context import SAMPLE_CONTEXT
from mailbridge.adapters.template_sandbox import Sandbox
from mailbridge.adapters.templates import TemplateSet
from mailbridge.errors import TemplateError

pytestmark = pytest.mark.unit

MAIL = "Subject: {{ ticket_tag }} {{ subject }}\n\n"


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names Jinja compiles from source, starting with an empty cache in memory."""
    names: list[str] = []
    compile_source = Sandbox.compile

    def counted(self: Sandbox, source: object, name: str | None = None, *args: object) -> object:
        names.append(str(name))
        return compile_source(self, source, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Sandbox, "compile", counted)
    monkeypatch.setattr(template_cache, "_memory", type(template_cache._memory)())
    yield names


def write_set(root: Path, body: str) -> Path:
    path = root / "en" / "probe.txt.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MAIL + body, encoding="utf-8")
    return root


def load(root: Path, data_dir: Path | None = None) -> TemplateSet:
    return TemplateSet.load(root, "en", required=(), cache_in=data_dir)


def new_data_dir(tmp_path: Path) -> Path:
    """A data directory for the cache's files, as the daemon's is: existing already."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_a_second_load_of_the_same_files_compiles_nothing(
    tmp_path: Path, compiles: list[str]
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")

    first = load(root)
    second = load(root)

    assert compiles == ["en/probe.txt.j2"]
    assert second.render("probe", SAMPLE_CONTEXT).text == first.render("probe", SAMPLE_CONTEXT).text


def test_an_edited_file_is_compiled_again_and_a_broken_edit_is_refused(
    tmp_path: Path, compiles: list[str]
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")
    load(root)

    write_set(root, "Goodbye {{ ticket_number }}")
    edited = load(root)
    write_set(root, "Goodbye {{ ticket_number ")

    assert edited.render("probe", SAMPLE_CONTEXT).text.startswith("Goodbye")
    assert compiles == ["en/probe.txt.j2", "en/probe.txt.j2"]
    with pytest.raises(TemplateError, match=r"probe\.txt\.j2:3"):
        load(root)
    write_set(root, "Hello {{ ticket_number }} {{ no_such_value }}")
    with pytest.raises(TemplateError, match="unknown variable 'no_such_value'"):
        load(root)  # the code is cached from the first load; the checks still run


def test_the_next_process_reads_the_code_from_the_data_directory(
    tmp_path: Path, compiles: list[str]
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")
    data = new_data_dir(tmp_path)
    expected = load(root, data).render("probe", SAMPLE_CONTEXT).text
    template_cache._memory.clear()  # what a new process starts with

    again = load(root, data)

    assert compiles == ["en/probe.txt.j2"]
    assert again.render("probe", SAMPLE_CONTEXT).text == expected
    assert (data / CACHE_DIR).stat().st_mode & 0o777 == 0o700


def test_a_damaged_cache_file_is_compiled_again(tmp_path: Path, compiles: list[str]) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")
    data = new_data_dir(tmp_path)
    expected = load(root, data).render("probe", SAMPLE_CONTEXT).text
    (code,) = (data / CACHE_DIR).glob("*.code")
    code.write_bytes(code.read_bytes()[:40] + b"\x00garbage")
    template_cache._memory.clear()

    again = load(root, data)

    assert compiles == ["en/probe.txt.j2"] * 2
    assert again.render("probe", SAMPLE_CONTEXT).text == expected


@pytest.mark.parametrize("where", ["cache", "templates"])
def test_a_cache_directory_others_can_write_to_is_not_read(
    tmp_path: Path, compiles: list[str], where: str
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")
    data = tmp_path / "data"
    load(root, data)  # no data directory yet: none is made for the cache
    assert not data.exists()
    data.mkdir()
    template_cache._memory.clear()
    load(root, data)  # compiled again, and written to the data directory
    template_cache._memory.clear()
    shared = data / CACHE_DIR if where == "templates" else (data / CACHE_DIR).parent
    os.chmod(shared, 0o777)

    load(root, data)

    assert compiles == ["en/probe.txt.j2"] * 3


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The templates whose checks run, starting with nothing known in this process."""
    names: list[str] = []
    run_checks = templates._checks

    def counted(where: str, loader_name: str, source: str) -> tuple[str, ...]:
        names.append(loader_name)
        return run_checks(where, loader_name, source)

    monkeypatch.setattr(templates, "_checks", counted)
    monkeypatch.setattr(template_cache, "_passed", set())
    yield names


def new_process() -> None:
    template_cache._memory.clear()
    template_cache._passed.clear()


def test_the_next_process_does_not_check_a_template_that_passed_again(
    tmp_path: Path, compiles: list[str], checked: list[str]
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")
    data = new_data_dir(tmp_path)
    load(root, data)
    new_process()

    load(root, data)
    assert checked == ["en/probe.txt.j2"]

    write_set(root, "Goodbye {{ ticket_number }}")  # another text: checked, then known
    load(root, data)
    new_process()
    load(root, data)
    assert checked == ["en/probe.txt.j2"] * 2


def test_a_template_that_failed_its_checks_is_checked_and_refused_in_every_process(
    tmp_path: Path, compiles: list[str], checked: list[str]
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ no_such_value }}")
    data = new_data_dir(tmp_path)
    for _ in range(2):
        with pytest.raises(TemplateError, match="unknown variable 'no_such_value'"):
            load(root, data)
        new_process()
    assert checked == ["en/probe.txt.j2"] * 2
    assert not [path for path in (data / CACHE_DIR).iterdir() if path.suffix == ".passed"]


def test_changed_checks_check_again_what_the_old_ones_passed(
    tmp_path: Path, compiles: list[str], checked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_set(tmp_path / "set", "Hello {{ ticket_number }}")
    data = new_data_dir(tmp_path)
    load(root, data)
    new_process()
    monkeypatch.setattr(templates, "_CHECKS_STAMP", "rules of another release")

    load(root, data)

    assert checked == ["en/probe.txt.j2"] * 2
