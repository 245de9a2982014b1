"""A sentence-embedding model for `[faq] semantic = "model"`, loaded from a folder the
operator placed (`[faq] model`), never fetched: mailbridge makes no network call for it.

Any model the sentence-transformers package loads from a folder will do; a small
multilingual one suits Italian and English questions against entries in either language
(the README's "FAQ answers" says how to install one). The package is optional: without
it, or without the folder, the configuration is refused with the key named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mailbridge.core.faq import Embed
from mailbridge.errors import ConfigError

__all__ = ["load_model"]


def load_model(source: str, folder: Path | None) -> Embed:
    """The model in `folder` as an embedding function; ConfigError naming faq.model."""
    if folder is None:
        raise ConfigError(
            f'{source}: faq.model: semantic = "model" needs the folder of a '
            'sentence-transformers model (or set semantic = "lexicon")'
        )
    if not folder.is_dir():
        raise ConfigError(f"{source}: faq.model: expected a model folder, {folder} is not one")
    try:
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            f"{source}: faq.model: the sentence-transformers package is not installed "
            "(pip install 'mailbridge[model]')"
        ) from None
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the folder holds, say so plainly
        raise ConfigError(f"{source}: faq.model: cannot load {folder}: {exc}") from None

    def embed(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        vectors = model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return [list(map(float, vector)) for vector in vectors]

    return embed
