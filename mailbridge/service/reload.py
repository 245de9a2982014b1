"""Reloading on SIGHUP and when template files change: a new configuration or template set
is loaded and checked in full first, and replaces the running one only when it is good."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mailbridge.adapters.faq_files import load_index
from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.app import open_templates
from mailbridge.config import Config, load_config
from mailbridge.core.faq import FaqIndex
from mailbridge.errors import TemplateError

__all__ = [
    "Candidate",
    "TemplateWatcher",
    "brand_template_dirs",
    "keep_restart_only",
    "load_candidate",
    "load_templates",
]

log = logging.getLogger(__name__)

# Keys the running process cannot change under itself: they take effect after a restart.
_RESTART_ONLY = {
    "database": ("database",),
    "service.listen": ("service", "listen"),
    "service.listen_public": ("service", "listen_public"),
    "service.data_dir": ("service", "data_dir"),
    "service.log_format": ("service", "log_format"),
    "storage": ("storage",),
}


@dataclass(frozen=True)
class Candidate:
    config: Config
    templates: TemplateSet
    faq: FaqIndex | None = None


def templates_dir(config: Config) -> Path:
    return config.templates.dir or default_templates_dir()


def brand_template_dirs(config: Config) -> tuple[Path, ...]:
    """The mailboxes' own template directories, watched beside the shared one."""
    return tuple(dict.fromkeys(m.templates for m in config.mailbox if m.templates is not None))


def load_templates(config: Config) -> TemplateSet:
    """Load and render every template; TemplateError lists each "file:line: problem"."""
    templates = open_templates(config)
    problems = templates.check()
    if problems:
        raise TemplateError("\n".join(problems))
    return templates


def load_candidate(path: Path, environ: Mapping[str, str] | None = None) -> Candidate:
    """The configuration at `path` with its templates, both checked; raises ConfigError or
    TemplateError saying what is wrong, and changes nothing."""
    config = load_config(path, dict(os.environ if environ is None else environ))
    return Candidate(config, load_templates(config), load_index(config))


def keep_restart_only(running: Config, new: Config) -> tuple[Config, list[str]]:
    """`new`, with the running values of the keys only a restart can change, and the names
    of those keys whose new value therefore waits for the restart."""
    waiting = [
        key
        for key, (section, *field) in _RESTART_ONLY.items()
        if _value(running, section, field) != _value(new, section, field)
    ]
    service = new.service.model_copy(
        update={
            "listen": running.service.listen,
            "listen_public": running.service.listen_public,
            "data_dir": running.service.data_dir,
            "log_format": running.service.log_format,
        }
    )
    kept = new.model_copy(
        update={"database": running.database, "service": service, "storage": running.storage}
    )
    return kept, waiting


def _value(config: Config, section: str, field: list[str]) -> object:
    value = getattr(config, section)
    for name in field:
        value = getattr(value, name)
    return value


Signature = tuple[tuple[str, int, int], ...]


def signature(directory: Path) -> Signature:
    """Name, modification time and size of every template file: cheap to take, and it
    changes whenever a file is written, added, removed or renamed."""
    found = []
    try:
        for path in directory.rglob("*.j2"):
            try:
                status = path.stat()
            except OSError:
                continue  # removed while we looked: the next look sees it gone
            found.append(
                (path.relative_to(directory).as_posix(), status.st_mtime_ns, status.st_size)
            )
    except OSError:
        return ()
    return tuple(sorted(found))


class TemplateWatcher:
    """Notices edits to a template directory by polling signatures; reports a change once
    the directory has looked the same on two polls in a row, so a file caught half
    written is not loaded."""

    def __init__(self, directory: Path, *more: Path) -> None:
        self.directory = directory
        self._more = more  # the mailboxes' own directories
        self._settled = self._signature()
        self._seen = self._settled

    def _signature(self) -> tuple[Signature, ...]:
        return tuple(signature(d) for d in (self.directory, *self._more))

    def poll(self) -> bool:
        """True when the templates changed and have settled since the last change."""
        current = self._signature()
        if current == self._settled:
            self._seen = current
            return False
        if current != self._seen:
            self._seen = current  # still moving: look again next time
            return False
        self._settled = current
        return True

    def reset(self, directory: Path, *more: Path) -> None:
        """Watch `directory` (and `more`) from their present state (after a reload)."""
        self.directory, self._more = directory, more
        self._settled = self._seen = self._signature()
