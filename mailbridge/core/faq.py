"""FAQ entries and how well each answers a customer's question.

An operator keeps one Markdown file per FAQ entry: front matter between `---` lines
(`title`, optional `keywords`, `language`, and `status`, `ticket` and `saved`, which a draft
saved from a staff answer carries), then the answer. `parse_entry` reads one
file's text; `FaqIndex` ranks entries for a question with BM25 over the title and keywords
(weighted higher) and the body, after lower-casing, accent folding, Italian and English
stop words and Snowball stemming. Scores are relative to the best score the question could
reach, so one threshold works for short and long questions alike.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import snowballstemmer  # type: ignore[import-untyped]

from mailbridge.core.folding import strip_accents

FIELDS = frozenset({"title", "keywords", "language", "status", "ticket", "saved"})
# An entry without a status line is live; a "draft" is never offered (adapters/faq_files.py).
STATUSES = ("live", "draft")
TITLE_WEIGHT = 3
KEYWORDS_WEIGHT = 3
BODY_WEIGHT = 1
K1 = 1.2
B = 0.75
# Tuned on bench/faq_eval.py: below it, questions the FAQ does not cover start getting
# suggestions; above it, paraphrases of covered questions start getting none.
THRESHOLD = 0.25
STEMMERS = {"it": "italian", "en": "english"}

_FENCE = "---"
_LANGUAGE_RE = re.compile(r"[a-z]{2}")
_TICKET_RE = re.compile(r"[0-9]{1,12}")
_WORD_RE = re.compile(r"[^\W\d_]+")

# Function words, plus the greetings and politeness every support mail carries: they say
# nothing about which answer fits. Written without accents, as texts are folded first.
_STOP_EN = """
a about after again all am an and any are as at be been before being but by can could
did do does doing for from had has have having he her here hers him his how i if in into
is it its just me my myself no not now of off on once only or other our ours out over
own same she should so some such than that the their them then there these they this
those through to too under until up very was we were what when where which while who why
will with would you your yours also get got im ive dont cant id ill
hello hi dear good morning afternoon evening thanks thank please regards kind best
would like want wanted need know tell wondering question help hey team sir madam
one two three four five still yet already
"""
_STOP_IT = """
a ad al alla alle allo agli ai anche avere avete abbiamo ho hai ha hanno che chi ci come
con contro cui da dal dalla dalle dagli dai dei del della delle dello degli di dove e ed
essere gli ha i il in io la le lei li lo loro lui ma me mi mia mie miei mio ne nei nel
nella nelle negli no noi non nostro o per perche piu quale quali quando quanto quella
quelle quelli quello questa queste questi questo se sei si sia siamo sono su sua sue sui
sul sulla suo suoi ti tra tu tua tue tuo tuoi un una uno vi voi vostro fra gia ancora
sto sta stato stata posso puo possono devo deve fare faccio fa
buongiorno buonasera salve ciao gentile gentili grazie cortesia cordiali saluti vorrei
volevo sapere chiedere chiedo domanda aiuto favore potreste potete mai poi cosa
tutto tutti tutta tutte voglio ora volta volte dentro uno due tre quattro cinque
"""
STOP_WORDS = frozenset((_STOP_EN + _STOP_IT).split())


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ answer as the operator wrote it."""

    file: str
    title: str
    keywords: tuple[str, ...]
    language: str | None
    body: str
    status: str = "live"
    ticket: int | None = None  # the ticket a draft was saved from
    saved: date | None = None  # the day it was saved


@dataclass(frozen=True)
class Match:
    """An entry and how well it answers the question (0–1, relative to the best possible)."""

    entry: FaqEntry
    score: float


def parse_entry(name: str, text: str) -> FaqEntry:
    """The entry in one FAQ file's text; ValueError naming the file and the problem."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != _FENCE:
        raise ValueError(f"{name}: start the file with a '---' line, then the front matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == _FENCE)
    except StopIteration:
        raise ValueError(f"{name}: close the front matter with a '---' line") from None
    fields = _front_matter(name, lines[1:end])
    title = fields.get("title")
    if not isinstance(title, str) or not title:
        raise ValueError(f"{name}: add a 'title:' line to the front matter")
    keywords = fields.get("keywords", ())
    language = fields.get("language")
    if isinstance(keywords, str):
        keywords = tuple(_split_list(name, keywords))
    if language is not None and (
        not isinstance(language, str) or not _LANGUAGE_RE.fullmatch(language)
    ):
        raise ValueError(f"{name}: 'language' must be a two-letter code such as it or en")
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise ValueError(f"{name}: write the answer after the closing '---' line")
    status, ticket, saved = _provenance(name, fields)
    return FaqEntry(name, title, tuple(keywords), language or None, body, status, ticket, saved)


def _provenance(
    name: str, fields: dict[str, str | tuple[str, ...]]
) -> tuple[str, int | None, date | None]:
    """The `status`, `ticket` and `saved` fields: whether the entry is live, and where a
    draft came from."""
    status, ticket, saved = (fields.get(key) for key in ("status", "ticket", "saved"))
    if isinstance(status, str):
        status = status.lower()
    if status is not None and status not in STATUSES:
        raise ValueError(f"{name}: 'status' must be live or draft (or left out: live)")
    if ticket is not None and not (isinstance(ticket, str) and _TICKET_RE.fullmatch(ticket)):
        raise ValueError(f"{name}: 'ticket' must be a ticket number such as 1042")
    try:
        day = date.fromisoformat(saved) if isinstance(saved, str) else None
    except ValueError:
        day = None
    if saved is not None and day is None:
        raise ValueError(f"{name}: 'saved' must be a day such as 2026-11-23")
    return str(status or "live"), int(ticket) if ticket else None, day


def _front_matter(name: str, lines: Sequence[str]) -> dict[str, str | tuple[str, ...]]:
    fields: dict[str, str | tuple[str, ...]] = {}
    current: str | None = None  # the key whose `- item` lines follow
    for number, raw in enumerate(lines, start=2):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("- ") and current is not None:
            previous = fields.get(current, ())
            assert isinstance(previous, tuple)
            fields[current] = (*previous, _unquote(line[2:]))
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or key not in FIELDS:
            raise ValueError(
                f"{name}: line {number} of the front matter is not 'title:', 'keywords:', "
                f"'language:', 'status:', 'ticket:' or 'saved:' followed by a value"
            )
        if key in fields:
            raise ValueError(f"{name}: '{key}' appears twice in the front matter")
        value = value.strip()
        current = key if key == "keywords" and not value else None
        fields[key] = () if current else _unquote(value)
    return fields


def _split_list(name: str, value: str) -> list[str]:
    if not (value.startswith("[") and value.endswith("]")):
        raise ValueError(f"{name}: write keywords as [a, b] or as '- a' lines under 'keywords:'")
    return [_unquote(item) for item in value[1:-1].split(",") if item.strip()]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


@lru_cache(maxsize=len(STEMMERS))
def _stemmer(language: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(STEMMERS[language])


def _fold(text: str) -> str:
    return strip_accents(text.lower())


def terms(text: str, language: str | None) -> list[str]:
    """Folded, stemmed content words of text; both stemmers when the language is unknown."""
    words = [w for w in _WORD_RE.findall(_fold(text)) if len(w) > 1 and w not in STOP_WORDS]
    languages = [language] if language in STEMMERS else list(STEMMERS)
    out: list[str] = []
    for word in words:
        stems = {str(_stemmer(lang).stemWord(word)) for lang in languages}
        out.extend(sorted(stems))
    return out


class FaqIndex:
    """BM25 over FAQ entries; build once, rank many questions."""

    def __init__(self, entries: Sequence[FaqEntry], docs: Sequence[Counter[str]]) -> None:
        self.entries = tuple(entries)
        self._docs = tuple(docs)
        self._lengths = [sum(doc.values()) for doc in docs]
        self._avg_length = (sum(self._lengths) / len(docs)) if docs else 1.0
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        count = len(docs)
        self._idf = {t: _idf(count, n) for t, n in df.items()}
        self._unseen_idf = _idf(count, 0)

    @classmethod
    def build(cls, entries: Iterable[FaqEntry]) -> FaqIndex:
        entries = list(entries)
        return cls(entries, [_weighted_terms(e) for e in entries])

    def rank(
        self, question: str, language: str | None, threshold: float = THRESHOLD
    ) -> list[Match]:
        """Entries answering question, best first, scoring above threshold. Entries in
        another language than the question's are skipped when both are known."""
        query_terms: dict[str | None, list[str]] = {}
        matches: list[Match] = []
        for entry, doc, length in zip(self.entries, self._docs, self._lengths, strict=True):
            if language and entry.language and entry.language != language:
                continue
            stem_language = language or entry.language
            if stem_language not in query_terms:
                query_terms[stem_language] = list(dict.fromkeys(terms(question, stem_language)))
            score = self._relative_score(query_terms[stem_language], doc, length)
            if score > threshold:
                matches.append(Match(entry, round(score, 4)))
        return sorted(matches, key=lambda m: (-m.score, m.entry.file))

    def _relative_score(self, query: Sequence[str], doc: Counter[str], length: int) -> float:
        best = sum(self._idf.get(t, self._unseen_idf) for t in query) * (K1 + 1)
        if not best:
            return 0.0
        norm = K1 * (1 - B + B * length / self._avg_length)
        score = 0.0
        for term in query:
            tf = doc.get(term, 0)
            if tf:
                score += self._idf[term] * tf * (K1 + 1) / (tf + norm)
        return score / best


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*\d])")
MAIL_PIECES = 6  # sentences of a mail tried, each with the subject


def rank_mail(
    index: FaqIndex, subject: str, text: str, language: str | None, threshold: float = THRESHOLD
) -> list[Match]:
    """Entries answering a whole mail, best first. A mail says far more than its question,
    and every word no entry uses lowers a relative score; so the subject, and the subject
    with each of the first sentences, are ranked on their own, and each entry keeps its
    best score."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 3]
    pieces = [subject, *(f"{subject}\n{s}" for s in sentences[:MAIL_PIECES])]
    best: dict[str, Match] = {}
    for piece in filter(str.strip, pieces):
        for match in index.rank(piece, language, threshold):
            if not _names_it(match.entry, piece):
                continue  # one shared word ("charging" ~ "charges") is no sign of the topic
            known = best.get(match.entry.file)
            if known is None or match.score > known.score:
                best[match.entry.file] = match
    return sorted(best.values(), key=lambda m: (-m.score, m.entry.file))


def _names_it(entry: FaqEntry, piece: str) -> bool:
    """The piece shares a word with the entry's title or keywords and, unless it is a
    question of a word or two, another with the entry anywhere: a longer text that brushes
    one word of an entry ("charging" ~ "charges") is about something else."""
    said = set(terms(piece, entry.language))
    named = said.intersection(terms(" ".join([entry.title, *entry.keywords]), entry.language))
    shared = named | said.intersection(terms(entry.body, entry.language))
    return bool(named) and (len(shared) > 1 or len(said) <= 2)


def _idf(count: int, df: int) -> float:
    return math.log(1 + (count - df + 0.5) / (df + 0.5))


def _weighted_terms(entry: FaqEntry) -> Counter[str]:
    doc: Counter[str] = Counter()
    for text, weight in (
        (entry.title, TITLE_WEIGHT),
        (" ".join(entry.keywords), KEYWORDS_WEIGHT),
        (entry.body, BODY_WEIGHT),
    ):
        for term in terms(text, entry.language):
            doc[term] += weight
    return doc


SOLVED_PHRASES = (
    "solved",
    "resolved",
    "problem solved",
    "issue solved",
    "all sorted",
    "risolto",
    "ho risolto",
    "problema risolto",
    "tutto risolto",
    "tutto a posto",
)
_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "yet",
        "isnt",
        "wasnt",
        "havent",
        "hasnt",
        "didnt",
        "dont",
        "cant",
        "couldnt",
        "non",
        "ancora",
        "mai",
        "nemmeno",
    }
)
_SHORT_REPLY = 40  # words: a longer reply tells more than "solved" and wants a person


def says_solved(reply: str, phrases: Sequence[str] = SOLVED_PHRASES) -> bool:
    """True when a customer's reply (its own text, quote removed) just says the matter is
    solved: short, no question, one of `phrases` as whole words, and not negated ("not
    solved yet", "non è ancora risolto")."""
    words = _fold(reply.replace("'", "").replace("\u2019", "")).split()
    words = [w.strip('.,;:!()[]"') for w in words]
    words = [w for w in words if w]
    if not words or len(words) > _SHORT_REPLY or "?" in reply:
        return False
    for phrase in phrases:
        wanted = _fold(phrase).split()
        for start in range(len(words) - len(wanted) + 1):
            if words[start : start + len(wanted)] == wanted:
                before = words[max(0, start - 3) : start]
                if not _NEGATIONS.intersection(before):
                    return True
    return False


# Markdown marks that mean nothing in a plain mail, and what is left of each.
_MARKDOWN = (
    (re.compile(r"^```.*$\n?", re.M), ""),  # code fences; the code itself stays
    (re.compile(r"!?\[([^\]]+)\]\(\s*<?([^)\s>]+)>?[^)]*\)"), r"\1 (\2)"),  # links
    (re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M), r"\1"),  # headings
    (re.compile(r"^ {0,3}>\s?", re.M), ""),  # block quotes
    (re.compile(r"^(\s*)[*+]\s+", re.M), r"\1- "),  # list items
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),  # inline code
)


def plain_text(markdown: str) -> str:
    """An FAQ answer as a plain mail shows it: the words and link targets, not the marks."""
    text = markdown
    for pattern, replacement in _MARKDOWN:
        text = pattern.sub(replacement, text)
    return text.strip()
