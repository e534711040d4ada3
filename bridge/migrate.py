"""Alembic owns the schema (`bridge/migrations/`): `migrate` upgrades a database. Imported by what
changes the schema only (`bridge migrate`, the demo's and the tests' fresh databases): the
processes that merely check it read its version without Alembic (`bridge.schema`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from bridge.schema import MIGRATIONS_DIR


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
