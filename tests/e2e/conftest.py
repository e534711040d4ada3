"""The real bridge (web under uvicorn, worker thread) wired to the emulators over HTTP."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bridge.app import create_app
from bridge.clients import PortalClients
from bridge.config import PortalConfig, Settings
from bridge.demo import Sandbox, bind_outgoing_webhook, demo_portal
from bridge.installs import Verdict, verify_waiting
from bridge.models import CalendarMapping, InboxEvent, InboxState
from bridge.notify import Notifier
from bridge.operations import portal_status, sync_portals
from bridge.sandbox.server import ServerThread
from bridge.tokens import TokenCipher, token_cipher
from bridge.worker import Worker
from tests.e2e.deployment import Deployment, free_port

WAITING = (InboxState.PENDING, InboxState.WORKING)
# The environment's token key for app mode (bridge.tokens), one per test run.
TEST_ENV = {"BRIDGE_TOKEN_KEYS": Fernet.generate_key().decode()}


@dataclass
class Bridge:
    sandbox: Sandbox
    portal: PortalConfig
    engine: Engine
    web_url: str
    http: httpx.Client
    notifier: Notifier
    start_worker: Callable[[], None]
    client_id: str = ""
    cipher: TokenCipher | None = None

    def verify_installs(self) -> list[Verdict]:
        """What the worker does first for an app-mode portal, for tests that run no worker."""
        assert self.cipher is not None
        return verify_waiting(self.engine, self.cipher, self.portal)

    def install(self) -> dict[str, Any]:
        """The portal installs the app: ONAPPINSTALL reaches the bridge with the tokens (which
        the bridge trusts once the worker, or `verify_installs`, has verified them)."""
        answer = self.http.post(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/install",
            json={"client_id": self.client_id, "handler": f"{self.web_url}/bitrix/events"},
        )
        answer.raise_for_status()
        self.flush_deliveries()
        installed: dict[str, Any] = answer.json()
        return installed

    def app_state(self) -> dict[str, Any]:
        answer = self.http.get(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/app"
        )
        state: dict[str, Any] = answer.json()
        return state

    @property
    def subject(self) -> str:
        return self.portal.google.subject

    # Bitrix24 side
    def add_section(self, kind: str, owner: int, name: str, **fields: Any) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/sections",
            json={"type": kind, "owner_id": owner, "name": name, **fields},
        )
        answer.raise_for_status()
        section: dict[str, Any] = answer.json()
        return section

    def update_section(self, section_id: str, **fields: Any) -> None:
        self.http.patch(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/sections/{section_id}",
            json=fields,
        ).raise_for_status()

    def delete_section(self, section_id: str, *, deliver: bool = True) -> None:
        self.http.delete(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/sections/{section_id}",
            params={"deliver": int(deliver)},
        ).raise_for_status()

    def patch_portal(self, **knobs: Any) -> dict[str, Any]:
        """Change the emulated portal (address, plan, rights, budget…) via the control API."""
        answer = self.http.patch(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}", json=knobs
        )
        answer.raise_for_status()
        view: dict[str, Any] = answer.json()
        return view

    def add_group(self, group_id: int, name: str) -> None:
        self.add_owners("groups", [{"ID": str(group_id), "NAME": name}])

    def add_owners(self, kind: str, rows: list[dict[str, Any]]) -> None:
        self.http.post(
            f"{self.sandbox.bitrix_url}/_control/portals/{self.portal.member_id}/{kind}", json=rows
        ).raise_for_status()

    def flush_deliveries(self) -> list[dict[str, Any]]:
        answer = self.http.post(
            f"{self.sandbox.bitrix_url}/_control/deliveries/flush", json={"timeout": 10}
        )
        answer.raise_for_status()
        deliveries: list[dict[str, Any]] = answer.json()["deliveries"]
        return deliveries

    def bitrix_requests(self) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.sandbox.bitrix_url}/_control/requests",
            params={"member_id": self.portal.member_id},
        )
        requests: list[dict[str, Any]] = answer.json()["requests"]
        return requests

    def bitrix_fault(self, **fault: Any) -> None:
        answer = self.http.post(
            f"{self.sandbox.bitrix_url}/_control/faults",
            json={"member_id": self.portal.member_id, **fault},
        )
        answer.raise_for_status()

    # Google side
    def google_fault(self, **fault: Any) -> None:
        answer = self.http.post(f"{self.sandbox.google_url}/_control/faults", json=fault)
        answer.raise_for_status()

    def calendars(self) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.sandbox.google_url}/_control/calendars", params={"owner": self.subject}
        )
        calendars: list[dict[str, Any]] = answer.json()["calendars"]
        return calendars

    def google_requests(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"{self.sandbox.google_url}/_control/requests")
        return [r for r in answer.json()["requests"] if r.get("user") == self.subject]

    def acl(self, calendar_id: str) -> dict[str, str]:
        [calendar] = [c for c in self.calendars() if c["id"] == calendar_id]
        return {rule["id"]: rule["role"] for rule in calendar["acl"]}

    def list_entry(self, calendar_id: str) -> dict[str, Any]:
        answer = self.http.get(
            f"{self.sandbox.google_url}/_control/calendar-list", params={"user": self.subject}
        )
        [entry] = [e for e in answer.json()["items"] if e["id"] == calendar_id]
        return dict(entry)

    # The bridge
    def clients(self, portal: PortalConfig | None = None) -> PortalClients:
        return PortalClients(self.engine, portal or self.portal, self.cipher)

    def sync(self, portal: PortalConfig | None = None, **options: Any) -> tuple[int, str]:
        out = io.StringIO()
        code = sync_portals(
            self.engine,
            [portal or self.portal],
            out=out,
            **{"dry_run": False, "force": False, "cipher": self.cipher, **options},
        )
        return code, out.getvalue()

    def status_text(self) -> str:
        out = io.StringIO()
        portal_status(self.engine, [self.portal], out=out)
        return out.getvalue()

    def status_json(self) -> dict[str, Any]:
        out = io.StringIO()
        portal_status(self.engine, [self.portal], as_json=True, out=out)
        [portal] = json.loads(out.getvalue())["portals"]
        report: dict[str, Any] = portal
        return report

    def post_event(
        self, body: str | bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> httpx.Response:
        return self.http.post(
            f"{self.web_url}/bitrix/events", content=body, headers={"content-type": content_type}
        )

    def inbox(self) -> list[InboxEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(InboxEvent).order_by(col(InboxEvent.id))).all())

    def mappings(self) -> list[CalendarMapping]:
        with Session(self.engine) as session:
            return list(
                session.exec(select(CalendarMapping).order_by(col(CalendarMapping.id))).all()
            )

    def wait_applied(self, expected_rows: int, timeout: float = 20.0) -> list[InboxEvent]:
        self.flush_deliveries()
        """Until `expected_rows` inbox rows exist and none is pending."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.inbox()
            if len(rows) >= expected_rows and not any(r.state in WAITING for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not applied in {timeout}s: {[(r.event, r.state, r.outcome) for r in rows]}"
                )
            time.sleep(0.05)


def clear_faults(sandbox: Sandbox) -> None:
    for base in (sandbox.bitrix_url, sandbox.google_url):
        httpx.delete(f"{base}/_control/faults", timeout=10).raise_for_status()


@pytest.fixture
def make_bridge(sandbox: Sandbox, engine: Engine) -> Iterator[Callable[..., Bridge]]:
    """Start the bridge for a new portal; keyword arguments go to `demo_portal`."""
    with ExitStack() as stack:
        stack.callback(clear_faults, sandbox)

        def make(
            *,
            app: dict[str, Any] | None = None,
            worker: bool = True,
            web: dict[str, Any] | None = None,
            **portal_options: Any,
        ) -> Bridge:
            """`app` switches the portal to app mode (OAuth) with these `bitrix` settings;
            `web` holds keyword arguments for `create_app` (timeouts)."""
            subject = f"owner-{uuid.uuid4().hex[:8]}@acme.example"
            portal_options.setdefault("mirror", {"groups": [12], "reconcile_interval_minutes": 0})
            portal = demo_portal(sandbox, key="acme", subject=subject, **portal_options)
            port = free_port()
            web_url = f"http://127.0.0.1:{port}"
            http = stack.enter_context(httpx.Client(timeout=15))
            client_id = ""
            # As `bridge serve` and `bridge worker` build it from BRIDGE_TOKEN_KEYS.
            cipher = token_cipher(Settings.from_env(TEST_ENV).token_keys, [])
            if app is not None:
                registered = http.post(f"{sandbox.bitrix_url}/_control/apps", json={}).json()
                client_id = registered["client_id"]
                raw = portal.model_dump()
                raw["application_token"] = None
                raw["bitrix"] = {
                    "oauth": {
                        "client_id": client_id,
                        "client_secret": registered["client_secret"],
                        "token_url": f"{sandbox.bitrix_url}/oauth/token/",
                        "server_endpoint": f"{sandbox.bitrix_url}/oauth/rest/",
                    },
                    "rest_url": f"{sandbox.bitrix_url}/rest/",
                    "handler_url": f"{web_url}/bitrix/events",
                    **app,
                }
                portal = PortalConfig.model_validate(raw)
            stack.enter_context(
                ServerThread(
                    create_app(portals=[portal], engine=engine, cipher=cipher, **(web or {})),
                    port=port,
                )
            )
            if app is None:
                bind_outgoing_webhook(sandbox, portal, f"{web_url}/bitrix/events")
            notifier = Notifier(engine, cipher)
            stack.callback(notifier.close)

            def start_worker() -> None:
                runner = Worker(
                    engine=engine,
                    portals=[portal],
                    name=f"test-{uuid.uuid4().hex[:6]}",
                    notifier=notifier,
                    cipher=cipher,
                )
                thread = threading.Thread(target=runner.run, daemon=True)
                thread.start()
                stack.callback(thread.join, 15)
                stack.callback(runner.stop)

            bridge = Bridge(
                sandbox=sandbox,
                portal=portal,
                engine=engine,
                web_url=web_url,
                http=http,
                notifier=notifier,
                start_worker=start_worker,
                client_id=client_id,
                cipher=cipher,
            )
            if worker:
                start_worker()
            return bridge

        yield make


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge()


Deploy = Callable[..., Deployment]


@pytest.fixture
def deploy(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[Deploy]:
    """Deployments whose processes (migrate, serve, worker) run as the Procfile runs them."""
    made: list[Deployment] = []

    def make(**options: Any) -> Deployment:
        deployment = Deployment(sandbox, database_url, tmp_path, **options)
        assert deployment.run("migrate").returncode == 0
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()
    clear_faults(sandbox)
