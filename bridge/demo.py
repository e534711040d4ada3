"""`bridge demo` and `bridge sandbox`: the whole loop on one machine, against the emulators."""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bridge import demo_entries
from bridge.app import create_app
from bridge.config import PortalConfig
from bridge.db import create_db_engine
from bridge.harness import (
    Sandbox,
    bind_outgoing_webhook,
    demo_portal,
    inbox_settled,
    running_sandbox,
    wait_for,
)
from bridge.migrate import migrate
from bridge.models import CalendarMapping, InboxEvent
from bridge.sandbox.server import ServerThread
from bridge.worker import Worker


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
                bitrix, member_id = sandbox.bitrix, portal.member_id
                bitrix.add_owners(member_id, "groups", [{"ID": "12", "NAME": "Sales"}])
                holidays = bitrix.add_section(
                    member_id, "company_calendar", 0, "Company holidays", color="#9cbeee"
                )
                bitrix.add_section(member_id, "resource", 0, "Meeting room Everest")
                team = bitrix.add_section(member_id, "group", 12, "Sales team", color="#f4c542")
                bitrix.flush_deliveries()
                ok = _wait_until_applied(engine, timeout=30)
                _print_results(sandbox, engine)
                shown = _show_entries(sandbox, engine, portal, str(holidays["ID"]), str(team["ID"]))
                ok = ok and shown
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
    try:
        wait_for(lambda: inbox_settled(engine), timeout, "the events to be applied", every=0.05)
    except TimeoutError:
        return False
    return True


def _show_entries(
    sandbox: Sandbox, engine: Engine, portal: PortalConfig, holidays: str, team: str
) -> bool:
    """Step 5: a meeting room, then four entries in the sections above, as Google shows them."""
    bitrix, member_id = sandbox.bitrix, portal.member_id
    _say(f"\n5. the portal adds the meeting room {demo_entries.ROOM} (one more calendar), then")
    _say("   four entries: a meeting, an all-day holiday, a weekly series (one occurrence")
    _say("   cancelled, one moved) and a meeting that books the room")
    room = demo_entries.add_room(bitrix, member_id)
    bitrix.flush_deliveries()
    ok = _wait_until_applied(engine, timeout=30)  # the room's calendar, before its bookings
    first_row = _last_inbox_id(engine) + 1
    entries = demo_entries.add_entries(bitrix, member_id, holidays=holidays, team=team, room=room)
    bitrix.flush_deliveries()
    ok = _wait_until_applied(engine, timeout=30) and ok
    demo_entries.print_entries(sandbox, engine, portal, entries, _say)
    with Session(engine) as session:
        rows = session.exec(
            select(InboxEvent).where(col(InboxEvent.id) >= first_row).order_by(col(InboxEvent.id))
        ).all()
    _say(f"\nInbox, the entries' events ({len(rows)}):")
    _table(
        ["id", "event", "entry", "state", "outcome"],
        [[str(r.id), r.event, r.entry_id or "", r.state, r.outcome or ""] for r in rows],
    )
    return ok


def _last_inbox_id(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.max(InboxEvent.id))).one() or 0


def _print_results(sandbox: Sandbox, engine: Engine) -> None:
    calendars = sandbox.google.calendars()
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
