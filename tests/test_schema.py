"""The migrations build exactly the schema the models describe, and step back down cleanly."""

from __future__ import annotations

import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bridge.db import alembic_config, migrate
from bridge.models import SQLModel


def _drift(engine: sqlalchemy.Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def test_migrated_schema_matches_the_models(engine: sqlalchemy.Engine) -> None:
    assert _drift(engine) == []


def test_downgrade_to_base_and_back(database_url: str, engine: sqlalchemy.Engine) -> None:
    command.downgrade(alembic_config(database_url), "base")
    tables = set(sqlalchemy.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate(database_url)
    assert _drift(engine) == []
    assert "entry_mapping" in sqlalchemy.inspect(engine).get_table_names()
