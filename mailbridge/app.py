"""The running application's parts, built once from the configuration and passed down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.clock import Clock, SystemClock
from mailbridge.config import Config
from mailbridge.core.classify import Identity
from mailbridge.core.message import Address, ParseLimits
from mailbridge.db import migrate
from mailbridge.db.engine import make_engine, make_sessionmaker

log = logging.getLogger(__name__)


@dataclass
class App:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    templates: TemplateSet
    identity: Identity
    clock: Clock

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @property
    def sender(self) -> Address:
        name, address = parseaddr(self.config.smtp.from_)
        return Address(name, address.lower())

    @property
    def parse_limits(self) -> ParseLimits:
        tickets = self.config.tickets
        return ParseLimits(max_attachment_bytes=tickets.max_attachment_size,
                           max_message_bytes=tickets.max_message_size)

    @property
    def message_id_domain(self) -> str:
        return self.config.tickets.message_id_domain or self.sender.address.rpartition("@")[2]

    def close(self) -> None:
        self.engine.dispose()


def build_app(
    config: Config, *, clock: Clock | None = None, migrate_now: bool | None = None
) -> App:
    """Engine, templates and identity from `config`; migrates when auto_migrate says so."""
    engine = make_engine(config.database_url, echo=config.database.echo)
    if config.auto_migrate if migrate_now is None else migrate_now:
        migrate.upgrade(engine)
    templates = TemplateSet.load(
        config.templates.dir or default_templates_dir(), config.templates.language
    )
    return App(
        config=config,
        engine=engine,
        sessions=make_sessionmaker(engine),
        templates=templates,
        identity=identity_for(config),
        clock=clock or SystemClock(),
    )


def identity_for(config: Config) -> Identity:
    sender = parseaddr(config.smtp.from_)[1].lower()
    own = {m.address.lower() for m in config.mailbox} | {sender}
    domain = config.tickets.message_id_domain or sender.rpartition("@")[2]
    return Identity(
        own_addresses=frozenset(own),
        own_domains=frozenset({domain}),
        loop_token=f"mailbridge@{domain}",
    )
