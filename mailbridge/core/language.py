"""Guessing the language of a message body (ISO 639-1), or admitting we cannot."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Languages support mail realistically arrives in; restricting the model to them
# makes short texts far less likely to come out as an exotic neighbour.
LANGUAGES: tuple[str, ...] = (
    "en", "it", "de", "fr", "es", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs",
    "ru", "uk", "el", "tr", "ro", "hu", "ja", "zh", "ko", "ar", "he",
)  # fmt: skip
SAMPLE_CHARS = 3000  # detection settles long before this; more only costs time
MIN_LETTERS = 20
MIN_CONFIDENCE = 0.6

_NOISE_RE = re.compile(r"https?://\S+|\S+@\S+|[\d_]+|[^\w\s]+")


@lru_cache(maxsize=1)
def _identifier() -> Any:
    # The model ships inside the package; loading it is slow, so it happens once.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of `text`, or None when it is too short or ambiguous."""
    sample = _NOISE_RE.sub(" ", text[:SAMPLE_CHARS])
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return None
    language, confidence = _identifier().classify(sample)
    if confidence < MIN_CONFIDENCE:
        return None
    return str(language)
