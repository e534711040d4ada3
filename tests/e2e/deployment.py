"""The bridge as the Procfile runs it: `migrate`, `serve` and `worker` as real OS processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from bridge.db import create_db_engine
from bridge.demo import Sandbox, demo_portal
from bridge.models import InboxEvent, InboxState

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def settled(deployment: Deployment, rows: int) -> Callable[[], bool]:
    """A check: at least `rows` inbox rows, none waiting or in work."""

    def check() -> bool:
        inbox = deployment.inbox()
        waiting = (InboxState.PENDING, InboxState.WORKING)
        return len(inbox) >= rows and not any(row.state in waiting for row in inbox)

    return check


class Deployment:
    """One portal configured by YAML with its secrets in the environment, as in production."""

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
        self.bind(f"{self.web_url}/bitrix/events")
        return process

    def _healthy(self) -> bool:
        try:
            return self.http.get(f"{self.web_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def bind(self, handler: str) -> None:
        self.http.post(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/outgoing-webhooks",
            json={
                "handler": handler,
                "events": [
                    "ONCALENDARSECTIONADD",
                    "ONCALENDARSECTIONUPDATE",
                    "ONCALENDARSECTIONDELETE",
                ],
                "application_token": self.portal.application_token,
            },
        ).raise_for_status()

    def add_section(self, name: str, **fields: Any) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/sections",
            json={"type": "company_calendar", "owner_id": 0, "name": name, **fields},
        )
        answer.raise_for_status()
        self.http.post(f"{self.sandbox.bitrix_url}/_control/deliveries/flush", json={"timeout": 10})
        section: dict[str, Any] = answer.json()
        return section

    def google_fault(self, **fault: Any) -> None:
        self.http.post(f"{self.sandbox.google_url}/_control/faults", json=fault).raise_for_status()

    def calendars(self) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.sandbox.google_url}/_control/calendars",
            params={"owner": self.portal.google.subject},
        )
        calendars: list[dict[str, Any]] = answer.json()["calendars"]
        return calendars

    def google_requests(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"{self.sandbox.google_url}/_control/requests")
        return [r for r in answer.json()["requests"] if r.get("user") == self.portal.google.subject]

    def inbox(self) -> list[InboxEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(InboxEvent).order_by(InboxEvent.id)).all())  # type: ignore[arg-type]

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
