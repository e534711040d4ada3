"""What `bridge demo`, the tests and the benchmarks share: the emulators on threads
(`running_sandbox`), a portal registered with them (`demo_portal`), fresh databases, free ports
and condition waits. The bridge's own processes are in `bridge.deployment`."""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlmodel import Session, select

from bridge.config import PortalConfig, parse_portals
from bridge.migrate import migrate
from bridge.models import InboxEvent, InboxState
from bridge.sandbox.bitrix import ENTRY_EVENTS, SECTION_EVENTS, BitrixControl, BitrixEmulator
from bridge.sandbox.google import GoogleControl, GoogleEmulator, generate_service_account
from bridge.sandbox.server import ServerThread

ROOT = Path(__file__).resolve().parents[1]  # the source checkout, where processes start
POSTGRES_URL = os.environ.get(
    "BRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DEMO_SUBJECT = "calendars@demo.example"
WAITING = (InboxState.PENDING, InboxState.WORKING)


@dataclass
class Sandbox:
    """Both emulators' addresses and their control clients."""

    bitrix_url: str
    google_url: str
    bitrix: BitrixControl
    google: GoogleControl

    @classmethod
    def at(cls, bitrix_url: str, google_url: str) -> Sandbox:
        return cls(bitrix_url, google_url, BitrixControl(bitrix_url), GoogleControl(google_url))

    def close(self) -> None:
        self.bitrix.close()
        self.google.close()


@contextmanager
def running_sandbox(
    host: str = "127.0.0.1", bitrix_port: int = 0, google_port: int = 0
) -> Iterator[Sandbox]:
    bitrix = ServerThread(BitrixEmulator().app, host=host, port=bitrix_port)
    google = ServerThread(GoogleEmulator().app, host=host, port=google_port)
    with bitrix, google:
        sandbox = Sandbox.at(bitrix.url, google.url)
        try:
            yield sandbox
        finally:
            sandbox.close()


def demo_portal(
    sandbox: Sandbox,
    *,
    key: str = "demo",
    subject: str = DEMO_SUBJECT,
    mirror: dict[str, Any] | None = None,
    google: dict[str, Any] | None = None,
    notify: dict[str, Any] | None = None,
    domain: str | None = None,
) -> PortalConfig:
    """Register a portal and a service account with the emulators; return its validated config."""
    member_id = secrets.token_hex(16)
    domain = domain or f"{key}.bitrix24.com"
    added = sandbox.bitrix.add_portal(member_id, domain, secrets.token_hex(8), webhook_user_id=1)
    account = generate_service_account(f"{sandbox.google_url}/token")
    sandbox.google.add_service_account(account)
    raw = {
        "portals": [
            {
                "key": key,
                "member_id": member_id,
                "domain": domain,
                "application_token": secrets.token_hex(16),
                "bitrix": {"webhook_url": added["webhook_url"]},
                "google": {
                    "service_account": json.dumps(account),
                    "subject": subject,
                    "api_endpoint": f"{sandbox.google_url}/calendar/v3/",
                    "time_zone": "Europe/Berlin",
                    **(google or {}),
                },
                "notify": notify or {},
                "mirror": mirror
                or {"company": True, "resources": True, "groups": [12], "users": []},
            }
        ]
    }
    return parse_portals(raw, {}, source="demo")[0]


def bind_outgoing_webhook(sandbox: Sandbox, portal: PortalConfig, handler_url: str) -> None:
    """The portal's outgoing webhook for the section and entry events, pointed at the bridge."""
    assert portal.application_token is not None
    sandbox.bitrix.bind_outgoing_webhook(
        portal.member_id,
        handler_url,
        portal.application_token,
        events=(*SECTION_EVENTS, *ENTRY_EVENTS),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Something listens on `port`."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Until `check()` holds; `TimeoutError` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def inbox_settled(engine: sqlalchemy.Engine, rows: int = 1) -> bool:
    """At least `rows` inbox rows, none waiting or in work."""
    with Session(engine) as session:
        inbox = session.exec(select(InboxEvent)).all()
    return len(inbox) >= rows and not any(row.state in WAITING for row in inbox)


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """A new, empty PostgreSQL schema, dropped afterwards; yields its name."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def schema_url(schema: str, base: str = POSTGRES_URL) -> str:
    return f"{base}?options=-csearch_path%3D{schema}"


@contextmanager
def fresh_database(kind: str, prefix: str = "t") -> Iterator[str]:
    """A migrated, empty database: a SQLite file ("sqlite"), or a new PostgreSQL schema
    ("postgresql") dropped afterwards; yields its URL."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bridge-db-") as folder:
            url = f"sqlite:///{Path(folder) / 'bridge.db'}"
            migrate(url)
            yield url
        return
    with fresh_schema(prefix) as schema:
        url = schema_url(schema)
        migrate(url)
        yield url
