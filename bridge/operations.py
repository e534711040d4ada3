"""The operator's commands that act on portals: `sync`, `purge`, `replay` and `status`."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.addresses import current as current_addresses
from bridge.apply import mapped_calendar
from bridge.bitrix import BitrixAccessDenied, BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.events import OFFLINE_NOTICE
from bridge.google_calendar import GoogleError
from bridge.installs import install_report
from bridge.lease import Lease, claim_portal, fenced, release_portal
from bridge.mirror import plan_purge
from bridge.models import (
    CalendarMapping,
    InboxEvent,
    InboxState,
    MappingState,
    PortalCredentials,
    PortalState,
    utcnow,
)
from bridge.queue import replay_parked
from bridge.quota import owner_block
from bridge.sync import Everything, sync
from bridge.tokens import TokenCipher

LEASE_TTL = timedelta(minutes=30)
LEASE_WAIT_S = 60.0
HOLDER = f"cli:{socket.gethostname()}:{os.getpid()}"


class ProgressBar:
    """`label [#####-----] 12/40` on a terminal; a line per tenth elsewhere (logs stay short)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self._tty = self.stream.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        total = max(total, 1)
        if self._tty:
            filled = self.width * done // total
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total}{end}")
        elif (tenth := 10 * done // total) != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(f"{self.label}: {done}/{total}\n")
        self.stream.flush()


def sync_portals(
    engine: Engine,
    portals: Sequence[PortalConfig],
    *,
    dry_run: bool,
    force: bool,
    out: TextIO | None = None,
    cipher: TokenCipher | None = None,
) -> int:
    """Reconcile each portal; 0 when every portal converged (or planned cleanly), else 1."""
    out = out or sys.stdout
    failed = False
    for portal in portals:
        lease = _claim(engine, portal)
        if lease is None:
            print(
                f"{portal.key}: another process held the portal for {LEASE_WAIT_S:.0f} s; skipped",
                file=out,
            )
            failed = True
            continue
        clients = PortalClients(engine, portal, cipher)
        try:
            progress = ProgressBar(f"{portal.key}: applying")
            scope = Everything(dry_run=dry_run, force=force, progress=progress)
            report = sync(lease, portal, scope, clients)
        finally:
            clients.close()
            release_portal(lease)
        lines = (
            [*(a.describe(portal.key) for a in report.actions), *report.failed]
            if dry_run
            else [*report.done, *report.details(portal.key)]
        )
        for line in lines:
            print(line, file=out)
        print(report.summary(), file=out)
        failed = failed or bool(report.failed or report.blocked)
    return 1 if failed else 0


def purge_portal(
    engine: Engine,
    portal: PortalConfig,
    *,
    dry_run: bool,
    assume_yes: bool,
    out: TextIO | None = None,
    answer: TextIO | None = None,
    cipher: TokenCipher | None = None,
) -> int:
    """Delete the calendars the bridge made for the portal (by mapping or by marker), only those
    (`mirror.plan_purge` decides which)."""
    out = out or sys.stdout
    answer = answer or sys.stdin
    lease = _claim(engine, portal)
    if lease is None:
        print(f"{portal.key}: another process kept the portal busy; try again", file=out)
        return 1
    clients = PortalClients(engine, portal, cipher)
    try:
        with Session(engine) as session:
            mappings = list(
                session.exec(
                    select(CalendarMapping).where(CalendarMapping.portal_key == portal.key)
                ).all()
            )
        listed = list(clients.google.owned_calendars())
        plan = plan_purge(portal, map(mapped_calendar, mappings), listed)
        summaries = plan.delete
        for reason in plan.left_alone:
            print(f"{portal.key}: leave alone {reason}", file=out)
        for calendar_id, summary in sorted(summaries.items(), key=lambda item: item[1]):
            verb = "would delete" if dry_run else "delete"
            print(f"{portal.key}: {verb} {summary!r} {calendar_id}", file=out)
        count = f"{len(summaries)} calendar(s) created by the bridge, {len(mappings)} mapping(s)"
        print(f"{portal.key}: {count}", file=out)
        if dry_run or not (summaries or mappings):
            return 0
        if not assume_yes:
            if not answer.isatty():
                print("refusing to delete without confirmation: pass --yes", file=out)
                return 2
            print(
                f"Delete these {len(summaries)} calendars for good? [y/N] ",
                end="",
                file=out,
                flush=True,
            )
            if answer.readline().strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=out)
                return 1
        progress = ProgressBar(f"{portal.key}: deleting")
        errors = 0
        for index, calendar_id in enumerate(summaries, start=1):
            try:
                clients.google.delete_calendar(calendar_id)
            except GoogleError as exc:
                errors += 1
                print(f"{portal.key}: could not delete {calendar_id}: {exc}", file=out)
            progress(index, len(summaries))
        if not errors:
            with fenced(lease) as session:
                for mapping in session.exec(
                    select(CalendarMapping).where(CalendarMapping.portal_key == portal.key)
                ):
                    session.delete(mapping)
        print(f"{portal.key}: deleted {len(summaries) - errors} calendar(s)", file=out)
        return 1 if errors else 0
    finally:
        clients.close()
        release_portal(lease)


def _claim(engine: Engine, portal: PortalConfig) -> Lease | None:
    deadline = time.monotonic() + LEASE_WAIT_S
    while (lease := claim_portal(engine, portal.key, HOLDER, LEASE_TTL)) is None:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    return lease


def replay(
    engine: Engine, portal_key: str | None, section_id: str | None, out: TextIO | None = None
) -> int:
    count = replay_parked(engine, portal_key, section_id)
    print(f"{count} parked event(s) put back in the queue", file=out or sys.stdout)
    return 0


def portal_status(  # noqa: C901  # one branch per optional status line
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
        print(f"{portal['key']} ({portal['domain']})", file=out)
        print("  calendars: " + _counts(portal["calendars"]), file=out)
        print("  events: " + _counts(portal["events"]), file=out)
        if portal["oldest_waiting_s"] is not None:
            print(f"  oldest waiting event: {_age(portal['oldest_waiting_s'])} old", file=out)
        print(f"  last event: {_when(portal['last_event_at'])}", file=out)
        reconciled = portal["last_reconciliation"]
        line = f"  last reconciliation: {_when(reconciled['at'])} {reconciled['outcome'] or ''}"
        print(line.rstrip(), file=out)
        app = portal["app"]
        if app is not None:
            if app["uninstalled_at"] is not None:
                print(f"  app: UNINSTALLED {_when(app['uninstalled_at'])}: work stopped", file=out)
            elif not app["installed"] or app["problem"]:
                print(f"  app: not usable: {app['problem'] or 'never installed'}", file=out)
            else:
                print(f"  app: installed {_when(app['installed_at'])}", file=out)
            if app["installs"]["waiting"]:
                waiting = app["installs"]["waiting"]
                print(f"  app: {waiting} install(s) waiting for verification", file=out)
            for refused in app["installs"]["refused"]:
                when = _when(refused["received_at"])
                print(f"  app: install of {when} not verified: {refused['problem']}", file=out)
        if portal["offline"] is not None:
            print(f"  offline delivery: {_offline_line(portal['offline'])}", file=out)
            if portal["offline"]["pull_failed"]:
                failure = portal["offline"]["pull_failed"]
                print(f"  offline pull failed: {failure} (`bridge replay` retries)", file=out)
        for address in portal["addresses"]:
            print(f"  address: {address['message']}; {address['advice']}", file=out)
        credentials = portal["credentials"]
        if credentials["ok"]:
            print("  credentials: ok", file=out)
        else:
            since = _when(credentials["failing_since"])
            print(f"  credentials: failing since {since}: {credentials['error']}", file=out)
        owner = portal["google_owner"]
        if owner["read_only"]:
            print(
                f"  google owner {owner['subject']}: READ-ONLY (403 quotaExceeded) since "
                f"{_when(owner['blocked_at'])}; writes wait for one probe at "
                f"{owner['probe_at']:%Y-%m-%d %H:%M:%S} UTC "
                f"(in {_age(max(0.0, (owner['probe_at'] - utcnow()).total_seconds()))})",
                file=out,
            )
        for row in portal["parked"]:
            print(
                f"  parked #{row['id']} {row['event']} section {row['section_id']}, "
                f"{_age(row['age_s'])} old: {row['reason']}",
                file=out,
            )
        more = portal["events"].get("parked", 0) - len(portal["parked"])
        if more > 0:
            print(f"  … and {more} more parked", file=out)
    return 0


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
    now = utcnow()
    with Session(engine) as session:
        calendars = Counter(
            str(state)
            for state in session.exec(
                select(CalendarMapping.state).where(CalendarMapping.portal_key == portal.key)
            )
        )
        events = Counter(
            str(state)
            for state in session.exec(
                select(InboxEvent.state).where(InboxEvent.portal_key == portal.key)
            )
        )
        oldest = session.exec(
            select(func.min(InboxEvent.received_at)).where(
                InboxEvent.portal_key == portal.key,
                col(InboxEvent.state).in_([InboxState.PENDING, InboxState.WORKING]),
            )
        ).one()
        latest = session.exec(
            select(func.max(InboxEvent.received_at)).where(InboxEvent.portal_key == portal.key)
        ).one()
        parked = session.exec(
            select(InboxEvent)
            .where(InboxEvent.portal_key == portal.key, InboxEvent.state == InboxState.PARKED)
            .order_by(col(InboxEvent.id).desc())
            .limit(20)
        ).all()
        state = session.get(PortalState, portal.key)
        install = session.get(PortalCredentials, portal.key)
    app = None
    if portal.app_mode:
        app = {
            "installed": bool(install and install.installed_at and not install.uninstalled_at),
            "installed_at": install.installed_at if install else None,
            "uninstalled_at": install.uninstalled_at if install else None,
            "problem": install.problem if install else "never installed",
            "token_refreshes": install.refresh_count if install else 0,
            "installs": install_report(engine, portal),
        }
    offline = None
    if portal.bitrix.delivery == "offline":
        mode = state.offline_mode if state else None
        offline = {
            "mode": mode,
            "note": OFFLINE_NOTES.get(mode or "", "not checked yet (asked at the first pull)"),
            "pull_failed": next((r.outcome for r in parked if r.event == OFFLINE_NOTICE), None),
        }
    return {
        "addresses": current_addresses(engine, portal),
        "app": app,
        "google_owner": _owner_status(engine, portal.google.subject),
        "offline": offline,
        "key": portal.key,
        "domain": portal.domain,
        "member_id": portal.member_id,
        "calendars": {s.value: calendars.get(s.value, 0) for s in MappingState},
        "events": {s.value: events.get(s.value, 0) for s in InboxState},
        "oldest_waiting_s": None if oldest is None else (now - oldest).total_seconds(),
        "last_event_at": latest,
        "last_reconciliation": {
            "at": state.reconciled_at if state else None,
            "outcome": (state.reconcile_outcome or "").split("\n", 1)[0] if state else None,
        },
        "credentials": {
            "ok": not (state and state.credential_error),
            "error": state.credential_error if state else None,
            "failing_since": state.credential_error_at if state else None,
        },
        "parked": [
            {
                "id": row.id,
                "event": row.event,
                "section_id": row.section_id,
                "age_s": (now - row.received_at).total_seconds(),
                "reason": row.outcome,
            }
            for row in parked
        ],
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


def check_portals(
    engine: Engine,
    portals: Sequence[PortalConfig],
    *,
    online: bool,
    out: TextIO | None = None,
    cipher: TokenCipher | None = None,
) -> int:
    """The config is valid by now; with `online`, one read-only call per portal to each API."""
    out = out or sys.stdout
    print(f"config ok: {len(portals)} portal(s): {', '.join(p.key for p in portals)}", file=out)
    if not online:
        return 0
    failed = False
    for portal in portals:
        clients = PortalClients(engine, portal, cipher)
        try:
            probes: tuple[tuple[str, Callable[[PortalClients], str]], ...] = (
                ("bitrix24", partial(_probe_bitrix, portal)),
                ("google", _probe_google),
            )
            for api, probe in probes:
                try:
                    detail = probe(clients)
                    print(f"{portal.key}: {api} ok: {detail}", file=out)
                except (BitrixError, GoogleError) as exc:
                    failed = True
                    print(f"{portal.key}: {api} failing: {exc}", file=out)
        finally:
            clients.close()
    return 1 if failed else 0


# The REST scopes a portal's config needs, and why. Scope codes: api-reference/scopes/
# permissions.md in the Bitrix24 REST docs (`sonet_group` is also called `socialnetwork`; `user`
# also comes as `user_brief`/`user_basic`, either of which lists users).
_SCOPE_GRANTS = {
    "calendar": frozenset({"calendar"}),
    "user": frozenset({"user", "user_brief", "user_basic"}),
    "sonet_group": frozenset({"sonet_group", "socialnetwork"}),
    "im": frozenset({"im"}),
}
# A cheap read-only call per scope, where one exists; `im` is known only from the `scope` list.
_SCOPE_PROBES = {
    "calendar": "calendar.section.get?type=company_calendar&ownerId=0",
    "user": "user.get?FILTER%5BID%5D=0",
    "sonet_group": "socialnetwork.api.workgroup.list?select%5B0%5D=ID&filter%5BID%5D=0",
}


def needed_scopes(portal: PortalConfig) -> dict[str, str]:
    """Scope → what needs it, for this portal's config."""
    needed = {"calendar": "calendar sections and resources"}
    if portal.mirror.users:
        needed["user"] = "mirror.users: listing users"
    if portal.mirror.groups:
        needed["sonet_group"] = "mirror.groups: listing workgroups"
    if portal.notify.bitrix_users:
        needed["im"] = "notify.bitrix_users: Bitrix24 notifications"
    return needed


def _probe_bitrix(portal: PortalConfig, clients: PortalClients) -> str:
    """One batch: `scope` (the webhook's or app's scopes, api-reference/common/system/scope.md)
    and a read-only call per needed scope; a scope is missing when either says so."""
    needed = needed_scopes(portal)
    probes = {scope: _SCOPE_PROBES[scope] for scope in needed if scope in _SCOPE_PROBES}
    answer = clients.bitrix.batch({"scope": "scope", **probes})
    listed = answer.results.get("scope")
    granted = (
        {str(code) for code in listed}
        if isinstance(listed, list) and "scope" not in answer.errors
        else None
    )
    missing = []
    for scope, why in needed.items():
        error = answer.errors.get(scope)
        lacking = error is not None and error.code == "insufficient_scope"
        if lacking or (granted is not None and not _SCOPE_GRANTS[scope] & granted):
            missing.append(f"{scope} ({why})")
        elif error is not None:
            raise error
    if missing:
        raise BitrixAccessDenied(
            "scope",
            "insufficient_scope",
            f"the webhook or app lacks scope(s) {', '.join(missing)}: add them in Bitrix24",
        )
    sections = answer.results.get("calendar")
    count = len(sections) if isinstance(sections, list) else 0
    unverified = "" if granted is not None else " (the `scope` method failed: im not verified)"
    return (
        f"scopes {', '.join(needed)} granted{unverified}; "
        f"{count} company calendar section(s) readable"
    )


def _probe_google(clients: PortalClients) -> str:
    count = sum(1 for _ in clients.google.owned_calendars())
    return f"the owner's calendar list is readable ({count} owned calendar(s))"


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
