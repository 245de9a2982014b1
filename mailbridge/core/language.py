"""Guessing the language of a message body (ISO 639-1), or admitting we cannot."""

from __future__ import annotations

import re
from array import array
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

# An address can only match from the start of a word (when it fails there, it fails at every
# later start); tried from each character, a long word without "@" cost its length squared.
_NOISE_RE = re.compile(r"https?://\S+|(?<!\S)\S+@\S+|[\d_]+|[^\w\s]+")


@lru_cache(maxsize=1)
def _identifier() -> Any:
    # The model ships inside the package; loading it is slow, so it happens once.
    try:
        return _compact_identifier()
    except Exception:  # noqa: BLE001 - a model file laid out otherwise: the library's way
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # type: ignore[import-untyped]

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(LANGUAGES))
        return identifier


def _compact_identifier() -> Any:
    """The identifier py3langid builds, restricted to LANGUAGES, read with a third of the
    memory. py3langid keeps the weights of all its 97 languages beside the restricted copy
    (28 MB) and converts the 39 MB state table with a second copy of it; here only the
    restricted weights are kept and the table is read in pieces. The result is the same
    arrays, so the same classifications."""
    import lzma
    import shutil
    import tempfile
    import zipfile

    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    with tempfile.TemporaryFile() as unpacked:  # as py3langid: the npz is never all in memory
        with lzma.open(MODEL_DIR / MODEL_FILE) as packed:
            shutil.copyfileobj(packed, unpacked, 1 << 20)
        unpacked.seek(0)
        with np.load(unpacked, allow_pickle=False) as data:
            classes = data["classes"].tolist()
            keep = [i for i, name in enumerate(classes) if name in LANGUAGES]
            weights = data["ptc"][:, keep]  # a copy; the full array is freed here
            priors = data["pc"][keep]
            rows = _as_array(data["nextmove_row"])
            outputs = data["out_feat"].tolist()
        unpacked.seek(0)
        with zipfile.ZipFile(unpacked) as archive, archive.open("nextmove.npy") as member:
            table = _read_array(np.lib.format, member)
    return LanguageIdentifier(
        weights, priors, [classes[i] for i in keep], table, outputs, norm_probs=True, tk_row=rows
    )


_TYPECODES = {2: "H", 4: "I", 8: "L"}  # unsigned, by item size, as py3langid converts them


def _as_array(values: Any) -> array[int]:
    if values.ndim != 1 or values.dtype.kind != "u" or not values.dtype.isnative:
        raise ValueError(f"unexpected state rows {values.dtype} {values.shape}")
    table = array(_TYPECODES[values.dtype.itemsize])
    table.frombytes(values.tobytes())
    return table


def _read_array(npy_format: Any, member: Any) -> array[int]:
    """A 1-d unsigned .npy member as a stdlib array, read a megabyte at a time."""
    version = npy_format.read_magic(member)
    header = (
        npy_format.read_array_header_2_0 if version >= (2, 0) else npy_format.read_array_header_1_0
    )
    shape, fortran_order, dtype = header(member)
    if len(shape) != 1 or dtype.kind != "u" or not dtype.isnative:
        raise ValueError(f"unexpected state table {dtype} {shape}")
    table = array(_TYPECODES[dtype.itemsize])
    remaining = shape[0] * dtype.itemsize
    while remaining:
        piece = member.read(min(remaining, 1 << 20))
        if not piece:
            raise ValueError("state table cut short")
        table.frombytes(piece)
        remaining -= len(piece)
    return table


def load_model() -> None:
    """Load the model now rather than at the first detection (a process that parses
    whole passes loads it first, before its heap holds anything else)."""
    _identifier()


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of `text`, or None when it is too short or ambiguous."""
    sample = _NOISE_RE.sub(" ", text[:SAMPLE_CHARS])
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return None
    language, confidence = _identifier().classify(sample)
    if confidence < MIN_CONFIDENCE:
        return None
    return str(language)
