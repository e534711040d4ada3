"""The operator's commands that change portals: `sync`, `purge` and `replay` (`status` is in
bridge.status, `check-config --online` in bridge.probes)."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.google_errors import GoogleError
from bridge.lease import Lease, claim_portal, fenced, release_portal
from bridge.mappings import mapped_calendar
from bridge.models import CalendarMapping
from bridge.purge_plan import PurgePlan, plan_purge
from bridge.queue import replay_parked
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
            scope = Everything(
                dry_run=dry_run,
                force=force,
                progress=ProgressBar(f"{portal.key}: applying"),
                entry_progress=ProgressBar(f"{portal.key}: entries"),
            )
            report = sync(lease, portal, scope, clients)
        finally:
            clients.close()
            release_portal(lease)
        lines = (
            [*report.planned(portal.key), *report.failed]
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
    (`purge_plan.plan_purge` decides which)."""
    out = out or sys.stdout
    answer = answer or sys.stdin
    lease = _claim(engine, portal)
    if lease is None:
        print(f"{portal.key}: another process kept the portal busy; try again", file=out)
        return 1
    clients = PortalClients(engine, portal, cipher)
    try:
        return _purge(
            lease, portal, clients, dry_run=dry_run, assume_yes=assume_yes, out=out, answer=answer
        )
    finally:
        clients.close()
        release_portal(lease)


def _purge(
    lease: Lease,
    portal: PortalConfig,
    clients: PortalClients,
    *,
    dry_run: bool,
    assume_yes: bool,
    out: TextIO,
    answer: TextIO,
) -> int:
    """`purge_portal` under the lease: list, plan, show, confirm, delete, forget the mappings."""
    mappings = _mappings(lease.engine, portal.key)
    listed = list(clients.google.owned_calendars())
    plan = plan_purge(portal, map(mapped_calendar, mappings), listed)
    _print_purge_plan(portal.key, plan, len(mappings), dry_run=dry_run, out=out)
    if dry_run or not (plan.delete or mappings):
        return 0
    if not assume_yes and (refused := _refusal(len(plan.delete), answer, out)) is not None:
        return refused
    errors = _delete_calendars(portal.key, plan.delete, clients, out)
    if not errors:
        _forget_mappings(lease, portal.key)
    print(f"{portal.key}: deleted {len(plan.delete) - errors} calendar(s)", file=out)
    return 1 if errors else 0


def _mappings(engine: Engine, portal_key: str) -> list[CalendarMapping]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(CalendarMapping).where(CalendarMapping.portal_key == portal_key)
            ).all()
        )


def _print_purge_plan(
    portal_key: str, plan: PurgePlan, mappings: int, *, dry_run: bool, out: TextIO
) -> None:
    for reason in plan.left_alone:
        print(f"{portal_key}: leave alone {reason}", file=out)
    verb = "would delete" if dry_run else "delete"
    for calendar_id, summary in sorted(plan.delete.items(), key=lambda item: item[1]):
        print(f"{portal_key}: {verb} {summary!r} {calendar_id}", file=out)
    count = f"{len(plan.delete)} calendar(s) created by the bridge, {mappings} mapping(s)"
    print(f"{portal_key}: {count}", file=out)


def _refusal(count: int, answer: TextIO, out: TextIO) -> int | None:
    """Ask before deleting: None when the operator said yes, else the exit code (2 when there is
    no terminal to ask on, 1 when the answer was no)."""
    if not answer.isatty():
        print("refusing to delete without confirmation: pass --yes", file=out)
        return 2
    print(f"Delete these {count} calendars for good? [y/N] ", end="", file=out, flush=True)
    if answer.readline().strip().lower() not in ("y", "yes"):
        print("nothing deleted", file=out)
        return 1
    return None


def _delete_calendars(
    portal_key: str, calendars: dict[str, str], clients: PortalClients, out: TextIO
) -> int:
    """Delete each calendar, going on past a failure; the number that failed."""
    progress = ProgressBar(f"{portal_key}: deleting")
    errors = 0
    for index, calendar_id in enumerate(calendars, start=1):
        try:
            clients.google.delete_calendar(calendar_id)
        except GoogleError as exc:
            errors += 1
            print(f"{portal_key}: could not delete {calendar_id}: {exc}", file=out)
        progress(index, len(calendars))
    return errors


def _forget_mappings(lease: Lease, portal_key: str) -> None:
    with fenced(lease) as session:
        for mapping in session.exec(
            select(CalendarMapping).where(CalendarMapping.portal_key == portal_key)
        ):
            session.delete(mapping)


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
