"""Making what was written to disk survive a crash: the ground the files store
(db/blobs.py) and the FAQ drafts (adapters/faq_drafts.py) stand on."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["sync_directory"]


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (a new name, a removed one) survive a crash."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
