"""The migrations build exactly the schema the models describe, and step back down cleanly."""

from __future__ import annotations

import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bridge.migrate import alembic_config, migrate
from bridge.models import SQLModel
from bridge.schema import schema_head, schema_revision


def _drift(engine: sqlalchemy.Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def test_migrated_schema_matches_the_models(engine: sqlalchemy.Engine) -> None:
    assert _drift(engine) == []


def _alembic_revision(engine: sqlalchemy.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_schema_version_read_as_alembic_reads_it(
    database_url: str, engine: sqlalchemy.Engine
) -> None:
    """`/readyz` reads the head and the database's revision without Alembic; both agree with it."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert head is not None and schema_head() == head
    assert schema_revision(engine) == _alembic_revision(engine) == head
    command.downgrade(alembic_config(database_url), "-1")
    assert schema_revision(engine) == _alembic_revision(engine) != head


def test_downgrade_to_base_and_back(database_url: str, engine: sqlalchemy.Engine) -> None:
    command.downgrade(alembic_config(database_url), "base")
    tables = set(sqlalchemy.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    assert schema_revision(engine) is None
    migrate(database_url)
    assert _drift(engine) == []
    assert "entry_mapping" in sqlalchemy.inspect(engine).get_table_names()
