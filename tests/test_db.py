"""The PostgreSQL pool: a connection that sat idle is pinged before it is handed out."""

from __future__ import annotations

import time

import sqlalchemy
from sqlalchemy import text

from bridge.db import PING_AFTER_IDLE_S, create_db_engine
from tests.conftest import POSTGRES_URL


def _backend(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    killer = create_db_engine(POSTGRES_URL)
    with killer.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use() -> None:
    engine = create_db_engine(POSTGRES_URL)
    first = _backend(engine)
    _terminate(first)
    time.sleep(PING_AFTER_IDLE_S + 0.2)

    assert _backend(engine) != first
    engine.dispose()
