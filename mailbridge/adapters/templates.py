"""Operator-editable reply templates, compiled when loaded and rendered in a Jinja2 sandbox.

Layout: ``<dir>/<language>/<name>.txt.j2`` (required) and ``<name>.html.j2`` (optional), where
language is an ISO 639-1 code such as ``en``. Files whose name starts with ``_`` are partials
for ``{% include "en/_signature.txt.j2" %}``. The text template renders to a mail: a first
line ``Subject: …``, a blank line, then the body. The HTML template renders the HTML body;
a ``<style>`` block in it is moved into style attributes, where mail clients honour it.
The default language must have every template, so falling back always works.

A loaded TemplateSet is a snapshot: editing files afterwards changes nothing until a new set
loads, so a broken edit never replaces a working set. Load a set, then ``check()`` it, and
switch to it only when both succeed.

The values a template gets, and the sample `check()` renders with, are template_context's.

A brand (a `[[mailbox]]` with its own `templates` directory, `signature` or `language`) has a
set of its own, loaded over the shared directory: a file of its directory replaces the shared
file of the same name, one file at a time, and its signature is one more template, rendered
into every mail `render(..., signed=True)` makes (template_signature). The shared set holds
the brands' sets (`for_mailbox`) and checks them with its own, so a broken brand template
keeps the whole new set from going live, as a broken shared one does.

Filters beyond Jinja's own: ``quote`` prefixes every line with "> ". Templates run in Jinja's
immutable sandbox with bounded work (see template_sandbox); ``|safe`` and
``{% autoescape false %}`` are refused, since every value may be the customer's text.
"""

from __future__ import annotations

import functools
import hashlib
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import (
    BaseLoader,
    Environment,
    TemplateNotFound,
    meta,
    nodes,
)
from jinja2 import TemplateSyntaxError as JinjaSyntaxError

from mailbridge.adapters.template_cache import CompiledTemplates
from mailbridge.adapters.template_context import CONTEXT_KEYS, plain_context, sample_context
from mailbridge.adapters.template_sandbox import Sandbox, render_bounded
from mailbridge.adapters.template_signature import (
    SIGNATURE_KEY,
    SIGNATURE_NAME,
    places_signature,
    sign_html,
    sign_text,
)
from mailbridge.errors import TemplateError

# The mails mailbridge itself sends; a template set without one of them never goes live.
REQUIRED = (
    "acknowledgement",
    "staff_notification",
    "staff_reply",
    "staff_command_error",
    "staff_collision",
    "escalation",
    "sla_warning",
    "closed",
    "merged",
    "staff_query",
    "reminder",
    "auto_closed",
    "digest",
)
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
_FILE = re.compile(r"(?P<partial>_)?(?P<name>[a-z0-9][a-z0-9_-]*)\.(?P<kind>txt|html)\.j2")
_SUBJECT = re.compile(r"Subject: *(?P<subject>.*)")
_UNSENDABLE = re.compile("[\ufffd\u0080-\u009f]")
_MAX_MESSAGE = 300
_PARSER = Sandbox(BaseLoader())  # parses for the checks; sets compile in their own


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class _Entry:
    text: str  # loader name, e.g. "en/acknowledgement.txt.j2"
    html: str | None
    subject_line: int  # where "Subject:" sits in the source, for errors about it
    signs_text: bool = True  # the signature is added: the template does not place it
    signs_html: bool = True


class _SnapshotLoader(BaseLoader):
    """Serves the sources read at load time; nothing outside them can be loaded."""

    def __init__(self, sources: Mapping[str, str], origins: Mapping[str, str]) -> None:
        self._sources = dict(sources)
        self._origins = dict(origins)

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        if template not in self._sources:
            raise TemplateNotFound(template)
        return self._sources[template], self._origins[template], lambda: True


class TemplateSet:
    """Every template of one directory, compiled; render by name and language."""

    def __init__(
        self,
        directory: Path,
        default_language: str,
        env: Sandbox,
        entries: Mapping[tuple[str, str], _Entry],
        origins: Mapping[str, str] | None = None,
        brands: Mapping[str, TemplateSet] | None = None,
    ) -> None:
        self._directory = directory
        self._default = default_language
        self._env = env
        self._entries = dict(entries)
        self._origins = dict(origins or {})
        self._brands = dict(brands or {})
        self._signed = SIGNATURE_NAME in self._origins

    @classmethod
    def load(
        cls,
        directory: Path,
        default_language: str,
        required: tuple[str, ...] = REQUIRED,
        *,
        overrides: Path | None = None,
        signature: str | None = None,
        signature_origin: str = "signature",
        cache_in: Path | None = None,
    ) -> TemplateSet:
        """Read and compile every template; TemplateError lists each "file:line: problem".

        Each name in `required` must exist in the default language. A brand's set gives
        the directory whose files replace the shared ones (`overrides`) and its signature
        template; `signature_origin` names it in errors. Compiled code is kept for the
        next load, in this process and, given a data directory (`cache_in`), in files there.
        """
        problems: list[str] = []
        sources: dict[str, str] = {}
        origins: dict[str, str] = {}
        for root in (directory, *([overrides] if overrides is not None else [])):
            if not root.is_dir():
                raise TemplateError(f"{root}:1: not a directory of templates")
            read = _read_sources(root, problems)
            sources.update(read)
            origins.update({name: str(root / name) for name in read})
        if signature is not None:
            sources[SIGNATURE_NAME] = signature
            origins[SIGNATURE_NAME] = signature_origin
        env = Sandbox(_SnapshotLoader(sources, origins), CompiledTemplates(cache_in))
        entries: dict[tuple[str, str], _Entry] = {}
        for loader_name in sorted(sources):
            problems.extend(_compile(env, Path(origins[loader_name]), loader_name))
        _index(directory, sources, entries, problems, origins)
        language = default_language.strip().lower()
        if language not in {lang for lang, _ in entries}:
            problems.append(f"{directory / language}:1: no templates for the default language")
        for lang, name in sorted(entries):
            if (language, name) not in entries and lang != language:
                problems.append(
                    f"{directory / lang / (name + '.txt.j2')}:1: "
                    f"missing from the default language {language!r}"
                )
        for name in required:
            if (language, name) not in entries and language in {lang for lang, _ in entries}:
                problems.append(
                    f"{directory / language / (name + '.txt.j2')}:1: missing: "
                    "mailbridge sends this mail and needs the template"
                )
        if problems:
            raise TemplateError("\n".join(problems))
        if signature is not None:  # without one, nothing is added: no need to look (0.3 s)
            entries = {key: _mark_signing(env, entry) for key, entry in entries.items()}
        return cls(directory, language, env, entries, origins)

    def with_brands(self, brands: Mapping[str, TemplateSet]) -> TemplateSet:
        """This set, holding the sets of the mailboxes that have their own (by name)."""
        return TemplateSet(
            self._directory, self._default, self._env, self._entries, self._origins, brands
        )

    def for_mailbox(self, mailbox: str) -> TemplateSet:
        """The set a ticket of this mailbox is answered with: its brand's, else this one."""
        return self._brands.get(mailbox, self)

    @property
    def default_language(self) -> str:
        return self._default

    def languages(self) -> frozenset[str]:
        return frozenset(lang for lang, _ in self._entries)

    def names(self) -> frozenset[str]:
        return frozenset(name for _, name in self._entries)

    def pick_language(self, name: str, preferred: str | None) -> str:
        """preferred ("it", "it-IT", "IT") when it has this template, else the default."""
        if preferred:
            tag = preferred.strip().lower().replace("_", "-")
            for candidate in (tag, tag.split("-")[0]):
                if (candidate, name) in self._entries:
                    return candidate
        return self._default

    def render(
        self,
        name: str,
        context: Mapping[str, object],
        language: str | None = None,
        *,
        signed: bool = False,
    ) -> Rendered:
        """Render one template; a language without it falls back to the default.

        `signed` (a mail to a customer): the brand's signature is rendered with the same
        values, given to the template as `signature`, and added at the end of each body
        whose template does not place it.
        """
        entry = self._entries.get((self.pick_language(name, language), name))
        if entry is None:
            raise TemplateError(f"{self._directory}:1: no template named {name!r}")
        values = plain_context(context)
        signature = ""
        if signed and self._signed:
            signature = self._render_file(SIGNATURE_NAME, {**values, SIGNATURE_KEY: ""}).strip()
        values[SIGNATURE_KEY] = signature
        where = f"{self._origins[entry.text]}:{entry.subject_line}"
        subject, text = _split_mail(self._render_file(entry.text, values), where)
        if entry.signs_text:
            text = sign_text(text, signature)
        html = None
        if entry.html:
            page = self._render_file(entry.html, values).strip()
            if entry.signs_html:
                page = sign_html(page, signature)
            html = _inline_css(page, Path(self._origins[entry.html])) + "\n"
        return Rendered(subject=subject, text=text, html=html)

    def check(self) -> list[str]:
        """Render every template in every language with the sample, signed, and so every
        brand's; "file:line: problem" each (a brand's also names its mailbox)."""
        problems = []
        for language, name in sorted(self._entries):
            try:
                self.render(name, sample_context(language), language, signed=True)
            except TemplateError as exc:
                problems.append(str(exc))
        for mailbox, brand in sorted(self._brands.items()):
            problems.extend(
                f"{problem} (mailbox {mailbox!r})"
                for problem in brand.check()
                if problem not in problems  # a shared template's own fault, said once
            )
        return problems

    def _render_file(self, loader_name: str, values: dict[str, object]) -> str:
        try:
            return render_bounded(self._env.get_template(loader_name), values)
        except Exception as exc:  # template code can raise anything; each becomes a TemplateError
            raise TemplateError(f"{self._where(exc, loader_name)}: {_describe(exc)}") from exc

    def _where(self, exc: Exception, loader_name: str) -> str:
        if isinstance(exc, JinjaSyntaxError) and exc.filename:
            return f"{exc.filename}:{exc.lineno}"
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        origins = set(self._origins.values())
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename in origins:
                return f"{frame.filename}:{frame.lineno}"
        return f"{self._origins.get(loader_name, self._directory / loader_name)}:1"


# Many mail clients drop <style> blocks, so an HTML template's stylesheet is copied into
# style attributes. Nothing is ever loaded: with loading on, a <link> would read any local
# file into the mail. @media rules cannot be inlined and stay in a <style> for the clients
# that honour them.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)
_STYLESHEET = re.compile(r"<(?:style|link)\b", re.IGNORECASE)


def _inline_css(html: str, path: Path) -> str:
    """html with its stylesheet in style attributes; html as it is when it has none."""
    if not _STYLESHEET.search(html):
        return html
    try:
        return _INLINER.inline(html)
    except (css_inline.InlineError, ValueError) as exc:
        raise TemplateError(f"{path}:1: cannot inline its CSS: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, TemplateNotFound):
        text = f"no template {exc.name!r} in this directory"
    elif not type(exc).__module__.startswith("jinja2"):
        text = f"{type(exc).__name__}: {text}"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _read_sources(directory: Path, problems: list[str]) -> dict[str, str]:
    """Every .j2 file under directory by loader name ("en/acknowledgement.txt.j2")."""
    sources = {}
    for path in sorted(directory.rglob("*.j2")):
        relative = path.relative_to(directory)
        if not path.is_file() or any(part.startswith((".", "<")) for part in relative.parts):
            continue
        try:
            sources[relative.as_posix()] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}:1: cannot read: {exc}")
    return sources


@functools.lru_cache(maxsize=1024)
def parsed(source: str) -> nodes.Template:
    """The syntax tree of a template's source, for the checks to read (never to change: it
    is shared by every set that holds the same text)."""
    return _PARSER.parse(source)


def _compile(env: Sandbox, where: Path, loader_name: str) -> list[str]:
    """Problems compiling one template (from the file `where`): syntax, unknown variables,
    unsafe includes."""
    try:
        env.get_template(loader_name)
    except JinjaSyntaxError as exc:
        return [f"{where}:{exc.lineno}: {_describe(exc)}"]
    source = env.loader.get_source(env, loader_name)[0]  # type: ignore[union-attr]
    cache = env.bytecode_cache
    if not isinstance(cache, CompiledTemplates):
        return list(_checks(str(where), loader_name, source))
    mark = cache.passed_mark(_CHECKS_STAMP, loader_name, str(where), source)
    if cache.has_passed(mark):  # the same text checked before (template_cache.py)
        return []
    problems = list(_checks(str(where), loader_name, source))
    if not problems:
        cache.record_pass(mark)
    return problems


# What the checks' answer depends on besides the template: their code and the names they
# accept. A mark of a template that passed them (template_cache.py) holds only while these
# are the same.
_CHECKS_STAMP = hashlib.sha256(
    Path(__file__).read_bytes()
    + repr(sorted(CONTEXT_KEYS)).encode()
    + repr(sorted(_PARSER.globals)).encode()
).hexdigest()


@functools.lru_cache(maxsize=1024)
def _checks(where: str, loader_name: str, source: str) -> tuple[str, ...]:
    """What the rules refuse in a template that compiles: the same text gives the same
    answer, so a reload or a brand asks only about what changed (the variable analysis is
    most of a load's time)."""
    tree = parsed(source)
    problems = []
    if not Path(loader_name).name.startswith("_"):
        # Partials may use variables their includer sets; full templates may not.
        unknown = meta.find_undeclared_variables(tree) - CONTEXT_KEYS - set(_PARSER.globals)
        for node in tree.find_all(nodes.Name):
            if node.name in unknown:
                problems.append(f"{where}:{node.lineno}: unknown variable {node.name!r}")
                unknown.discard(node.name)
    kind = ".html.j2" if loader_name.endswith(".html.j2") else ".txt.j2"
    # Every context value is plain text, often the customer's: nothing is safe to leave raw.
    for switch in tree.find_all((nodes.Filter, nodes.EvalContextModifier)):
        if (
            isinstance(switch, nodes.Filter)
            and switch.name == "safe"
            or any(option.key == "autoescape" for option in getattr(switch, "options", ()))
        ):
            problems.append(f"{where}:{switch.lineno}: turning escaping off is not allowed")
    for ref in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        target = getattr(ref, "template", None)
        # Escaping is decided per file name, so an HTML template must only pull in HTML.
        if not (isinstance(target, nodes.Const) and str(target.value).endswith(kind)):
            problems.append(f"{where}:{ref.lineno}: include only fixed names ending in {kind}")
    return tuple(problems)


def _index(
    directory: Path,
    sources: Mapping[str, str],
    entries: dict[tuple[str, str], _Entry],
    problems: list[str],
    origins: Mapping[str, str],
) -> None:
    """Fill entries with the templates of each language directory."""
    html: dict[tuple[str, str], str] = {}
    for loader_name, source in sources.items():
        parts = loader_name.split("/")
        if len(parts) != 2 or parts[0].startswith("_"):
            continue  # shared partials live in other directories
        language, filename = parts
        match = _FILE.fullmatch(filename)
        if not _LANGUAGE.fullmatch(language):
            problems.append(f"{directory / language}:1: not a language code like 'en' or 'pt-br'")
        elif match is None:
            problems.append(f"{origins[loader_name]}:1: expected NAME.txt.j2 or NAME.html.j2")
        elif match["partial"]:
            continue
        elif match["kind"] == "html":
            html[(language, match["name"])] = loader_name
        else:
            entries[(language, match["name"])] = _Entry(loader_name, None, _subject_line(source))
    for key, loader_name in sorted(html.items()):
        if key not in entries:
            problems.append(f"{origins[loader_name]}:1: HTML template without a .txt.j2")
        else:
            entries[key] = _Entry(entries[key].text, loader_name, entries[key].subject_line)


def _mark_signing(env: Sandbox, entry: _Entry) -> _Entry:
    """The entry, knowing which of its bodies place the signature themselves."""

    def parse(loader_name: str) -> Any:
        return parsed(env.loader.get_source(env, loader_name)[0])  # type: ignore[union-attr]

    signs_html = entry.html is not None and not places_signature(entry.html, parse)
    return _Entry(
        entry.text,
        entry.html,
        entry.subject_line,
        signs_text=not places_signature(entry.text, parse),
        signs_html=signs_html,
    )


def _subject_line(source: str) -> int:
    for number, line in enumerate(source.splitlines(), start=1):
        if "Subject:" in line:
            return number
    return 1


def _split_mail(output: str, where: str) -> tuple[str, str]:
    """(subject, body) of a rendered text template, which must read like a mail."""
    first, _, rest = output.partition("\n")
    match = _SUBJECT.fullmatch(first.rstrip())
    if match is None or not match["subject"].strip():
        raise TemplateError(
            f"{where}: the output must start with a 'Subject: …' line, not {first[:60]!r}"
        )
    blank, _, body = rest.partition("\n")
    if blank.strip():
        raise TemplateError(f"{where}: the 'Subject:' line must be followed by a blank line")
    # "-- " keeps its space: it is the signature separator mail clients look for.
    lines = body.strip("\n").split("\n")
    body = "\n".join(line if line == "-- " else line.rstrip() for line in lines).strip("\n")
    if not body.strip():
        raise TemplateError(f"{where}: the body after the subject is empty")
    # The values were made readable before rendering (clip_context); what is left of U+FFFD
    # or C1 controls (a template's own text, a staff member's name) never reaches a subject.
    subject = _UNSENDABLE.sub("", match["subject"])
    return " ".join(subject.split()), body + "\n"


def default_templates_dir() -> Path:
    """The shipped templates: inside the installed package, or the source checkout's."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_templates", package.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise TemplateError(f"{package / '_templates'}:1: the shipped templates are missing")
