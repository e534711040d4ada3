"""The operator's commands that act on portals: `bridge sync` and `bridge purge`."""

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

from bridge.config import PortalConfig
from bridge.google_calendar import GoogleError
from bridge.lease import Lease, claim_portal, fenced, release_portal
from bridge.mirror import read_marker
from bridge.models import CalendarMapping
from bridge.reconcile import reconcile_portal
from bridge.worker import PortalClients

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
        clients = PortalClients(portal)
        try:
            report = reconcile_portal(
                lease,
                portal,
                clients.bitrix,
                clients.google,
                dry_run=dry_run,
                force=force,
                progress=ProgressBar(f"{portal.key}: applying"),
            )
        finally:
            clients.close()
            release_portal(lease)
        lines = (
            [a.describe(portal.key) for a in report.actions]
            if dry_run or report.blocked
            else report.done
        )
        for line in [*lines, *report.failed]:
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
) -> int:
    """Delete the calendars the bridge made for the portal (by mapping or by marker), only those."""
    out = out or sys.stdout
    answer = answer or sys.stdin
    lease = _claim(engine, portal)
    if lease is None:
        print(f"{portal.key}: another process kept the portal busy; try again", file=out)
        return 1
    clients = PortalClients(portal)
    try:
        with Session(engine) as session:
            mappings = list(
                session.exec(
                    select(CalendarMapping).where(CalendarMapping.portal_key == portal.key)
                ).all()
            )
        summaries = {}
        for entry in clients.google.owned_calendars():
            found = read_marker(entry.description)
            if found and found[0] == portal.key:
                summaries[entry.id] = entry.summary
        for mapping in mappings:
            if mapping.google_calendar_id:
                summaries.setdefault(mapping.google_calendar_id, f"(section {mapping.section_id})")
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
