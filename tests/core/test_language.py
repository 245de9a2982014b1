"""Language detection, and the compact way its model is read."""

from __future__ import annotations

import numpy as np
import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

from mailbridge.core.language import LANGUAGES, _compact_identifier, detect_language

pytestmark = pytest.mark.unit

SAMPLES = {
    "it": "Buongiorno, vi scrivo perché l'ordine non è ancora arrivato e nessuno risponde.",
    "de": "Sehr geehrte Damen und Herren, meine Bestellung ist leider immer noch nicht da.",
    "fr": "Bonjour, ma commande n'est toujours pas arrivée et personne ne me répond.",
    "en": "Hello, my order still has not arrived and nobody answers the phone.",
    "es": "Hola, mi pedido todavía no ha llegado y nadie contesta al teléfono.",
}


@pytest.mark.parametrize(("language", "text"), SAMPLES.items())
def test_detects_the_language_of_a_plain_message(language: str, text: str) -> None:
    assert detect_language(text) == language


def test_too_little_text_gives_no_language() -> None:
    assert detect_language("ok 123 http://x.example/a?b=c") is None


def test_the_compact_model_is_the_library_model_restricted() -> None:
    library = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    library.set_languages(list(LANGUAGES))
    compact = _compact_identifier()

    assert compact.nb_classes == library.nb_classes
    assert np.array_equal(compact.nb_ptc, library.nb_ptc)
    assert compact.nb_ptc.dtype == library.nb_ptc.dtype
    assert np.array_equal(compact.nb_pc, library.nb_pc)
    assert compact.tk_nextmove == library.tk_nextmove
    assert compact.tk_row == library.tk_row
    assert compact.tk_output == library.tk_output
    for text in [*SAMPLES.values(), "Grazie mille", "x" * 50]:
        assert compact.classify(text) == library.classify(text)
