"""Loading, checking and rendering reply templates in the sandbox."""

from __future__ import annotations

import enum
import re
import shutil
from pathlib import Path

import pytest
from markupsafe import Markup

from mailbridge.adapters.template_context import CONTEXT_KEYS, SAMPLE_CONTEXT, sample_context
from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.core.ack_policy import minimal_context
from mailbridge.errors import TemplateError

pytestmark = pytest.mark.unit

SHIPPED_NAMES = {
    "sla_warning",
    "acknowledgement",
    "escalation",
    "staff_notification",
    "staff_reply",
    "reopened",
    "closed",
    "merged",
    "canned_refund",
}
MAIL = "Subject: {{ ticket_tag }} {{ subject }}\n\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def load(root: Path, files: dict[str, str], default: str = "en") -> TemplateSet:
    return TemplateSet.load(write(root, files), default, required=())


def render_body(root: Path, body: str) -> str:
    """Load a one-template set whose body is `body` and render it with the sample."""
    templates = load(root / "t", {"en/probe.txt.j2": MAIL + body})
    return templates.render("probe", SAMPLE_CONTEXT).text


# --- the shipped templates -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> TemplateSet:
    return TemplateSet.load(default_templates_dir(), "en")


def test_shipped_set_is_complete_in_english_and_italian(shipped: TemplateSet) -> None:
    assert shipped.languages() == {"en", "it"}
    assert shipped.names() >= SHIPPED_NAMES
    assert shipped.check() == []
    for language in ("en", "it"):
        for name in shipped.names():
            assert shipped.pick_language(name, language) == language


def test_shipped_acknowledgement_names_ticket_deadline_and_quotes_excerpt(
    shipped: TemplateSet,
) -> None:
    context = dict(SAMPLE_CONTEXT, excerpt="My cable is missing.\nPlease help.")
    rendered = shipped.render("acknowledgement", context, "en")
    assert rendered.subject == "Re: [#1042] Charging cable missing from order 55-1931"
    assert "ticket [#1042]" in rendered.text
    assert "by Tuesday 24 November at 17:00" in rendered.text
    assert "keep [#1042] in the\nsubject line" in rendered.text
    assert "> My cable is missing.\n> Please help.\n" in rendered.text
    assert rendered.text.endswith("\n") and not rendered.text.startswith("\n")
    assert rendered.html is not None
    assert '<html lang="en">' in rendered.html
    assert "by Tuesday 24 November at 17:00" in rendered.html


def test_shipped_italian_acknowledgement(shipped: TemplateSet) -> None:
    rendered = shipped.render("acknowledgement", sample_context("it"), "it-IT")
    assert "Gentile Giulia Rossi," in rendered.text
    assert "entro martedì 24 novembre alle 17:00" in rendered.text
    assert "lasciando [#1042] nell'oggetto" in rendered.text
    assert rendered.html is not None and '<html lang="it">' in rendered.html


@pytest.mark.parametrize(
    ("language", "line"), [("en", "If you did not write to us"), ("it", "Se non ci ha scritto lei")]
)
def test_shipped_minimal_acknowledgement_carries_nothing_of_the_mail(
    shipped: TemplateSet, language: str, line: str
) -> None:
    full = sample_context(language)
    rendered = shipped.render("acknowledgement", minimal_context(full), language)
    assert rendered.html is not None
    assert rendered.subject.startswith("[#1042] ")
    for output in (rendered.subject, rendered.text, rendered.html):
        for value in ("Charging cable", "Giulia", "55-1931", "Where is my order?"):
            assert value not in output
    assert line in rendered.text and line in rendered.html
    assert str(full["promised_reply"]) in rendered.text


@pytest.mark.parametrize("language", ["en", "it"])
@pytest.mark.parametrize("name", sorted(SHIPPED_NAMES))
def test_shipped_templates_render_with_sparse_values(
    shipped: TemplateSet, name: str, language: str
) -> None:
    # What the callers pass when a value is not known: empty strings, no links.
    context = dict(
        SAMPLE_CONTEXT,
        requester_name="",
        promised_reply="",
        excerpt="",
        staff_name="",
        overdue_by="",
        links={},
    )
    rendered = shipped.render(name, context, language)
    assert "[#1042]" in rendered.subject
    assert "None" not in rendered.text
    assert "\n\n\n" not in rendered.text


@pytest.mark.parametrize(
    ("language", "first", "command"),
    [
        (
            "en",
            "Nobody to answer: this mail named no sender. Reply with #requester ADDRESS to set "
            "one.",
            "#requester customer@example.com",
        ),
        (
            "it",
            "Nessuno a cui rispondere: questo messaggio non indica alcun mittente. Rispondete "
            "con #requester INDIRIZZO per indicarne uno.",
            "#requester cliente@example.com",
        ),
    ],
)
def test_a_notification_without_requester_says_so_first(
    shipped: TemplateSet, language: str, first: str, command: str
) -> None:
    context = dict(
        sample_context(language), requester_name="", requester_address="", no_requester=True
    )
    rendered = shipped.render("staff_notification", context, language)
    assert rendered.text.splitlines()[0] == first
    assert command in rendered.text.replace("\n", " ")
    assert "<>" not in rendered.text and "None" not in rendered.text
    assert rendered.subject.endswith(": Charging cable missing from order 55-1931")
    assert ":  " not in rendered.subject and " : " not in rendered.subject
    followup = shipped.render("staff_notification", dict(context, event="followup"), language)
    assert "[#1042]" in followup.text.splitlines()[0]
    usual = shipped.render("staff_notification", sample_context(language), language)
    assert not usual.text.startswith(first[:10])
    assert command in usual.text.replace("\n", " ")


def test_customer_text_is_escaped_in_html_but_not_in_text(shipped: TemplateSet) -> None:
    hostile = '<script>alert("x")</script> & <b>bold</b>'
    context = dict(SAMPLE_CONTEXT, excerpt=hostile, requester_name="<img src=x>")
    rendered = shipped.render("acknowledgement", context, "en")
    assert rendered.html is not None
    assert "<script>" not in rendered.html and "<img" not in rendered.html
    # Inlining the stylesheet re-serialises the HTML: quotes in text need no escaping there.
    assert '&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;b&gt;' in rendered.html
    assert "> " + hostile in rendered.text
    assert "Hello <img src=x>," in rendered.text


def test_default_templates_dir_is_the_shipped_directory() -> None:
    directory = default_templates_dir()
    assert (directory / "en" / "acknowledgement.txt.j2").is_file()
    assert (directory / "it" / "acknowledgement.html.j2").is_file()


def test_sample_context_has_every_documented_key() -> None:
    assert set(SAMPLE_CONTEXT) == CONTEXT_KEYS
    assert sample_context("it")["promised_reply"] == "entro martedì 24 novembre alle 17:00"


# --- the sandbox ------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ config }}",
    "{{ request.environ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum(n=100000) }}",
    "{{ dict.mro() }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ links.update({'x': 1}) }}",
    "{{ links.clear() }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{% include '../../../../etc/hostname.txt.j2' %}",
    "{% include subject %}",
    "{% import '/etc/passwd' as p %}",
    "{{ range(10**9)|list }}",
    "{{ range(10**9)|length }}",
    "{{ 2 ** 100000 }}",
    "{{ 'x' * 10**8 }}",
    "{{ [1] * 10**8 }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ 'x'|center(999999999) }}",
    "{{ 'x'|indent(999999999) }}",
    "{{ [1, 2]|slice(999999999) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ ('\\t' * 1000).expandtabs(9999) }}",
    "{{ ('x' * 100000).replace('x', 'y' * 1000) }}",
    "{{ ((subject * 5000)|replace('', 'y' * 1000))|length }}",  # 100 MB built, 9 digits shown
    "{{ ('x' * 1000).join(['y'] * 100000) }}",
    "{{ (['x' * 100000] * 10000)|join }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=999999999) }}",
    "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
    # Loops over a value count their turns too: no lookup, call or operator inside (17.6
    # million turns, seconds, then "done" without them).
    "{% set t = subject * 100 %}{% for a in t %}{% for b in t %}{% endfor %}{% endfor %}done",
    "{% for a in links %}{% for b in subject * 50 %}{% for c in subject * 50 %}{% endfor %}"
    "{% endfor %}{% endfor %}done",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% macro grow(s, n) %}{{ grow(s ~ s, n - 1) if n else s|length }}{% endmacro %}"
    "{{ grow('x', 64) }}",
    "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_sandbox_escapes_fail_without_leaking(tmp_path: Path, body: str) -> None:
    secret = "TOP-SECRET-CONTENT"
    write(tmp_path, {"etc/hostname.txt.j2": secret, "etc/passwd": secret})
    with pytest.raises(TemplateError) as caught:
        render_body(tmp_path, body)
    message = str(caught.value)
    assert re.match(rf"{re.escape(str(tmp_path / 't'))}/en/probe\.txt\.j2:\d+: ", message)
    assert secret not in message
    for leak in ("<class", "<function", "<module", "__builtins__", "subprocess", "0000000"):
        assert leak not in message
    assert len(message) < 400


def test_sandbox_still_allows_ordinary_template_code(tmp_path: Path) -> None:
    body = (
        "{% for i in range(3) %}{{ loop.index }}{% endfor %} "
        "{{ '-' * 5 }} {{ 2 ** 10 }} {{ '%05d' % ticket_number }} "
        "{{ subject|upper|truncate(12) }} {{ links.ticket }} {{ links.get('none', 'n/a') }} "
        "{% set ns = namespace(n=0) %}{% for x in [1, 2, 3] %}{% set ns.n = ns.n + x %}"
        "{% endfor %}{{ ns.n }} {{ '{}!'.format(requester_name) }} "
        "{% set big = 123456789 %}{{ '{:012d}'.format(big) }} {{ '%012d'|format(big) }} "
        "{{ big|string|center(13) }}|{{ 'ab'.ljust(4, '.') }} {{ ', '.join(['a', 'b']) }}"
    )
    assert render_body(tmp_path, body) == (
        "123 ----- 1024 01042 CHARGING... https://helpdesk.example.com/tickets/1042 n/a 6 "
        "Giulia Rossi! 000123456789 000123456789   123456789  |ab.. a, b\n"
    )


def test_partial_from_within_the_directory_can_be_included(tmp_path: Path) -> None:
    templates = load(
        tmp_path,
        {
            "en/note.txt.j2": MAIL + "Body\n{% include 'en/_signature.txt.j2' %}",
            "en/_signature.txt.j2": "-- \n{{ company_name }}",
        },
    )
    assert templates.names() == {"note"}
    assert templates.render("note", SAMPLE_CONTEXT).text == "Body\n-- \nExample Ltd\n"


def test_html_template_may_not_include_a_text_partial(tmp_path: Path) -> None:
    # The partial would be compiled without escaping and put customer text into HTML raw.
    with pytest.raises(TemplateError) as caught:
        load(
            tmp_path,
            {
                "en/note.txt.j2": MAIL + "Body",
                "en/note.html.j2": "<p>{% include 'en/_raw.txt.j2' %}</p>",
                "en/_raw.txt.j2": "{{ excerpt }}",
            },
        )
    assert str(caught.value) == (
        f"{tmp_path}/en/note.html.j2:1: include only fixed names ending in .html.j2"
    )


@pytest.mark.parametrize(
    "source",
    [
        "<p>\n{{ excerpt|safe }}</p>",
        "<p>\n{% autoescape false %}{{ excerpt }}{% endautoescape %}</p>",
        "<p>\n{% filter safe %}{{ excerpt }}{% endfilter %}</p>",
    ],
)
def test_escaping_cannot_be_turned_off(tmp_path: Path, source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        load(tmp_path, {"en/x.txt.j2": MAIL + "x", "en/x.html.j2": source})
    assert str(caught.value) == (f"{tmp_path}/en/x.html.j2:2: turning escaping off is not allowed")


# --- errors name file and line ----------------------------------------------------------


def test_syntax_errors_in_every_file_are_listed_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        load(
            tmp_path,
            {
                "en/good.txt.j2": MAIL + "fine",
                "en/bad.txt.j2": MAIL + "line three\n{% if subject %}\nno endif\n",
                "it/good.txt.j2": MAIL + "{{ subject }\n",
            },
        )
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path}/en/bad.txt.j2:5: ")
    assert "endif" in lines[0]
    assert lines[1].startswith(f"{tmp_path}/it/good.txt.j2:3: ")


def test_unknown_variable_is_found_when_loading_even_in_an_untaken_branch(
    tmp_path: Path,
) -> None:
    with pytest.raises(TemplateError) as caught:
        load(tmp_path, {"en/x.txt.j2": MAIL + "{% if false %}\n{{ ticket_numbr }}\n{% endif %}"})
    assert str(caught.value) == f"{tmp_path}/en/x.txt.j2:4: unknown variable 'ticket_numbr'"


def test_missing_context_value_is_a_render_error_with_line(tmp_path: Path) -> None:
    templates = load(tmp_path, {"en/x.txt.j2": MAIL + "one\n{{ staff_name }}\n"})
    context = {key: value for key, value in SAMPLE_CONTEXT.items() if key != "staff_name"}
    with pytest.raises(TemplateError) as caught:
        templates.render("x", context)
    assert str(caught.value) == f"{tmp_path}/en/x.txt.j2:4: 'staff_name' is undefined"


def test_error_inside_a_partial_names_the_partial(tmp_path: Path) -> None:
    templates = load(
        tmp_path,
        {
            "en/x.txt.j2": MAIL + "{% include 'en/_part.txt.j2' %}",
            "en/_part.txt.j2": "ok\n{{ ticket_number / 0 }}",
        },
    )
    with pytest.raises(TemplateError) as caught:
        templates.render("x", SAMPLE_CONTEXT)
    assert str(caught.value) == (
        f"{tmp_path}/en/_part.txt.j2:2: ZeroDivisionError: division by zero"
    )


def test_check_reports_templates_that_compile_but_cannot_render(tmp_path: Path) -> None:
    templates = load(
        tmp_path,
        {
            "en/x.txt.j2": MAIL + "fine",
            "it/x.txt.j2": MAIL + "\n{{ subject|center(999999) }}",
        },
    )
    problems = templates.check()
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path}/it/x.txt.j2:4: ")


@pytest.mark.parametrize(
    ("source", "line", "complaint"),
    [
        ("Hello\n\nbody", 1, "must start with a 'Subject: …' line"),
        ("\nSubject: x\n\nbody", 2, "must start with a 'Subject: …' line"),
        ("subject: x\n\nbody", 1, "must start with a 'Subject: …' line"),
        ("Subject:   \n\nbody", 1, "must start with a 'Subject: …' line"),
        ("Subject: x\nbody", 1, "must be followed by a blank line"),
        ("Subject: x\n\n  \n", 1, "the body after the subject is empty"),
        ("Subject: {{ staff_name|default('') }}\n\nbody", 1, "'Subject: …' line"),
    ],
)
def test_output_must_read_like_a_mail(
    tmp_path: Path, source: str, line: int, complaint: str
) -> None:
    templates = load(tmp_path, {"en/x.txt.j2": source})
    context = dict(SAMPLE_CONTEXT, staff_name="")
    with pytest.raises(TemplateError) as caught:
        templates.render("x", context)
    assert str(caught.value).startswith(f"{tmp_path}/en/x.txt.j2:{line}: ")
    assert complaint in str(caught.value)


def test_subject_is_one_line_of_normalised_whitespace(tmp_path: Path) -> None:
    templates = load(tmp_path, {"en/x.txt.j2": "Subject:  a \t b  {{ subject }}\n\n body \n"})
    rendered = templates.render("x", dict(SAMPLE_CONTEXT, subject="c"))
    assert rendered == type(rendered)(subject="a b c", text=" body\n", html=None)


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        ({"it/x.txt.j2": MAIL + "x"}, "/en:1: no templates for the default language"),
        (
            {"en/x.txt.j2": MAIL + "x", "it/y.txt.j2": MAIL + "y"},
            "/it/y.txt.j2:1: missing from the default language 'en'",
        ),
        (
            {"en/x.txt.j2": MAIL + "x", "en/y.html.j2": "<p>y</p>"},
            "/en/y.html.j2:1: HTML template without a .txt.j2",
        ),
        (
            {"en/x.txt.j2": MAIL + "x", "en/Bad Name.txt.j2": MAIL},
            "/en/Bad Name.txt.j2:1: expected NAME.txt.j2 or NAME.html.j2",
        ),
        (
            {"en/x.txt.j2": MAIL + "x", "English/x.txt.j2": MAIL},
            "/English:1: not a language code",
        ),
    ],
)
def test_inconsistent_sets_do_not_load(
    tmp_path: Path, files: dict[str, str], complaint: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        load(tmp_path, files)
    assert complaint in str(caught.value)


def test_non_utf8_file_and_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "x.txt.j2").write_bytes(b"Subject: caf\xe9\n\nbody")
    with pytest.raises(TemplateError, match=r"/en/x\.txt\.j2:1: cannot read"):
        TemplateSet.load(tmp_path, "en")
    with pytest.raises(TemplateError, match="not a directory"):
        TemplateSet.load(tmp_path / "nowhere", "en")


# --- languages, context, snapshot -------------------------------------------------------


@pytest.fixture
def bilingual(tmp_path: Path) -> TemplateSet:
    return load(
        tmp_path,
        {
            "en/both.txt.j2": "Subject: en\n\nen",
            "it/both.txt.j2": "Subject: it\n\nit",
            "en/only.txt.j2": "Subject: en only\n\nen",
        },
    )


@pytest.mark.parametrize(
    ("name", "preferred", "expected"),
    [
        ("both", "it", "it"),
        ("both", "it-IT", "it"),
        ("both", "IT_ch", "it"),
        ("both", " it ", "it"),
        ("both", "de", "en"),
        ("both", "", "en"),
        ("both", None, "en"),
        ("only", "it", "en"),
    ],
)
def test_pick_language(
    bilingual: TemplateSet, name: str, preferred: str | None, expected: str
) -> None:
    assert bilingual.pick_language(name, preferred) == expected


def test_render_falls_back_to_the_default_language(bilingual: TemplateSet) -> None:
    assert bilingual.render("both", {}, "it").subject == "it"
    assert bilingual.render("only", {}, "it").subject == "en only"
    assert bilingual.render("both", {}).subject == "en"
    with pytest.raises(TemplateError, match="no template named 'nothing'"):
        bilingual.render("nothing", {})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subject", Markup("<b>trusted?</b>")),
        ("subject", object()),
        ("links", {"ticket": b"bytes"}),
        ("links", {1: "non-string key"}),
        ("excerpt", Path("/etc/passwd")),
        ("not_a_key", "x"),
    ],
)
def test_context_accepts_only_documented_plain_values(
    bilingual: TemplateSet, key: str, value: object
) -> None:
    with pytest.raises(TemplateError, match=repr(key)):
        bilingual.render("both", {key: value})


def test_context_values_are_copied_to_plain_types(tmp_path: Path) -> None:
    templates = load(
        tmp_path,
        {"en/x.txt.j2": "Subject: s\n\n{{ links.refs|list }} {{ links.refs|first }}"},
    )
    rendered = templates.render("x", {"links": {"refs": ("a", "b")}})
    assert rendered.text == "['a', 'b'] a\n"


def test_enum_values_are_plain_values(tmp_path: Path) -> None:
    class Priority(enum.StrEnum):
        HIGH = "high"

    class Level(enum.IntEnum):
        SECOND = 2

    source = "Subject: s\n\n{{ priority }} {{ escalation_level + 1 }}"
    templates = load(tmp_path, {"en/x.txt.j2": source})
    rendered = templates.render("x", {"priority": Priority.HIGH, "escalation_level": Level.SECOND})
    assert rendered.text == "high 3\n"


def test_loaded_set_is_a_snapshot_of_the_directory(tmp_path: Path) -> None:
    templates = load(
        tmp_path,
        {
            "en/x.txt.j2": "Subject: old\n\n{% include 'en/_p.txt.j2' %}",
            "en/_p.txt.j2": "old body",
        },
    )
    (tmp_path / "en" / "x.txt.j2").write_text("Subject: new\n\n{% broken", encoding="utf-8")
    (tmp_path / "en" / "_p.txt.j2").write_text("new body", encoding="utf-8")
    write(tmp_path, {"en/_added.txt.j2": "added"})
    rendered = templates.render("x", {})
    assert (rendered.subject, rendered.text) == ("old", "old body\n")


def test_quote_filter_prefixes_each_line(tmp_path: Path) -> None:
    assert render_body(tmp_path, "{{ 'a\\n\\nb  '|quote }}") == "> a\n>\n> b\n"


# --- every shipped template, both languages -----------------------------------------------

SHIPPED_SET = TemplateSet.load(default_templates_dir(), "en")
ABOUT_NO_TICKET = frozenset({"staff_query", "digest"})  # about no one ticket: no tag


@pytest.mark.parametrize("language", ["en", "it"])
@pytest.mark.parametrize("name", sorted(SHIPPED_SET.names()))
def test_every_shipped_template_renders_in_its_own_language(name: str, language: str) -> None:
    assert SHIPPED_SET.pick_language(name, language) == language, "no fallback needed"
    rendered = SHIPPED_SET.render(name, sample_context(language), language)
    assert ("[#1042]" in rendered.subject) is (name not in ABOUT_NO_TICKET)
    assert rendered.text.strip() and "None" not in rendered.text
    if rendered.html is not None:
        assert f'<html lang="{language}">' in rendered.html
        assert "<style" not in rendered.html, "the stylesheet is inlined"


def test_the_two_languages_say_different_things() -> None:
    english = SHIPPED_SET.render("acknowledgement", sample_context("en"), "en")
    italian = SHIPPED_SET.render("acknowledgement", sample_context("it"), "it")
    assert "Thank you" in english.text and "grazie" not in english.text
    assert "grazie" in italian.text and "Thank you" not in italian.text


# --- CSS inlining ------------------------------------------------------------------------

STYLED = """<!DOCTYPE html>
<html lang="en"><head><style>
p { color: #333333; margin: 0; }
.tag { font-weight: bold; }
@media (max-width: 600px) { p { font-size: 18px; } }
</style></head>
<body><p>Ticket <span class="tag">{{ ticket_tag }}</span></p>
<p style="margin: 1em">{{ excerpt }}</p>
</body></html>"""


def test_a_stylesheet_in_an_html_template_is_inlined(tmp_path: Path) -> None:
    templates = load(tmp_path, {"en/x.txt.j2": MAIL + "x", "en/x.html.j2": STYLED})
    html = templates.render("x", dict(SAMPLE_CONTEXT, excerpt="<b>hi</b>")).html
    assert html is not None
    assert '<span class="tag" style="font-weight: bold;">[#1042]</span>' in html
    assert '<p style="color: #333333;margin: 0;">Ticket' in html
    # The template's own style attribute wins over the stylesheet, as in a browser.
    assert '<p style="color: #333333;margin: 1em">&lt;b&gt;hi&lt;/b&gt;</p>' in html
    # Rules that cannot become attributes stay, for the clients that read them.
    assert "@media (max-width: 600px)" in html
    assert "p { color: #333333" not in html


def test_html_without_a_stylesheet_is_left_as_rendered(tmp_path: Path) -> None:
    source = '<p style="color: red">{{ ticket_tag }}</p>'
    templates = load(tmp_path, {"en/x.txt.j2": MAIL + "x", "en/x.html.j2": source})
    assert templates.render("x", SAMPLE_CONTEXT).html == '<p style="color: red">[#1042]</p>\n'


def test_a_linked_stylesheet_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.css"
    secret.write_text("p { color: #5ec2e7; }", encoding="utf-8")
    source = (
        f'<html><head><link rel="stylesheet" href="{secret}">'
        f'<link rel="stylesheet" href="file://{secret}"></head>'
        "<body><p>{{ ticket_tag }}</p></body></html>"
    )
    templates = load(tmp_path / "t", {"en/x.txt.j2": MAIL + "x", "en/x.html.j2": source})
    html = templates.render("x", SAMPLE_CONTEXT).html
    assert html is not None and "<p>[#1042]</p>" in html
    assert "5ec2e7" not in html and "secret.css" not in html


def test_the_shipped_acknowledgement_carries_its_styles_inline(shipped: TemplateSet) -> None:
    html = shipped.render("acknowledgement", SAMPLE_CONTEXT, "en").html
    assert html is not None
    assert "<style" not in html
    assert '<body style="font-family: Arial' in html
    assert '<blockquote style="margin: 0 0 1em 0;' in html


def test_a_set_without_a_mail_mailbridge_sends_never_goes_live(tmp_path: Path) -> None:
    shutil.copytree(default_templates_dir(), tmp_path / "set")
    (tmp_path / "set" / "en" / "staff_notification.txt.j2").unlink()
    with pytest.raises(TemplateError) as caught:
        TemplateSet.load(tmp_path / "set", "en")
    assert "en/staff_notification.txt.j2:1: missing" in str(caught.value)
    # The other languages may leave it out: the default language covers them.
    (tmp_path / "set" / "it" / "staff_notification.txt.j2").unlink()
    shutil.copy(
        default_templates_dir() / "en" / "staff_notification.txt.j2", tmp_path / "set" / "en"
    )
    assert "staff_notification" in TemplateSet.load(tmp_path / "set", "en").names()
