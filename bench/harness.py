"""What the benchmarks set up beyond `bridge.harness`: the emulators in a process of their own, a
portal at Bitrix24's real pace, sections made silently, measured deployments of the bridge
(`bench.processes`), and the readings of the emulators' request logs and the database."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy

from bench.processes import PROFILING, BenchDeployment, detach
from bridge.harness import ROOT, Sandbox, wait_for
from bridge.harness import fresh_database as fresh_test_database
from bridge.sandbox.bitrix import ENTRY_EVENTS, BitrixControl, http_build_query
from bridge.sandbox.google import GoogleControl, generate_service_account

DATABASES = ("sqlite", "postgresql")


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a new PostgreSQL schema dropped after."""
    with fresh_test_database(kind, prefix="bench") as url:
        yield url


def clear_logs(emulators: Sandbox) -> None:
    """Both emulators' request logs."""
    emulators.bitrix.clear_requests()
    emulators.google.clear_requests()


@contextmanager
def running_emulators(
    *, creation_limit: int = 1_000_000, google_rate: int = 1_000_000
) -> Iterator[Sandbox]:
    """Both emulators in a subprocess (`bench.emulators`), at zero added latency."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.emulators",
            f"--creation-limit={creation_limit}",
            f"--google-rate={google_rate}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    spy = None
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        spy = PROFILING.attach(process.pid, "emulators")
        bitrix = BitrixControl(urls["bitrix"], timeout=120)
        google = GoogleControl(urls["google"], timeout=120)
        emulators = Sandbox(urls["bitrix"], urls["google"], bitrix, google)
        try:
            yield emulators
        finally:
            emulators.close()
    finally:
        detach(spy)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Portal:
    key: str
    member_id: str
    domain: str
    token: str
    subject: str
    bitrix_url: str
    config: dict[str, Any]

    def event(self, section_id: int | str, event: str = "ONCALENDARSECTIONADD") -> bytes:
        """A delivery as Bitrix24 posts it: PHP bracket keys, form-encoded."""
        return http_build_query(
            {
                "event": event,
                "event_handler_id": "7",
                "data": {"id": str(section_id)},
                "ts": str(int(time.time())),
                "auth": {
                    "domain": self.domain,
                    "client_endpoint": f"{self.bitrix_url}/rest/",
                    "server_endpoint": "https://oauth.bitrix.info/rest/",
                    "member_id": self.member_id,
                    "application_token": self.token,
                },
            }
        ).encode()

    def control(self, emulators: Sandbox, what: str) -> str:
        return f"{emulators.bitrix_url}/_control/portals/{self.member_id}/{what}"


def register_portal(
    emulators: Sandbox,
    *,
    key: str = "bench",
    mirror: dict[str, Any] | None = None,
    google: dict[str, Any] | None = None,
    bitrix: dict[str, Any] | None = None,
) -> Portal:
    """A portal at Bitrix24's real leaky bucket (50, then 2/s) and a service account."""
    member_id, token = secrets.token_hex(16), secrets.token_hex(16)
    domain = f"{key}.bitrix24.com"
    added = emulators.bitrix.add_portal(member_id, domain, secrets.token_hex(8))
    account = generate_service_account(
        f"{emulators.google_url}/token", f"bridge-{key}@sandbox.iam.gserviceaccount.com"
    )
    emulators.google.add_service_account(account)
    subject = f"owner-{uuid.uuid4().hex[:6]}@{key}.example"
    config = {
        "key": key,
        "member_id": member_id,
        "domain": domain,
        "application_token": token,
        "bitrix": {"webhook_url": added["webhook_url"], **(bitrix or {})},
        "google": {
            "service_account": json.dumps(account),
            "subject": subject,
            "api_endpoint": f"{emulators.google_url}/calendar/v3/",
            **(google or {}),
        },
        "mirror": mirror or {"company": True, "resources": False, "locations": False, "groups": []},
    }
    return Portal(
        key=key,
        member_id=member_id,
        domain=domain,
        token=token,
        subject=subject,
        bitrix_url=emulators.bitrix_url,
        config=config,
    )


@contextmanager
def deployment(database_url: str, portals: list[Portal], run: str) -> Iterator[BenchDeployment]:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        configs = [portal.config for portal in portals]
        deployed = BenchDeployment(database_url, Path(folder), configs, run)
        try:
            yield deployed
        finally:
            deployed.close()


async def add_sections(
    emulators: Sandbox, portal: Portal, bodies: list[dict[str, Any]], label: str
) -> list[str]:
    """Create sections in the Bitrix24 emulator without delivering events; returns their ids."""
    return await _create_all(
        emulators, portal, "sections", bodies, label, deliver=False, in_order=False
    )


def entry_body(section_id: str, number: int, name: str) -> dict[str, Any]:
    """A one-hour entry on one of the next 300 days (inside the default window), in Berlin."""
    day = datetime.now(UTC).date() + timedelta(days=1 + number % 300)
    hour = 8 + number % 10
    return {
        "section": section_id,
        "name": f"{name} {number}",
        "start": f"{day.isoformat()}T{hour:02d}:00:00",
        "end": f"{day.isoformat()}T{hour:02d}:45:00",
        "zone": "Europe/Berlin",
    }


async def add_entries(
    emulators: Sandbox,
    portal: Portal,
    bodies: list[dict[str, Any]],
    label: str,
    *,
    deliver: bool,
    concurrency: int = 8,
) -> list[str]:
    """Create entries through the Bitrix24 emulator's control API, `concurrency` at a time; with
    `deliver`, each sends its ONCALENDARENTRYADD as Bitrix24 would. Returns their ids."""
    return await _create_all(
        emulators, portal, "entries", bodies, label, deliver=deliver, concurrency=concurrency
    )


async def _create_all(
    emulators: Sandbox,
    portal: Portal,
    kind: str,
    bodies: list[dict[str, Any]],
    label: str,
    *,
    deliver: bool,
    concurrency: int = 8,
    in_order: bool = True,
) -> list[str]:
    """POST each body to the control API's `kind` ("sections", "entries"), `concurrency` at a
    time (in the bodies' order, or from the last); the created ids, in the bodies' order."""
    from bench.load import Connection
    from bench.progress import Progress

    progress = Progress(label, len(bodies), f" {kind}")
    ids: list[str] = [""] * len(bodies)
    queue = list(enumerate(bodies))
    if in_order:
        queue.reverse()  # popped from the end
    url = portal.control(emulators, kind)

    async def create() -> None:
        connection = Connection(url)
        try:
            while queue:
                index, body = queue.pop()
                data = json.dumps({**body, "deliver": deliver}).encode()
                status, answer = await connection.post(data, "application/json")
                if status != 201:
                    raise RuntimeError(f"{kind[:-1]} not created: {status} {answer!r}")
                ids[index] = str(json.loads(answer)["ID"])
                progress.advance()
        finally:
            await connection.close()

    await asyncio.gather(*(create() for _ in range(concurrency)))
    progress.close()
    return ids


def count_rows(database_url: str, sql: str) -> int:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql(sql).scalar_one())
    finally:
        engine.dispose()


def google_inserts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`calendars.insert` calls that succeeded, from the Google emulator's request log."""
    return [
        r
        for r in rows
        if r["method"] == "POST"
        and r["path"].rstrip("/") == "/calendar/v3/calendars"
        and r["status"] == 200
    ]


def google_event_writes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`events.insert/update/patch/delete/move` calls, alone or inside a batch (the batch's own
    request is not one), from the Google emulator's request log."""
    return [
        r
        for r in rows
        if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
        and "/events" in r["path"]
        and r["path"].startswith("/calendar/v3/")
    ]


def event_entry(row: dict[str, Any]) -> str | None:
    """The Bitrix24 entry id a Google event write carries (`extendedProperties.private`)."""
    body = row.get("body")
    if not isinstance(body, dict):
        return None
    entry = ((body.get("extendedProperties") or {}).get("private") or {}).get("b24_entry")
    return str(entry) if entry is not None else None


def call_name(row: dict[str, Any]) -> str:
    """`POST calendars`, `PATCH users/me/calendarList/{id}` … from a Google log row."""
    parts = row["path"].removeprefix("/calendar/v3/").strip("/").split("/")
    named = [p if p in _RESOURCES else "{id}" for p in parts]
    return f"{row['method']} {'/'.join(named)}"


_RESOURCES = frozenset(
    {"calendars", "users", "me", "calendarList", "acl", "batch", "events", "instances", "move"}
)


# Google limits raised for runs that create many calendars: the bridge's creation pace (default
# 30 an hour per owner) and request pace at their maximum, the emulator's limits off.
RAISED_GOOGLE = {
    "creation_pace": {"calendars": 1_000_000, "minutes": 1},
    "requests_per_minute": 10_000,
}


def add_database_argument(parser: Any) -> None:
    parser.add_argument(
        "--database",
        choices=DATABASES,
        default="postgresql",
        help="database of the end-to-end, economy and reconciliation runs (default postgresql)",
    )


@dataclass
class Prepared:
    """A running deployment with sections made in Bitrix24 whose events were not yet sent."""

    emulators: Sandbox
    portal: Portal
    database_url: str
    section_ids: list[str]
    web_url: str


@contextmanager
def company_sections_ready(database: str, run: str, count: int, name: str) -> Iterator[Prepared]:
    """The common start of the section event benchmarks: emulators, one portal mirroring company
    calendars only (no periodic reconciliation, Google's limits raised), `count` sections made
    silently, web and worker started, and the request logs cleared."""
    with _sections_ready(database, run, count, name, mirrored=False) as ready:
        yield ready


@contextmanager
def mirrored_sections_ready(database: str, run: str, count: int, name: str) -> Iterator[Prepared]:
    """The common start of the entry event benchmarks: as `company_sections_ready`, but the
    sections' calendars are made first (one `bridge sync`), and the portal's outgoing webhook
    delivers its entry events (ONCALENDARENTRY*) to the web process."""
    with _sections_ready(database, run, count, name, mirrored=True) as ready:
        yield ready


@contextmanager
def _sections_ready(
    database: str, run: str, count: int, name: str, *, mirrored: bool
) -> Iterator[Prepared]:
    mirror = {"company": True, "resources": False, "locations": False, "groups": []}
    mirror["reconcile_interval_minutes"] = 0
    with running_emulators() as emulators:
        portal = register_portal(emulators, mirror=mirror, google=RAISED_GOOGLE)
        with fresh_database(database) as url, deployment(url, [portal], run) as deployed:
            bodies = [
                {"type": "company_calendar", "owner_id": 0, "name": f"{name} {i}"}
                for i in range(count)
            ]
            ids = asyncio.run(add_sections(emulators, portal, bodies, f"{run} setup"))
            if mirrored:
                _mirror_sections(deployed, url, count)
            deployed.start_web()
            if mirrored:
                emulators.bitrix.bind_outgoing_webhook(
                    portal.member_id,
                    f"{deployed.web_url}/bitrix/events",
                    portal.token,
                    events=ENTRY_EVENTS,
                )
            worker = deployed.start("worker")
            wait_for(lambda: "started for" in worker.output(), 30, "the worker")
            clear_logs(emulators)
            yield Prepared(emulators, portal, url, ids, deployed.web_url)


def _mirror_sections(deployed: BenchDeployment, database_url: str, count: int) -> None:
    """Every selected section's calendar, made by `bridge sync`."""
    synced = deployed.run("sync")
    active = count_rows(database_url, ACTIVE_CALENDARS)
    if synced.returncode != 0 or active != count:
        raise RuntimeError(
            f"bridge sync made {active} of {count} calendars (exit {synced.returncode}): "
            f"{(synced.stdout + synced.stderr)[-2000:]}"
        )


ACTIVE_CALENDARS = "SELECT count(*) FROM calendar_mapping WHERE state = 'active'"
ACTIVE_ENTRIES = "SELECT count(*) FROM entry_mapping WHERE state = 'active'"
