"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, and the emulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy

from bridge.db import create_db_engine
from bridge.harness import (
    POSTGRES_URL,
    Sandbox,
    fresh_schema,
    running_sandbox,
    schema_url,
)
from bridge.migrate import migrate

__all__ = ["POSTGRES_URL", "fresh_schema", "schema_url"]  # tests import them from here too


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'bridge.db'}"
        migrate(url)
        yield url
        return
    with fresh_schema() as schema:
        url = schema_url(schema)
        migrate(url)
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[sqlalchemy.Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox() as running:
        yield running
