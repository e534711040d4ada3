"""Many processes on one PostgreSQL: 2 web and 3 worker processes, 4 portals, 500 sections, a
shuffled stream of add/update/delete events with duplicates, and one worker killed midway."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from sqlmodel import Session, select

from bridge.db import create_db_engine
from bridge.deployment import Deployment
from bridge.harness import Sandbox, free_port, wait_for
from bridge.migrate import migrate
from bridge.models import CalendarMapping, InboxEvent, InboxState
from bridge.sandbox.bitrix import BitrixEmulator, http_build_query
from bridge.sandbox.google import GoogleEmulator, generate_service_account
from bridge.sandbox.server import ServerThread
from tests.conftest import fresh_schema, schema_url

PORTALS = 4
SECTIONS_PER_PORTAL = 125
EVENTS = ("ONCALENDARSECTIONADD", "ONCALENDARSECTIONUPDATE", "ONCALENDARSECTIONDELETE")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_schema("stress") as schema:
        yield schema_url(schema)


def test_two_webs_three_workers_500_sections_one_worker_killed(
    postgres_url: str, tmp_path: Path
) -> None:
    migrate(postgres_url)
    bitrix = ServerThread(BitrixEmulator().app)
    google = ServerThread(
        GoogleEmulator(creation_limit=100_000, user_rate_per_minute=1_000_000).app
    )
    with bitrix, google:
        sandbox = Sandbox.at(bitrix.url, google.url)
        portals = [_portal(sandbox, n) for n in range(PORTALS)]
        deployment = Deployment(
            postgres_url, tmp_path, [p["config"] for p in portals], lease_seconds=2
        )
        try:
            _run_stream(sandbox, deployment, portals, postgres_url)
        finally:
            deployment.close()
            sandbox.close()


def _run_stream(
    sandbox: Sandbox, deployment: Deployment, portals: list[dict[str, Any]], postgres_url: str
) -> None:
    rng = random.Random(20261127)
    with httpx.Client(timeout=30) as http:
        webs = []
        for _ in range(2):
            deployment.env["PORT"] = str(free_port())  # each web process on a port of its own
            deployment.start_web()
            webs.append(deployment.web_url)
        workers = [deployment.start("worker") for _ in range(3)]

        # Bitrix24 changes nobody hears about yet: creates, then renames and deletes.
        live: dict[str, dict[str, str]] = {}
        stream: list[tuple[dict[str, Any], str, str]] = []
        for portal in portals:
            member_id = portal["member_id"]
            live[portal["key"]] = {}
            for i in range(SECTIONS_PER_PORTAL):
                section = sandbox.bitrix.add_section(
                    member_id, "company_calendar", 0, f"S{i}", deliver=False
                )
                live[portal["key"]][section["ID"]] = section["NAME"]
                stream.append((portal, "ONCALENDARSECTIONADD", section["ID"]))
            ids = list(live[portal["key"]])
            for section_id in rng.sample(ids, 40):
                name = f"Renamed {section_id}"
                sandbox.bitrix.update_section(member_id, section_id, name=name, deliver=False)
                live[portal["key"]][section_id] = name
                stream.append((portal, "ONCALENDARSECTIONUPDATE", section_id))
            for section_id in rng.sample(ids, 12):
                sandbox.bitrix.delete_section(member_id, section_id, deliver=False)
                live[portal["key"]].pop(section_id)
                stream.append((portal, "ONCALENDARSECTIONDELETE", section_id))
        stream += rng.sample(stream, len(stream) // 5)  # re-deliveries
        rng.shuffle(stream)

        def deliver(item: tuple[int, tuple[dict[str, Any], str, str]]) -> int:
            index, (portal, event, section_id) = item
            body = http_build_query(_event(portal, event, section_id, sandbox.bitrix_url))
            answer = http.post(
                f"{webs[index % 2]}/bitrix/events",
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            return answer.status_code

        third = len(stream) // 3
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(deliver, enumerate(stream[:third])))
            workers[0].kill()
            codes += list(pool.map(deliver, enumerate(stream[third:], start=third)))
        assert codes == [200] * len(stream)

        engine = create_db_engine(postgres_url)
        try:
            wait_for(lambda: _settled(engine), 180, "the workers to drain the inbox")
            with Session(engine) as session:
                rows = session.exec(select(InboxEvent)).all()
                mappings = session.exec(select(CalendarMapping)).all()
        finally:
            engine.dispose()

        assert {row.state for row in rows} <= {InboxState.DONE, InboxState.SKIPPED}, [
            (row.state, row.outcome)
            for row in rows
            if row.state not in (InboxState.DONE, InboxState.SKIPPED)
        ]
        for portal in portals:
            calendars = sandbox.google.calendars(owner=portal["subject"])
            assert sorted(c["summary"] for c in calendars) == sorted(
                live[portal["key"]].values()
            ), portal["key"]
            mapped = {
                m.section_id: m.google_calendar_id
                for m in mappings
                if m.portal_key == portal["key"]
            }
            assert set(mapped) == set(live[portal["key"]])
            assert set(mapped.values()) == {c["id"] for c in calendars}

        for process in deployment.processes:
            process.stop()
        logs = [process.output() for process in deployment.processes]
        assert len(logs) == 5
        assert all("Traceback" not in log for log in logs), [
            log for log in logs if "Traceback" in log
        ]


def _portal(sandbox: Sandbox, n: int) -> dict[str, Any]:
    key, member_id, token = f"p{n}", secrets.token_hex(16), secrets.token_hex(16)
    added = sandbox.bitrix.add_portal(
        member_id,
        f"{key}.bitrix24.com",
        secrets.token_hex(8),
        bucket_burst=10_000,
        bucket_drain_per_s=10_000,
    )
    account = generate_service_account(
        f"{sandbox.google_url}/token", f"bridge-{key}@sandbox.iam.gserviceaccount.com"
    )
    sandbox.google.add_service_account(account)
    subject = f"owner@{key}.example"
    return {
        "key": key,
        "member_id": member_id,
        "token": token,
        "subject": subject,
        "config": {
            "key": key,
            "member_id": member_id,
            "domain": f"{key}.bitrix24.com",
            "application_token": token,
            "bitrix": {
                "webhook_url": added["webhook_url"],
                "rate_limit": {"burst": 1000, "per_second": 1000},
            },
            "google": {
                "service_account": json.dumps(account),
                "subject": subject,
                "api_endpoint": f"{sandbox.google_url}/calendar/v3/",
                "creation_pace": {"calendars": 100_000, "minutes": 1},
                "requests_per_minute": 10_000,
            },
            "mirror": {
                "company": True,
                "resources": False,
                "locations": False,
                "reconcile_interval_minutes": 0,
                # 12 of 125 deleted within minutes: more than the default 10 a day the guard
                # allows; every deletion here is genuine.
                "delete_guard": {"max_count": 20},
            },
        },
    }


def _event(portal: dict[str, Any], event: str, section_id: str, bitrix_url: str) -> dict[str, Any]:
    return {
        "event": event,
        "event_handler_id": "7",
        "data": {"id": section_id},
        "ts": "1795000000",
        "auth": {
            "domain": f"{portal['key']}.bitrix24.com",
            "client_endpoint": f"{bitrix_url}/rest/",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "member_id": portal["member_id"],
            "application_token": portal["token"],
        },
    }


def _settled(engine: sqlalchemy.Engine) -> bool:
    with Session(engine) as session:
        waiting = session.exec(
            select(InboxEvent.id).where(
                InboxEvent.state.in_([InboxState.PENDING, InboxState.WORKING])  # type: ignore[attr-defined]
            )
        ).first()
    return waiting is None
