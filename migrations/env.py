"""Alembic environment: the engine comes from mailbridge (config.attributes["engine"])."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mailbridge.db.models import Base
from mailbridge.db.search_index import not_search_index

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through `mailbridge db upgrade`")
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_object=not_search_index,
        )
        context.run_migrations()


run_migrations_online()
