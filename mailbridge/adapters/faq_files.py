"""The FAQ folder on disk: every *.md file in `[faq] dir`, parsed and indexed at load.

A bad entry is a configuration error naming its file, found when the configuration is
loaded or reloaded, so a broken FAQ never goes live. An entry whose front matter says
`status: draft` is read (so a broken one is still reported) and left out of the index, so
no customer is offered it: a draft copied into the folder as it was saved, or an entry an
operator withdrew for a while.
"""

from __future__ import annotations

import logging

from mailbridge.adapters.faq_model import load_model
from mailbridge.config import Config
from mailbridge.core.faq import THRESHOLD, FaqIndex, Match, parse_entry, rank_mail
from mailbridge.errors import ConfigError

__all__ = ["load_index", "suggest", "threshold"]

log = logging.getLogger(__name__)


def load_index(config: Config) -> FaqIndex | None:
    """The index of `config.faq.dir`, or None when no folder is configured."""
    folder = config.faq.dir
    if folder is None:
        return None
    if not folder.is_dir():
        raise ConfigError(
            f"{config.source}: faq.dir: expected a folder of FAQ entries, {folder} is not one"
        )
    entries = []
    for path in sorted(folder.glob("*.md")):
        try:
            entries.append(parse_entry(path.name, path.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if not entries:
        raise ConfigError(
            f"{config.source}: faq.dir: expected *.md entries in {folder}, found none"
        )
    drafts = [e.file for e in entries if e.status == "draft"]
    if drafts:
        log.warning(
            "FAQ entries in %s not offered, their status is draft: %s (to offer one, "
            "remove its status line or write status: live)",
            folder,
            ", ".join(drafts),
        )
    faq = config.faq
    embed = load_model(str(config.source), faq.model) if faq.semantic == "model" else None
    return FaqIndex.build((e for e in entries if e.status == "live"), faq.semantic, embed)


def threshold(config: Config) -> float:
    return config.faq.threshold or THRESHOLD


def suggest(
    config: Config, index: FaqIndex, subject: str, text: str, language: str | None
) -> list[Match]:
    """The best entries for a customer's mail, as many as `[faq] suggestions` allows."""
    return rank_mail(index, subject, text, language, threshold(config))[: config.faq.suggestions]
