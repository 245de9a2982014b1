"""Imported by the forkserver that forks parse workers, never by the daemon itself.

Everything a worker needs is read here once: the parser and the libraries it calls, and the
language model. Each worker is then a fork that shares those pages, ready at once.
"""

from __future__ import annotations

import charset_normalizer  # noqa: F401 - imported for the workers forked from here
import compressed_rtf  # type: ignore[import-untyped]  # noqa: F401
import tnefparse  # type: ignore[import-untyped]  # noqa: F401 - a winmail.dat's (core/tnef.py)

from mailbridge import heap
from mailbridge.core.language import load_model
from mailbridge.core.mime_text import html_to_texts
from mailbridge.inbound import prepare  # noqa: F401

load_model()
html_to_texts("<p>ready</p>")  # imports inscriptis and lxml, builds the converter
heap.settle()  # a worker's collections then leave the pages it shares with us alone
