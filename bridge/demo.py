"""`bridge demo` and `bridge sandbox`: the whole loop on one machine, against the emulators."""

from __future__ import annotations

import json
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bridge.app import create_app
from bridge.config import PortalConfig, parse_portals
from bridge.db import create_db_engine, migrate
from bridge.models import CalendarMapping, InboxEvent, InboxState
from bridge.sandbox.bitrix import BitrixEmulator
from bridge.sandbox.google_calendar import GoogleEmulator, generate_service_account
from bridge.sandbox.server import ServerThread
from bridge.worker import Worker

DEMO_SUBJECT = "calendars@demo.example"
SECTION_EVENTS = ["ONCALENDARSECTIONADD", "ONCALENDARSECTIONUPDATE", "ONCALENDARSECTIONDELETE"]


@dataclass
class Sandbox:
    bitrix_url: str
    google_url: str


@contextmanager
def running_sandbox(
    host: str = "127.0.0.1", bitrix_port: int = 0, google_port: int = 0
) -> Iterator[Sandbox]:
    bitrix = ServerThread(BitrixEmulator().app, host=host, port=bitrix_port)
    google = ServerThread(GoogleEmulator().app, host=host, port=google_port)
    with bitrix, google:
        yield Sandbox(bitrix_url=bitrix.url, google_url=google.url)


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
    code = secrets.token_hex(8)
    with httpx.Client(timeout=10) as client:
        answer = client.post(
            f"{sandbox.bitrix_url}/_control/portals",
            json={
                "member_id": member_id,
                "domain": domain,
                "webhook_user_id": 1,
                "webhook_code": code,
            },
        )
        answer.raise_for_status()
        webhook_url = answer.json()["webhook_url"]
        account = generate_service_account(f"{sandbox.google_url}/token")
        client.post(
            f"{sandbox.google_url}/_control/service-accounts", json=account
        ).raise_for_status()

    raw = {
        "portals": [
            {
                "key": key,
                "member_id": member_id,
                "domain": domain,
                "application_token": secrets.token_hex(16),
                "bitrix": {"webhook_url": webhook_url},
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
    with httpx.Client(timeout=10) as client:
        client.post(
            f"{sandbox.bitrix_url}/_control/portals/{portal.member_id}/outgoing-webhooks",
            json={
                "handler": handler_url,
                "events": SECTION_EVENTS,
                "application_token": portal.application_token,
            },
        ).raise_for_status()


def run_demo(*, keep_serving: bool = False) -> int:
    started = time.monotonic()
    logging.getLogger("bridge").setLevel(logging.WARNING)  # the demo narrates; keep warnings
    with tempfile.TemporaryDirectory(prefix="bridge-demo-") as folder:
        database_url = f"sqlite:///{Path(folder) / 'bridge.db'}"
        _say(f"1. database: {database_url} (schema by Alembic)")
        migrate(database_url)
        engine = create_db_engine(database_url)
        with running_sandbox() as sandbox:
            _say(f"2. emulators: Bitrix24 {sandbox.bitrix_url}  Google {sandbox.google_url}")
            portal = demo_portal(sandbox)
            web = ServerThread(create_app(portals=[portal], engine=engine))
            worker = Worker(engine=engine, portals=[portal], name="demo-worker")
            worker_thread = threading.Thread(target=worker.run, daemon=True)
            with web:
                worker_thread.start()
                _say(f"3. bridge: web {web.url}/bitrix/events, worker running")
                bind_outgoing_webhook(sandbox, portal, f"{web.url}/bitrix/events")
                _say("4. the portal creates three sections; Bitrix24 delivers an event for each")
                with httpx.Client(timeout=10) as client:
                    control = f"{sandbox.bitrix_url}/_control/portals/{portal.member_id}"
                    client.post(
                        f"{control}/groups", json={"ID": "12", "NAME": "Sales"}
                    ).raise_for_status()
                    for body in (
                        {
                            "type": "company_calendar",
                            "owner_id": 0,
                            "name": "Company holidays",
                            "color": "#9cbeee",
                        },
                        {"type": "resource", "owner_id": 0, "name": "Meeting room Everest"},
                        {"type": "group", "owner_id": 12, "name": "Sales team", "color": "#f4c542"},
                    ):
                        client.post(f"{control}/sections", json=body).raise_for_status()
                    client.post(
                        f"{sandbox.bitrix_url}/_control/deliveries/flush", json={"timeout": 10}
                    )
                ok = _wait_until_applied(engine, timeout=30)
                _print_results(sandbox, engine)
                elapsed = time.monotonic() - started
                _say(f"done in {elapsed:.1f} s" if ok else "some events were not applied in time")
                if keep_serving:
                    _say(
                        f"serving until Ctrl-C: web {web.url}  Bitrix24 {sandbox.bitrix_url}  "
                        f"Google {sandbox.google_url}"
                    )
                    _wait_forever()
                worker.stop()
                worker_thread.join(10)
        engine.dispose()
    return 0 if ok else 1


def run_sandbox(*, host: str, bitrix_port: int, google_port: int) -> int:
    with running_sandbox(host, bitrix_port, google_port) as sandbox:
        _say(f"Bitrix24 emulator: {sandbox.bitrix_url}  (control API under /_control/)")
        _say(f"Google Calendar emulator: {sandbox.google_url}")
        _say(f"  portals use api_endpoint {sandbox.google_url}/calendar/v3/")
        _wait_forever()
    return 0


def _wait_until_applied(engine: Engine, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(engine) as session:
            rows = session.exec(select(InboxEvent)).all()
        if rows and not any(row.state in (InboxState.PENDING, InboxState.WORKING) for row in rows):
            return True
        time.sleep(0.05)
    return False


def _print_results(sandbox: Sandbox, engine: Engine) -> None:
    calendars: list[dict[str, Any]] = httpx.get(
        f"{sandbox.google_url}/_control/calendars", timeout=10
    ).json()["calendars"]
    _say(f"\nGoogle calendars ({len(calendars)}):")
    _table(
        ["summary", "time zone", "owner", "id"],
        [
            [c.get("summary", ""), c.get("timeZone", ""), c.get("dataOwner", ""), c["id"]]
            for c in calendars
        ],
    )
    with Session(engine) as session:
        mappings = session.exec(select(CalendarMapping).order_by(col(CalendarMapping.id))).all()
        events = session.exec(select(InboxEvent).order_by(col(InboxEvent.id))).all()
    _say(f"\nMapping table ({len(mappings)}):")
    _table(
        ["portal", "section", "type", "owner", "state", "google calendar"],
        [
            [
                m.portal_key,
                m.section_id,
                m.section_type,
                m.owner_id,
                m.state,
                m.google_calendar_id or "",
            ]
            for m in mappings
        ],
    )
    _say(f"\nInbox ({len(events)}):")
    _table(
        ["id", "event", "section", "state", "outcome"],
        [[str(e.id), e.event, e.section_id or "", e.state, e.outcome or ""] for e in events],
    )


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=False)]
    for line in [header, ["-" * w for w in widths], *rows]:
        _say("  " + "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=False)).rstrip())


def _say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def _wait_forever() -> None:
    with suppress(KeyboardInterrupt):
        threading.Event().wait()
