"""The words of FAQ entries and questions: lower-cased, accent-folded, Italian and English
stop words removed, Snowball-stemmed (core/faq.py ranks on them, core/faq_concepts.py
maps them to concepts)."""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer  # type: ignore[import-untyped]

from mailbridge.core.folding import strip_accents

STEMMERS = {"it": "italian", "en": "english"}
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


@lru_cache(maxsize=len(STEMMERS))
def _stemmer(language: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(STEMMERS[language])


def fold(text: str) -> str:
    return strip_accents(text.lower())


CACHED_WORD = 40  # letters: a longer "word" is rare, or a hostile sender's, and not kept


def stem(word: str, language: str) -> str:
    if len(word) > CACHED_WORD:
        return str(_stemmer(language).stemWord(word))
    return _cached_stem(word, language)


@lru_cache(maxsize=1 << 15)  # words repeat: entries, questions and the lexicon share most
def _cached_stem(word: str, language: str) -> str:
    return str(_stemmer(language).stemWord(word))


def content_words(text: str) -> list[str]:
    """The folded words of text that say something: no stop words, no single letters."""
    return [w for w in _WORD_RE.findall(fold(text)) if len(w) > 1 and w not in STOP_WORDS]


def languages_of(language: str | None) -> list[str]:
    """The stemmers for a text: its language's, or both when it is unknown."""
    return [language] if language in STEMMERS else list(STEMMERS)


def terms(text: str, language: str | None) -> list[str]:
    """Folded, stemmed content words of text; both stemmers when the language is unknown."""
    languages = languages_of(language)
    out: list[str] = []
    for word in content_words(text):
        out.extend(sorted({stem(word, lang) for lang in languages}))
    return out
