"""The bridge's own processes as the Procfile runs them (`python -m bridge serve|worker|…`), for
the tests and the benchmarks: `Deployment` writes the portals file and the environment they share,
with the secrets in the environment as in production; `SandboxDeployment` is one portal registered
with the emulators (`bridge.harness`), and shortcuts to its data there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.fernet import Fernet
from sqlmodel import Session, col, select

from bridge.config import PortalConfig
from bridge.db import create_db_engine
from bridge.harness import (
    ROOT,
    Sandbox,
    bind_outgoing_webhook,
    demo_portal,
    free_port,
    inbox_settled,
    port_open,
    wait_for,
)
from bridge.models import InboxEvent


class ProcessExited(RuntimeError):
    """A process that should be serving has exited; the message ends with its output."""


class BridgeProcess:
    """`python -m bridge COMMAND` (or another module) as an OS process; its output, stdout and
    stderr together, goes to a log file in `folder`."""

    def __init__(self, argv: list[str], env: Mapping[str, str], folder: Path, role: str) -> None:
        self.role = role
        handle, name = tempfile.mkstemp(prefix=f"{role}-", suffix=".log", dir=folder)
        self.log = Path(name)
        with os.fdopen(handle, "w") as output:  # the child keeps its own copy
            self.popen = subprocess.Popen(
                [sys.executable, *argv], env=dict(env), cwd=ROOT, stdout=output, stderr=output
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; `subprocess.TimeoutExpired` after `timeout` seconds."""
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds; the exit code."""
        if self.popen.returncode is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.wait()

    def kill(self) -> int:
        if self.popen.poll() is None:
            self.popen.kill()
        return self.wait(10)


class Deployment:
    """The portals file (`portals`, as YAML holds them) and the environment (with `secrets`) that
    the bridge's commands share; `run` runs one to its end, `start` and `start_web` start
    processes that `close` kills if they still run."""

    def __init__(
        self,
        database_url: str,
        folder: Path,
        portals: list[dict[str, Any]],
        secrets: Mapping[str, str] | None = None,
        *,
        lease_seconds: float = 30,
    ) -> None:
        self.database_url = database_url
        self.folder = folder
        config = folder / "portals.yaml"
        config.write_text(yaml.safe_dump({"portals": portals}), encoding="utf-8")
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": database_url,
            "BRIDGE_CONFIG": str(config),
            "BRIDGE_LEASE_SECONDS": str(lease_seconds),
            "PORT": str(free_port()),
            "BRIDGE_TOKEN_KEYS": Fernet.generate_key().decode(),  # app mode's tokens at rest
            **(secrets or {}),
        }
        self.processes: list[BridgeProcess] = []

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

    def start(self, *args: str, role: str | None = None) -> BridgeProcess:
        """`python -m bridge ARGS`; its role (for the log's name) is the command unless given."""
        return self.launch(["-m", "bridge", *args], role or args[0])

    def start_web(self, app: str | None = None, *, role: str = "web") -> BridgeProcess:
        """`python -m bridge serve` on `$PORT`, or `app` (an ASGI app's import path) under
        uvicorn on the same port; returns once it listens."""
        if app is None:
            process = self.start("serve", role=role)
        else:
            argv = ["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", self.env["PORT"]]
            process = self.launch([*argv, "--no-access-log", "--log-level", "warning"], role)
        wait_for(lambda: self._listening(process), 30, f"the {role} process", every=0.05)
        return process

    def launch(self, argv: list[str], role: str) -> BridgeProcess:
        """`python ARGV` with this deployment's environment, closed with it."""
        process = self._spawn(argv, role)
        self.processes.append(process)
        return process

    def _spawn(self, argv: list[str], role: str) -> BridgeProcess:
        return BridgeProcess(argv, self.env, self.folder, role)

    def _listening(self, process: BridgeProcess) -> bool:
        if process.poll() is not None:
            raise ProcessExited(f"{process.role} exited: {process.output()[-2000:]}")
        return port_open(int(self.env["PORT"]))

    def stop(self, process: BridgeProcess, timeout: float = 30) -> tuple[int, str, float]:
        """SIGTERM; returns the exit code, the output and how long it took to exit."""
        started = time.monotonic()
        code = process.stop(timeout)
        return code, process.output(), time.monotonic() - started

    def close(self) -> None:
        for process in self.processes:
            process.kill()


class SandboxDeployment(Deployment):
    """One portal ("acme", time zone Asia/Tokyo, company calendars as "BX: {name}" unless
    `mirror` says otherwise) registered with the sandbox; the web process, once up, receives its
    outgoing webhook's events."""

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
        self.portal = demo_portal(
            sandbox, key="acme", subject=f"procs-{uuid.uuid4().hex[:8]}@acme.example"
        )
        config = _portal_file_entry(self.portal, google, mirror)
        secrets = _portal_secrets(self.portal)
        super().__init__(database_url, folder, [config], secrets, lease_seconds=lease_seconds)
        self.engine = create_db_engine(database_url)
        self.http = httpx.Client(timeout=15)

    def start_web(self, app: str | None = None, *, role: str = "web") -> BridgeProcess:
        process = super().start_web(app, role=role)
        bind_outgoing_webhook(self.sandbox, self.portal, f"{self.web_url}/bitrix/events")
        return process

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

    def close(self) -> None:
        super().close()
        self.http.close()
        self.engine.dispose()


def settled(deployment: SandboxDeployment, rows: int) -> Callable[[], bool]:
    """A check for `wait_for`: at least `rows` inbox rows, none waiting or in work."""
    return lambda: inbox_settled(deployment.engine, rows)


def _portal_file_entry(
    portal: PortalConfig, google: dict[str, Any] | None, mirror: dict[str, Any] | None
) -> dict[str, Any]:
    """The portal as the portals file holds it, its secrets as `${VARIABLES}`."""
    return {
        "key": portal.key,
        "member_id": portal.member_id,
        "domain": portal.domain,
        "application_token": "${ACME_APPLICATION_TOKEN}",
        "bitrix": {"webhook_url": "${ACME_BITRIX_WEBHOOK}"},
        "google": {
            "service_account": "${GOOGLE_SERVICE_ACCOUNT}",
            "subject": portal.google.subject,
            "api_endpoint": portal.google.api_endpoint,
            "time_zone": "Asia/Tokyo",
            **(google or {}),
        },
        "mirror": mirror
        or {"company": True, "resources": False, "groups": [], "name": "BX: {name}"},
    }


def _portal_secrets(portal: PortalConfig) -> dict[str, str]:
    assert portal.application_token is not None
    assert portal.bitrix.webhook_url is not None
    return {
        "ACME_APPLICATION_TOKEN": portal.application_token,
        "ACME_BITRIX_WEBHOOK": portal.bitrix.webhook_url,
        "GOOGLE_SERVICE_ACCOUNT": portal.google.service_account,
    }
