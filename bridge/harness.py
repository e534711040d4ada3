"""The deployment harness that `bridge demo`, the tests and the benchmarks share: the emulators on
threads (`running_sandbox`), a portal registered with them (`demo_portal`), fresh databases,
free ports, condition waits, and the bridge's own processes (`Deployment`) configured by YAML
with their secrets in the environment, as in production."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
import yaml
from cryptography.fernet import Fernet
from sqlmodel import Session, col, select

from bridge.config import PortalConfig, parse_portals
from bridge.db import create_db_engine, migrate
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


def settled(deployment: Deployment, rows: int) -> Callable[[], bool]:
    """A check for `wait_for`: at least `rows` inbox rows, none waiting or in work."""
    return lambda: inbox_settled(deployment.engine, rows)


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


class Deployment:
    """One portal configured by YAML with its secrets in the environment, as in production;
    `run` and `start` run `python -m bridge COMMAND` as OS processes."""

    def __init__(
        self,
        sandbox: Sandbox,
        database_url: str,
        folder: Path,
        *,
        google: dict[str, Any] | None = None,
        mirror: dict[str, Any] | None = None,
        lease_seconds: float = 30,
    ) -> None:
        self.sandbox = sandbox
        self.database_url = database_url
        self.portal = demo_portal(
            sandbox, key="acme", subject=f"procs-{uuid.uuid4().hex[:8]}@acme.example"
        )
        config = {
            "portals": [
                {
                    "key": self.portal.key,
                    "member_id": self.portal.member_id,
                    "domain": self.portal.domain,
                    "application_token": "${ACME_APPLICATION_TOKEN}",
                    "bitrix": {"webhook_url": "${ACME_BITRIX_WEBHOOK}"},
                    "google": {
                        "service_account": "${GOOGLE_SERVICE_ACCOUNT}",
                        "subject": self.portal.google.subject,
                        "api_endpoint": self.portal.google.api_endpoint,
                        "time_zone": "Asia/Tokyo",
                        **(google or {}),
                    },
                    "mirror": mirror
                    or {"company": True, "resources": False, "groups": [], "name": "BX: {name}"},
                }
            ]
        }
        path = folder / "portals.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        assert self.portal.application_token is not None
        assert self.portal.bitrix.webhook_url is not None
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": database_url,
            "BRIDGE_CONFIG": str(path),
            "BRIDGE_LEASE_SECONDS": str(lease_seconds),
            "PORT": str(free_port()),
            "ACME_APPLICATION_TOKEN": self.portal.application_token,
            "ACME_BITRIX_WEBHOOK": self.portal.bitrix.webhook_url,
            "GOOGLE_SERVICE_ACCOUNT": self.portal.google.service_account,
            "BRIDGE_TOKEN_KEYS": Fernet.generate_key().decode(),  # app mode's tokens at rest
        }
        self.processes: list[subprocess.Popen[str]] = []
        self.engine = create_db_engine(database_url)
        self.http = httpx.Client(timeout=15)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, command: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", command],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.processes.append(process)
        return process

    def start_web(self) -> subprocess.Popen[str]:
        process = self.start("serve")
        wait_for(self._healthy, 30, "the web process")
        bind_outgoing_webhook(self.sandbox, self.portal, f"{self.web_url}/bitrix/events")
        return process

    def _healthy(self) -> bool:
        try:
            return self.http.get(f"{self.web_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def add_section(self, name: str, **fields: Any) -> dict[str, Any]:
        section = self.sandbox.bitrix.add_section(
            self.portal.member_id, "company_calendar", 0, name, **fields
        )
        self.sandbox.bitrix.flush_deliveries()
        return section

    def google_fault(self, **fault: Any) -> None:
        self.sandbox.google.fault(**fault)

    def calendars(self) -> list[dict[str, Any]]:
        return self.sandbox.google.calendars(owner=self.portal.google.subject)

    def google_requests(self) -> list[dict[str, Any]]:
        return self.sandbox.google.requests(user=self.portal.google.subject)

    def inbox(self) -> list[InboxEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(InboxEvent).order_by(col(InboxEvent.id))).all())

    def stop(self, process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, float]:
        """SIGTERM; returns the exit code, the output and how long it took to exit."""
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output, time.monotonic() - started

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        self.http.close()
        self.engine.dispose()
