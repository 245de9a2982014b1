"""docs/architecture.md is what comments cite, so a citation must lead somewhere: every
numbered invariant a comment names is defined there, every section named in quotes after
"docs/architecture.md," is one of its headings, and every file of the package named in a
comment or in the page exists. The page describes the code as it is: a plan marked
"(planned)" belongs in a branch, not here, where it would outlive its landing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "mailbridge"
SCANNED = ("mailbridge", "tests", "bench", "migrations")
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))

DEFINED = re.compile(r"^### (\d+)\. ", re.MULTILINE)
CITED = re.compile(r"\binvariants?\s+(\d+(?:\s*(?:,|and|or)\s*\d+)*)", re.IGNORECASE)
SECTION = re.compile(r'docs/architecture\.md,\s+"([^"]+)"')
HEADING = re.compile(r"^#+ (.+?)\s*$", re.MULTILINE)
PACKAGE_PATH = re.compile(
    rf"(?<![\w/.-])(?:mailbridge/([\w/]+\.py)|((?:{'|'.join(SUBPACKAGES)})/[\w/]+\.py))\b"
)
TEST_PATH = re.compile(r"(?<![\w/.-])(tests/[\w/]+\.py)\b")
TEST_NAME = re.compile(r"`(test_\w+?)(…)?`")
PLANNED = re.compile(r"\(planned\)", re.IGNORECASE)


def sources() -> Iterator[tuple[Path, str]]:
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() != Path(__file__).resolve():
                yield path.relative_to(ROOT), path.read_text(encoding="utf-8")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def invariant_numbers() -> list[int]:
    """The numbered headings of the "Invariants" section, in order."""
    section = doc_text().split("\n## Invariants\n", 1)[1].split("\n## ", 1)[0]
    return [int(number) for number in DEFINED.findall(section)]


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def package_paths(text: str) -> Iterator[tuple[int, str]]:
    """(offset, path under mailbridge/) of each package file named."""
    for match in PACKAGE_PATH.finditer(text):
        yield match.start(), match.group(1) or match.group(2)


def test_the_invariants_are_numbered_one_after_another() -> None:
    numbers = invariant_numbers()
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 8  # those of the original design keep their numbers


def test_every_cited_invariant_is_defined() -> None:
    defined = set(invariant_numbers())
    wrong = [
        f"{path}:{line_of(text, match.start())}: {match.group(0)!r}"
        for path, text in sources()
        for match in CITED.finditer(text)
        if any(int(n) not in defined for n in re.findall(r"\d+", match.group(1)))
    ]
    assert wrong == [], f"docs/architecture.md defines invariants {sorted(defined)}"


def test_every_cited_section_is_a_heading() -> None:
    headings = set(HEADING.findall(doc_text()))
    wrong = [
        f"{path}:{line_of(text, match.start())}: {match.group(1)!r}"
        for path, text in sources()
        for match in SECTION.finditer(text)
        if match.group(1) not in headings
    ]
    assert wrong == []


def test_nothing_cites_the_old_design_brief() -> None:
    old = "DESIGN" + ".md"
    assert [str(path) for path, text in sources() if old in text] == []


def test_package_files_named_in_comments_exist() -> None:
    missing = [
        f"{path}:{line_of(text, offset)}: {name}"
        for path, text in sources()
        if path.parts[0] == "mailbridge"
        for offset, name in package_paths(text)
        if not (PACKAGE / name).is_file()
    ]
    assert missing == []


def test_files_named_in_the_architecture_page_exist() -> None:
    text = doc_text()
    missing = [
        f"line {line_of(text, offset)}: {name}"
        for offset, name in package_paths(text)
        if not (PACKAGE / name).is_file()
    ]
    missing += [
        f"line {line_of(text, match.start())}: {match.group(1)}"
        for match in TEST_PATH.finditer(text)
        if not (ROOT / match.group(1)).is_file()
    ]
    assert missing == []


def test_the_architecture_page_marks_nothing_planned() -> None:
    text = doc_text()
    marked = [f"line {line_of(text, m.start())}" for m in PLANNED.finditer(text)]
    assert marked == []


def test_tests_named_in_the_architecture_page_exist() -> None:
    written = "\n".join(text for path, text in sources() if path.parts[0] == "tests")
    missing = [
        name + cut
        for name, cut in TEST_NAME.findall(doc_text())
        if not re.search(f"def {name}" + ("" if cut else r"\("), written)
    ]
    assert missing == []
