"""The running application's parts, built once from the configuration and passed down."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailbridge import durable
from mailbridge.adapters.faq_files import load_index
from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.clock import Clock, SystemClock
from mailbridge.config import Config, MailboxConfig
from mailbridge.config.brands import Brand, brand_of, house_brand
from mailbridge.config.secret_sources import STAFF_KEY_MIN_BYTES
from mailbridge.core.classify import Identity
from mailbridge.core.faq import FaqIndex
from mailbridge.core.message import Address, ParseLimits
from mailbridge.db import revision
from mailbridge.db.blobs import BlobStore
from mailbridge.db.engine import make_engine, make_sessionmaker
from mailbridge.db.stored_bytes import Placement, install
from mailbridge.errors import ConfigError, TemplateError

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

    @cached_property
    def reply_secret(self) -> bytes:
        """Key of the reply tokens in staff notification addresses; read at first use."""
        return reply_secret(self.config)

    @cached_property
    def faq(self) -> FaqIndex | None:
        """The FAQ entries offered in acknowledgements; None when `[faq] dir` is unset."""
        return load_index(self.config)

    @cached_property
    def house(self) -> Brand:
        """The identity staff mail goes out under, and mailboxes without a brand of their own
        ([smtp], [templates]; config/brands.py)."""
        return house_brand(self.config)

    @property
    def sender(self) -> Address:
        return self.house.sender

    @property
    def parse_limits(self) -> ParseLimits:
        tickets = self.config.tickets
        return ParseLimits(
            max_attachment_bytes=tickets.max_attachment_size,
            max_message_bytes=tickets.max_message_size,
        )

    @property
    def message_id_domain(self) -> str:
        return self.house.message_id_domain

    @cached_property
    def brands(self) -> dict[str, Brand]:
        """Each mailbox's brand, by mailbox name (config/brands.py)."""
        return {m.name: brand_of(self.config, m) for m in self.config.mailbox}

    def brand(self, mailbox: str) -> Brand:
        """The identity a ticket of `mailbox` answers its customer under; the house's
        ([smtp], [templates]) for a mailbox the configuration no longer has."""
        return self.brands.get(mailbox) or self.house

    def reconfigure(
        self, config: Config, templates: TemplateSet, *, faq: FaqIndex | None = None
    ) -> None:
        """Switch to a new, already checked configuration and template set, and what is
        derived from them; the FAQ index is loaded here when not given. Everything that can
        fail is done before anything changes, so a failure leaves the running set whole."""
        new_faq = faq if faq is not None else load_index(config)
        identity = identity_for(config)
        self.config, self.templates, self.identity = config, templates, identity
        self.__dict__["faq"] = new_faq
        for cached in ("reply_secret", "house", "brands"):
            self.__dict__.pop(cached, None)  # derived again from the new one at next use

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True, slots=True)
class Step:
    """One piece of work inside a transaction its caller owns (processing builds one per
    message, the sweep one per batch, the commands that change a ticket one each): the
    session it writes with, the application, and its moment, read once so that everything
    it writes agrees."""

    session: Session
    app: App
    now: datetime


def build_app(
    config: Config, *, clock: Clock | None = None, migrate_now: bool | None = None
) -> App:
    """Engine, templates and identity from `config`; migrates when auto_migrate says so."""
    engine = make_engine(config.database_url, echo=config.database.echo)
    try:
        migrating = config.auto_migrate if migrate_now is None else migrate_now
        if migrating and revision.current_revision(engine) != revision.HEAD:
            from mailbridge.db import migrate  # alembic: only to upgrade (db/revision.py)

            migrate.upgrade(engine)
        sessions = make_sessionmaker(engine)
        install(sessions, placement_for(config))
        app = App(
            config=config,
            engine=engine,
            sessions=sessions,
            templates=open_templates(config),
            identity=identity_for(config),
            clock=clock or SystemClock(),
        )
        _ = app.faq  # a broken FAQ entry stops the start, naming its file
    except BaseException:
        engine.dispose()  # nothing keeps a connection open after a failed start
        raise
    return app


def placement_for(config: Config) -> Placement:
    """Where new raw mail and attachment bytes go ([storage]); the files store is always
    known, since rows stored as files earlier are read whatever the setting is now."""
    storage = config.storage
    return Placement(
        store=BlobStore(config.blob_dir),
        raw_in_files=storage.raw == "files",
        attachments_in_files=storage.attachments == "files",
    )


SECRET_FILE = "reply-token.key"


def open_templates(config: Config) -> TemplateSet:
    """The configured templates, holding each brand's own set; a template a routing rule
    chooses must be among them."""
    directory = config.templates.dir or default_templates_dir()
    templates = TemplateSet.load(directory, config.templates.language, cache_in=config.data_dir)
    templates = templates.with_brands(
        {
            mailbox.name: _brand_templates(config, directory, mailbox)
            for mailbox in config.mailbox
            if mailbox.templates or mailbox.signature is not None or mailbox.language
        }
    )
    for rule in config.routing:
        name = rule.then.ack_template
        if name is not None and name not in templates.names():
            raise ConfigError(
                f'{config.source}: rule "{rule.name}": then.ack_template: '
                f"expected the name of a template in {directory}, found no "
                f"{name}.txt.j2"
            )
    return templates


def _brand_templates(config: Config, directory: Path, mailbox: MailboxConfig) -> TemplateSet:
    """A mailbox's own set: its directory over the shared one, its signature, its language;
    each problem also names the mailbox."""
    index = config.mailbox.index(mailbox)
    try:
        return TemplateSet.load(
            directory,
            mailbox.language or config.templates.language,
            overrides=mailbox.templates,
            signature=mailbox.signature,
            signature_origin=f"{config.source} (mailbox[{index}].signature)",
            cache_in=config.data_dir,
        )
    except TemplateError as exc:
        lines = str(exc).splitlines()
        raise TemplateError(
            "\n".join(f"{line} (mailbox {mailbox.name!r})" for line in lines)
        ) from None


def reply_secret(config: Config) -> bytes:
    """The configured staff secret, else a random one kept in the data directory.

    Several instances sharing a database must configure the same secret; a lone instance
    makes its own at first start (readable by its own user only) and keeps it.
    """
    if config.staff.secret is not None:
        return config.staff.secret.get_secret_value().encode()
    path = config.data_dir / SECRET_FILE
    key = _kept_key(path)
    if key is not None:
        return key  # the usual case: no lock, no write (a read-only data directory will do)
    path.parent.mkdir(parents=True, exist_ok=True)
    with durable.locked(path.parent):
        key = _kept_key(path)  # another process may have made it meanwhile
        if key is None:
            if path.exists():
                log.warning(
                    "the reply-token key in %s is damaged (shorter than %d bytes): a new one "
                    "is made; reply addresses of notifications sent before no longer work",
                    path,
                    STAFF_KEY_MIN_BYTES,
                )
            key = secrets.token_hex(32).encode()
            durable.replace_file(path, key + b"\n", 0o600)
            log.info("made a new reply-token key in %s", path)
    return key


def _kept_key(path: Path) -> bytes | None:
    """The key kept in `path`; None when there is none, or only a damaged one (shorter
    than a configured key may be: a power cut before the key reached the disk left an
    empty file, and an empty HMAC key would let anyone forge reply addresses)."""
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    return key if len(key) >= STAFF_KEY_MIN_BYTES else None


def identity_for(config: Config) -> Identity:
    """Every address, Message-ID domain and X-Loop value our mail goes out with, the
    brands' included, so any of it coming back is known as ours."""
    house = house_brand(config)
    brands = [house, *(brand_of(config, m) for m in config.mailbox)]
    own = {m.address.lower() for m in config.mailbox}
    own.update(b.sender.address for b in brands)
    own.update(b.bounce_address for b in brands)
    return Identity(
        own_addresses=frozenset(own),
        own_domains=frozenset(b.message_id_domain for b in brands),
        loop_token=house.loop_token,
        loop_tokens=frozenset(b.loop_token for b in brands),
    )
