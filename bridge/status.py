"""`bridge status`: per portal, calendars, queue depth, parked work with reasons and age, the
app's install state, credentials, Google quota, last reconciliation; as text or JSON."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.addresses import current as current_addresses
from bridge.config import PortalConfig
from bridge.events import OFFLINE_NOTICE
from bridge.installs import install_report
from bridge.models import (
    CalendarMapping,
    InboxEvent,
    InboxState,
    MappingState,
    PortalCredentials,
    PortalState,
    utcnow,
)
from bridge.quota import owner_block

PARKED_SHOWN = 20  # the newest parked events listed; the rest are counted


def portal_status(
    engine: Engine,
    portals: Sequence[PortalConfig],
    *,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    """Per portal: calendars, queue depth, parked work with reasons and age, last reconcile."""
    out = out or sys.stdout
    report = [collect_status(engine, portal) for portal in portals]
    if as_json:
        print(json.dumps({"portals": report}, indent=2, default=str), file=out)
        return 0
    for portal in report:
        for line in status_lines(portal):
            print(line, file=out)
    return 0


def status_lines(portal: dict[str, Any]) -> list[str]:
    """The text of one portal's status, a line per list item."""
    lines = [
        f"{portal['key']} ({portal['domain']})",
        "  calendars: " + _counts(portal["calendars"]),
        "  events: " + _counts(portal["events"]),
    ]
    if portal["oldest_waiting_s"] is not None:
        lines.append(f"  oldest waiting event: {_age(portal['oldest_waiting_s'])} old")
    lines.append(f"  last event: {_when(portal['last_event_at'])}")
    reconciled = portal["last_reconciliation"]
    line = f"  last reconciliation: {_when(reconciled['at'])} {reconciled['outcome'] or ''}"
    lines.append(line.rstrip())
    if portal["app"] is not None:
        lines += _app_lines(portal["app"])
    if portal["offline"] is not None:
        lines += _offline_lines(portal["offline"])
    lines += [f"  address: {a['message']}; {a['advice']}" for a in portal["addresses"]]
    lines.append(_credentials_line(portal["credentials"]))
    if portal["google_owner"]["read_only"]:
        lines.append(_read_only_line(portal["google_owner"]))
    lines += _parked_lines(portal)
    return lines


def _app_lines(app: dict[str, Any]) -> list[str]:
    if app["uninstalled_at"] is not None:
        lines = [f"  app: UNINSTALLED {_when(app['uninstalled_at'])}: work stopped"]
    elif not app["installed"] or app["problem"]:
        lines = [f"  app: not usable: {app['problem'] or 'never installed'}"]
    else:
        lines = [f"  app: installed {_when(app['installed_at'])}"]
    if waiting := app["installs"]["waiting"]:
        lines.append(f"  app: {waiting} install(s) waiting for verification")
    for refused in app["installs"]["refused"]:
        when = _when(refused["received_at"])
        lines.append(f"  app: install of {when} not verified: {refused['problem']}")
    return lines


def _offline_lines(offline: dict[str, Any]) -> list[str]:
    lines = [f"  offline delivery: {_offline_line(offline)}"]
    if failure := offline["pull_failed"]:
        lines.append(f"  offline pull failed: {failure} (`bridge replay` retries)")
    return lines


def _credentials_line(credentials: dict[str, Any]) -> str:
    if credentials["ok"]:
        return "  credentials: ok"
    since = _when(credentials["failing_since"])
    return f"  credentials: failing since {since}: {credentials['error']}"


def _read_only_line(owner: dict[str, Any]) -> str:
    return (
        f"  google owner {owner['subject']}: READ-ONLY (403 quotaExceeded) since "
        f"{_when(owner['blocked_at'])}; writes wait for one probe at "
        f"{owner['probe_at']:%Y-%m-%d %H:%M:%S} UTC "
        f"(in {_age(max(0.0, (owner['probe_at'] - utcnow()).total_seconds()))})"
    )


def _parked_lines(portal: dict[str, Any]) -> list[str]:
    lines = [
        f"  parked #{row['id']} {row['event']} section {row['section_id']}, "
        f"{_age(row['age_s'])} old: {row['reason']}"
        for row in portal["parked"]
    ]
    more = portal["events"].get("parked", 0) - len(portal["parked"])
    if more > 0:
        lines.append(f"  … and {more} more parked")
    return lines


def _owner_status(engine: Engine, subject: str) -> dict[str, Any]:
    block = owner_block(engine, subject)
    return {
        "subject": subject,
        "read_only": block is not None,
        "blocked_at": block.blocked_at if block else None,
        "probe_at": block.probe_at if block else None,
        "probe_interval_s": block.interval_s if block else None,
    }


def collect_status(engine: Engine, portal: PortalConfig) -> dict[str, Any]:
    """One portal's status as plain values (`bridge status --json` prints it as it is)."""
    now = utcnow()
    with Session(engine) as session:
        calendars = _calendar_counts(session, portal.key)
        events = _event_counts(session, portal.key)
        oldest, latest = _oldest_waiting(session, portal.key), _latest_event(session, portal.key)
        parked = _recent_parked(session, portal.key)
        state = session.get(PortalState, portal.key)
        install = session.get(PortalCredentials, portal.key)
    return {
        "addresses": current_addresses(engine, portal),
        "app": _app_status(engine, portal, install) if portal.app_mode else None,
        "google_owner": _owner_status(engine, portal.google.subject),
        "offline": _offline_status(state, parked) if portal.bitrix.delivery == "offline" else None,
        "key": portal.key,
        "domain": portal.domain,
        "member_id": portal.member_id,
        "calendars": calendars,
        "events": events,
        "oldest_waiting_s": None if oldest is None else (now - oldest).total_seconds(),
        "last_event_at": latest,
        "last_reconciliation": _reconciliation_status(state),
        "credentials": _credentials_status(state),
        "parked": [_parked_status(row, now) for row in parked],
    }


def _calendar_counts(session: Session, portal_key: str) -> dict[str, int]:
    counts = Counter(
        str(state)
        for state in session.exec(
            select(CalendarMapping.state).where(CalendarMapping.portal_key == portal_key)
        )
    )
    return {s.value: counts.get(s.value, 0) for s in MappingState}


def _event_counts(session: Session, portal_key: str) -> dict[str, int]:
    counts = Counter(
        str(state)
        for state in session.exec(
            select(InboxEvent.state).where(InboxEvent.portal_key == portal_key)
        )
    )
    return {s.value: counts.get(s.value, 0) for s in InboxState}


def _oldest_waiting(session: Session, portal_key: str) -> datetime | None:
    """When the oldest event still pending or being worked on arrived."""
    return session.exec(
        select(func.min(InboxEvent.received_at)).where(
            InboxEvent.portal_key == portal_key,
            col(InboxEvent.state).in_([InboxState.PENDING, InboxState.WORKING]),
        )
    ).one()


def _latest_event(session: Session, portal_key: str) -> datetime | None:
    return session.exec(
        select(func.max(InboxEvent.received_at)).where(InboxEvent.portal_key == portal_key)
    ).one()


def _recent_parked(session: Session, portal_key: str) -> list[InboxEvent]:
    return list(
        session.exec(
            select(InboxEvent)
            .where(InboxEvent.portal_key == portal_key, InboxEvent.state == InboxState.PARKED)
            .order_by(col(InboxEvent.id).desc())
            .limit(PARKED_SHOWN)
        ).all()
    )


def _app_status(
    engine: Engine, portal: PortalConfig, install: PortalCredentials | None
) -> dict[str, Any]:
    return {
        "installed": bool(install and install.installed_at and not install.uninstalled_at),
        "installed_at": install.installed_at if install else None,
        "uninstalled_at": install.uninstalled_at if install else None,
        "problem": install.problem if install else "never installed",
        "token_refreshes": install.refresh_count if install else 0,
        "installs": install_report(engine, portal),
    }


def _offline_status(state: PortalState | None, parked: list[InboxEvent]) -> dict[str, Any]:
    mode = state.offline_mode if state else None
    return {
        "mode": mode,
        "note": OFFLINE_NOTES.get(mode or "", "not checked yet (asked at the first pull)"),
        "pull_failed": next((r.outcome for r in parked if r.event == OFFLINE_NOTICE), None),
    }


def _reconciliation_status(state: PortalState | None) -> dict[str, Any]:
    return {
        "at": state.reconciled_at if state else None,
        "outcome": (state.reconcile_outcome or "").split("\n", 1)[0] if state else None,
    }


def _credentials_status(state: PortalState | None) -> dict[str, Any]:
    return {
        "ok": not (state and state.credential_error),
        "error": state.credential_error if state else None,
        "failing_since": state.credential_error_at if state else None,
    }


def _parked_status(row: InboxEvent, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "event": row.event,
        "section_id": row.section_id,
        "age_s": (now - row.received_at).total_seconds(),
        "reason": row.outcome,
    }


OFFLINE_NOTES = {
    "extended": "each batch is confirmed after it is stored",
    "basic": (
        "the plan lacks rest_offline_extended; a crash between pull and store may lose changes, "
        "reconciliation repairs them"
    ),
}


def _offline_line(offline: dict[str, Any]) -> str:
    return f"{offline['mode'] or 'unknown'} ({offline['note']})"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({_age((utcnow() - moment).total_seconds())} ago)"


def _age(total_seconds: float) -> str:
    seconds = max(0, int(total_seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
