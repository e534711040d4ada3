from __future__ import annotations

import os

from alembic import context
from sqlmodel import SQLModel

import bridge.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bridge.config import DEFAULT_DATABASE_URL, normalize_database_url
from bridge.db import create_db_engine

config = context.config
url = config.get_main_option("sqlalchemy.url") or normalize_database_url(
    os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
)
target_metadata = SQLModel.metadata


def run_offline() -> None:
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_db_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
