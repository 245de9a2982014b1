"""FAQ entries and how well each answers a customer's question.

An operator keeps one Markdown file per FAQ entry: front matter between `---` lines
(`title`, optional `keywords`, `language`, and `status`, `ticket` and `saved`, which a draft
saved from a staff answer carries), then the answer. `parse_entry` reads one
file's text; `FaqIndex` ranks entries for a question with BM25 over the title and keywords
(weighted higher) and the body, after lower-casing, accent folding, Italian and English
stop words and Snowball stemming (core/faq_terms.py). Scores are relative to the best score
the question could reach, so one threshold works for short and long questions alike.

A question that shares no word with any entry ("shut down my profile", "estinguere il
conto") is ranked again on meaning, as `[faq] semantic` says: `lexicon` ranks the same way
on concepts (core/faq_concepts.py: words of either language grouped by what they mean),
`model` on a sentence-embedding model's cosine similarity (adapters/faq_model.py); `off`
ranks on words alone. Words come first: an entry that shares words with the question
answers it; meaning is asked only when none does.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from mailbridge.core.faq_concepts import PREFIX, Lexicon, shipped
from mailbridge.core.faq_terms import STEMMERS, STOP_WORDS, fold, terms

__all__ = [
    "MODES",
    "STEMMERS",
    "STOP_WORDS",
    "Embed",
    "FaqEntry",
    "FaqIndex",
    "Match",
    "parse_entry",
    "plain_text",
    "rank_mail",
    "says_solved",
    "terms",
]

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

_FENCE = "---"
_LANGUAGE_RE = re.compile(r"[a-z]{2}")
_TICKET_RE = re.compile(r"[0-9]{1,12}")


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
    """An entry and how well it answers the question (0–1: relative to the best possible,
    or a model's cosine similarity), and why: `how` it matched ("words", "concepts" or
    "model"), the terms it shares with the question (stems, or concepts as "~name") and the
    cut-off its score passed."""

    entry: FaqEntry
    score: float
    how: str = "words"
    shared: tuple[str, ...] = ()
    cutoff: float = 0.0


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


MODES = ("off", "lexicon", "model")
# Tuned on bench/faq_paraphrase.py's TUNING and bench/faq_tuning2.py's questions, so that
# questions no entry answers get no more suggestions than from words alone (bench/faq_eval.py
# reports the held-out ones): the concept ranking's cut-off, how many concepts must be
# shared, how much a word neither the FAQ nor the lexicon knows (a town, a product) counts
# against a question, and in how many entries at most (a share of them, or two) a concept
# the question shares with an entry's title or keywords may be: a concept most entries
# speak of ("days") names no topic.
CONCEPT_THRESHOLD = 0.3
CONCEPTS_SHARED = 2  # distinct concepts a question shares with an entry, at least
UNSEEN_WEIGHT = 0.5
SPECIFIC_SHARE = 0.36
# Cosine similarity a model's suggestion needs: a starting point (no model ships with
# mailbridge). On the tuning sets, English-only all-MiniLM-L6-v2 found no better one (the
# README's "FAQ answers"); check it with `mailbridge faq test` on the model installed.
MODEL_THRESHOLD = 0.5
MODEL_CHARS = 1000  # of an entry's text embedded: its title, keywords and first lines

# Texts in, one vector each out: a sentence-embedding model (adapters/faq_model.py).
Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]


class _Bm25:
    """BM25 over term bags; scores relative to the best the query could reach."""

    def __init__(self, docs: Sequence[Counter[str]]) -> None:
        self.docs = tuple(docs)
        self._lengths = [sum(doc.values()) for doc in docs]
        self._avg_length = (sum(self._lengths) / len(docs)) if docs else 1.0
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        self.df = df
        self.idf = {t: _idf(len(docs), n) for t, n in df.items()}
        self._unseen_idf = _idf(len(docs), 0)

    def relative(self, query: Sequence[str], i: int, unseen_weight: float = 1.0) -> float:
        unseen = self._unseen_idf * unseen_weight
        best = sum(self.idf.get(t, unseen) for t in query) * (K1 + 1)
        if not best:
            return 0.0
        doc = self.docs[i]
        norm = K1 * (1 - B + B * self._lengths[i] / self._avg_length)
        score = 0.0
        for term in query:
            tf = doc.get(term, 0)
            if tf:
                score += self.idf[term] * tf * (K1 + 1) / (tf + norm)
        return score / best


class FaqIndex:
    """Entries ranked on words and, as `semantic` says, on meaning; build once, rank many
    questions."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        semantic: str = "off",
        embed: Embed | None = None,
        lexicon: Lexicon | None = None,
    ) -> None:
        if semantic not in MODES:
            raise ValueError(f"semantic: expected one of {', '.join(MODES)}, not {semantic!r}")
        if semantic == "model" and embed is None:
            raise ValueError("semantic = 'model' needs a model to embed with")
        self.entries = tuple(entries)
        self.semantic = semantic
        self._languages = frozenset(e.language for e in entries if e.language)
        self._words = _Bm25([_weighted(e, terms) for e in entries])
        # Per entry: the words of its title and keywords, and of all of it (`names`).
        self._said = {
            id(e): (
                frozenset(terms(_head(e), e.language)),
                frozenset(terms(f"{_head(e)}\n{e.body}", e.language)),
            )
            for e in entries
        }
        self.lexicon = (lexicon or shipped()) if semantic == "lexicon" else None
        if self.lexicon is not None:
            analyse = self.lexicon.entry_terms
            self._concepts = _Bm25([_weighted(e, analyse) for e in entries])
            self._named_concepts = [set(analyse(_head(e), e.language)) for e in entries]
        self._embed = embed if semantic == "model" else None
        if self._embed is not None:
            texts = [f"{_head(e)}\n{e.body}"[:MODEL_CHARS] for e in entries]
            self._vectors = [_unit(v) for v in self._embed(texts)]

    @classmethod
    def build(
        cls, entries: Iterable[FaqEntry], semantic: str = "off", embed: Embed | None = None
    ) -> FaqIndex:
        return cls(list(entries), semantic, embed)

    def _answers(self, entry: FaqEntry, language: str | None) -> bool:
        """Entries in another language than the question's are skipped when both are
        known, unless no entry is in the question's language: then any may answer it."""
        return not (
            language
            and entry.language
            and entry.language != language
            and language in self._languages
        )

    def rank(
        self, question: str, language: str | None, threshold: float = THRESHOLD
    ) -> list[Match]:
        """Entries sharing words with question, best first, scoring above threshold."""
        query_terms: dict[str | None, list[str]] = {}
        matches: list[Match] = []
        for i, entry in enumerate(self.entries):
            if not self._answers(entry, language):
                continue
            stem_language = language or entry.language
            if stem_language not in query_terms:
                query_terms[stem_language] = list(dict.fromkeys(terms(question, stem_language)))
            query = query_terms[stem_language]
            score = self._words.relative(query, i)
            if score > threshold:
                shared = tuple(t for t in query if t in self._words.docs[i])
                matches.append(Match(entry, round(score, 4), "words", shared, threshold))
        return _ordered(matches)

    def names(self, entry: FaqEntry, piece: str) -> bool:
        """The piece shares a word with the entry's title or keywords and, unless it is a
        question of a word or two, another with the entry anywhere: a longer text that
        brushes one word of an entry ("charging" ~ "charges") is about something else."""
        head, whole = self._said[id(entry)]
        said = set(terms(piece, entry.language))
        return bool(said & head) and (len(said & whole) > 1 or len(said) <= 2)

    def rank_concepts(
        self, question: str, language: str | None, cutoff: float = CONCEPT_THRESHOLD
    ) -> list[Match]:
        """Entries sharing concepts with question, best first: two at least, one of them
        named by the entry's title or keywords and rare among the entries, and the
        question saying more than one thing the entry does (unless it says only one or two
        things)."""
        if self.lexicon is None:
            return []
        said = self.lexicon.question_terms(question, language)
        query = list(dict.fromkeys(said))
        specific = max(2, SPECIFIC_SHARE * len(self.entries))
        matches: list[Match] = []
        for i, entry in enumerate(self.entries):
            if not self._answers(entry, language):
                continue
            shared = {t for t in query if t in self._concepts.docs[i]}
            named = shared & self._named_concepts[i]
            if not named or min(self._concepts.df[t] for t in named) > specific:
                continue
            if len(query) > 2 and sum(t in shared for t in said) < 2:
                continue
            if sum(t.startswith(PREFIX) for t in shared) < CONCEPTS_SHARED:
                continue
            score = self._concepts.relative(query, i, UNSEEN_WEIGHT)
            if score > cutoff:
                kept = tuple(t for t in query if t in shared)
                matches.append(Match(entry, round(score, 4), "concepts", kept, cutoff))
        return _ordered(matches)

    def rank_model(
        self, question: str, language: str | None, cutoff: float = MODEL_THRESHOLD
    ) -> list[Match]:
        """Entries by the model's cosine similarity to question, above cutoff."""
        if self._embed is None:
            return []
        (vector,) = self._embed([question])
        asked = _unit(vector)
        matches = []
        for entry, known in zip(self.entries, self._vectors, strict=True):
            if self._answers(entry, language):
                score = sum(a * b for a, b in zip(asked, known, strict=True))
                if score > cutoff:
                    matches.append(Match(entry, round(score, 4), "model", (), cutoff))
        return _ordered(matches)


def _ordered(matches: list[Match]) -> list[Match]:
    return sorted(matches, key=lambda m: (-m.score, m.entry.file))


def _head(entry: FaqEntry) -> str:
    return " ".join([entry.title, *entry.keywords])


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*\d])")
MAIL_PIECES = 6  # sentences of a mail tried, each with the subject


def rank_mail(
    index: FaqIndex, subject: str, text: str, language: str | None, threshold: float = THRESHOLD
) -> list[Match]:
    """Entries answering a whole mail, best first. A mail says far more than its question,
    and every word no entry uses lowers a relative score; so the subject, and the subject
    with each of the first sentences, are ranked on their own, and each entry keeps its
    best score. Entries sharing words come first; only when none does is the mail ranked
    on meaning, as the index's `semantic` mode says."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 3]
    pieces = [
        p for p in [subject, *(f"{subject}\n{s}" for s in sentences[:MAIL_PIECES])] if p.strip()
    ]
    found = _best(
        match
        for piece in pieces
        for match in index.rank(piece, language, threshold)
        if index.names(match.entry, piece)  # one shared word ("charging" ~ "charges"): no sign
    )
    if found or index.semantic == "off":
        return found
    stricter = threshold / THRESHOLD  # an operator's own threshold moves the others alike
    if index.semantic == "model":
        asked = f"{subject}\n{' '.join(sentences[:MAIL_PIECES])}"
        return index.rank_model(asked, language, MODEL_THRESHOLD * stricter)
    cutoff = CONCEPT_THRESHOLD * stricter
    return _best(m for piece in pieces for m in index.rank_concepts(piece, language, cutoff))


def _best(matches: Iterable[Match]) -> list[Match]:
    """Each entry once, with its best score."""
    best: dict[str, Match] = {}
    for match in matches:
        known = best.get(match.entry.file)
        if known is None or match.score > known.score:
            best[match.entry.file] = match
    return _ordered(list(best.values()))


def _idf(count: int, df: int) -> float:
    return math.log(1 + (count - df + 0.5) / (df + 0.5))


def _weighted(entry: FaqEntry, analyse: Callable[[str, str | None], list[str]]) -> Counter[str]:
    doc: Counter[str] = Counter()
    for text, weight in (
        (entry.title, TITLE_WEIGHT),
        (" ".join(entry.keywords), KEYWORDS_WEIGHT),
        (entry.body, BODY_WEIGHT),
    ):
        for term in analyse(text, entry.language):
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
    words = fold(reply.replace("'", "").replace("\u2019", "")).split()
    words = [w.strip('.,;:!()[]"') for w in words]
    words = [w for w in words if w]
    if not words or len(words) > _SHORT_REPLY or "?" in reply:
        return False
    for phrase in phrases:
        wanted = fold(phrase).split()
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
