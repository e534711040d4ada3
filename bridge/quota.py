"""Google's read-only mode per owner: probe with one write instead of waiting a fixed time.

A `403 quotaExceeded` means the owner (the Google `subject`) may not write for a while that Google
does not state: minutes to hours. On the first refusal the owner is blocked in the `owner_quota`
table, shared by every worker and portal, with a probe after `google.read_only_probe.first_minutes`.
While blocked, the owner's work waits for the probe without calling Google and without counting an
attempt. At `probe_at` exactly one action may write (claimed atomically by moving `probe_at`
forward); a refusal doubles the interval up to `max_minutes`, a write that goes through lifts the
block and the waiting work runs at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bridge.apply import Settle, apply_action
from bridge.config import PortalConfig, ReadOnlyProbe
from bridge.google_calendar import CalendarGateway, CalendarListEntry
from bridge.google_errors import GoogleError, GoogleQuotaExceeded
from bridge.lease import Lease
from bridge.mirror import Action
from bridge.models import OwnerQuota, utcnow
from bridge.outcome import Outcome

log = logging.getLogger("bridge.quota")


class OwnerReadOnly(GoogleError):
    """The owner is in Google's read-only mode: its writes wait for the probe at `probe_at`."""

    def __init__(self, subject: str, probe_at: datetime) -> None:
        super().__init__(
            f"{subject} is in Google's read-only mode (403 quotaExceeded, \"Calendar usage limits "
            f'exceeded"); the next probe write is at {probe_at:%Y-%m-%d %H:%M:%S} UTC',
            403,
            "quotaExceeded",
        )
        self.subject = subject
        self.probe_at = probe_at


class WriteMark:
    """Set `wrote` once a write went through: that proves the read-only mode is over."""

    wrote = False


@contextmanager
def owner_writes(lease: Lease, portal: PortalConfig) -> Iterator[WriteMark]:
    """Google writes of the portal's owner (calendars or events): refused at once with
    OwnerReadOnly while the owner is blocked (unless this caller holds the probe); a
    `403 quotaExceeded` inside blocks the owner and becomes OwnerReadOnly; a write that went
    through while probing lifts the block."""
    subject = portal.google.subject
    probing = _claim_write(lease.engine, subject)
    mark = WriteMark()
    refused = False
    try:
        yield mark
    except GoogleQuotaExceeded as exc:
        refused = True
        probe_at = _refused(lease.engine, subject, portal.google.read_only_probe, probing)
        raise OwnerReadOnly(subject, probe_at) from exc
    finally:
        if probing and mark.wrote and not refused:  # even if a later step failed otherwise
            _lift(lease.engine, subject)


def apply_within_quota(
    lease: Lease,
    portal: PortalConfig,
    action: Action,
    google: CalendarGateway,
    observed: CalendarListEntry | None = None,
    settle: Settle | None = None,
) -> Outcome:
    """`apply_action`, unless the owner is read-only; raises OwnerReadOnly when it must wait."""
    with owner_writes(lease, portal) as mark:
        watched = _WriteWatch(google, mark)
        return apply_action(lease, portal, action, watched, observed, settle)


def owner_block(engine: Engine, subject: str) -> OwnerQuota | None:
    with Session(engine) as session:
        return session.get(OwnerQuota, subject)


def _claim_write(engine: Engine, subject: str) -> bool:
    """False: the owner is not blocked. True: this caller holds the probe. Else OwnerReadOnly."""
    now = utcnow()
    with engine.connect() as connection:
        block = connection.execute(_BLOCK, {"subject": subject}).first()
        if block is None:
            return False
        probe_at, interval_s = block
        if probe_at > now:
            raise OwnerReadOnly(subject, probe_at)
        next_probe = now + timedelta(seconds=interval_s)
        claimed = connection.execute(
            update(OwnerQuota)
            .where(col(OwnerQuota.subject) == subject, col(OwnerQuota.probe_at) <= now)
            .values(probe_at=next_probe)
        )
        connection.commit()
        if claimed.rowcount != 1:  # another worker took this probe
            raise OwnerReadOnly(subject, next_probe)
    log.info("probing Google's read-only mode of %s with one write", subject)
    return True


# Built once: every Google write of the owner's work reads it first.
_BLOCK = select(OwnerQuota.probe_at, OwnerQuota.interval_s).where(
    col(OwnerQuota.subject) == bindparam("subject")
)


def _refused(engine: Engine, subject: str, probe: ReadOnlyProbe, probing: bool) -> datetime:
    """Block the owner (first refusal) or double the wait (a refused probe); the next probe."""
    now = utcnow()
    first = timedelta(minutes=probe.first_minutes)
    with Session(engine) as session:
        block = session.get(OwnerQuota, subject)
        if block is None:
            block = OwnerQuota(
                subject=subject,
                blocked_at=now,
                probe_at=now + first,
                interval_s=first.total_seconds(),
            )
            session.add(block)
            try:
                session.commit()
            except IntegrityError:  # another worker blocked the owner a moment ago
                session.rollback()
                return _probe_at(engine, subject, now + first)
            log.warning("%s is in Google's read-only mode; first probe in %s", subject, first)
            return now + first
        if probing:
            interval = min(block.interval_s * 2, probe.max_minutes * 60)
            block.interval_s = max(interval, first.total_seconds())
            block.probe_at = now + timedelta(seconds=block.interval_s)
            session.add(block)
            session.commit()
            log.warning(
                "%s is still read-only; next probe in %s",
                subject,
                timedelta(seconds=block.interval_s),
            )
        return block.probe_at


def _probe_at(engine: Engine, subject: str, default: datetime) -> datetime:
    block = owner_block(engine, subject)
    return default if block is None else block.probe_at


def _lift(engine: Engine, subject: str) -> None:
    with Session(engine) as session:
        session.execute(delete(OwnerQuota).where(col(OwnerQuota.subject) == subject))
        session.commit()
    log.info("%s writes to Google again: read-only mode is over", subject)


class _WriteWatch:
    """The gateway, noting whether a write went through (which proves the mode is over)."""

    def __init__(self, google: CalendarGateway, mark: WriteMark) -> None:
        self._google = google
        self._mark = mark

    @property
    def wrote(self) -> bool:
        return self._mark.wrote

    @wrote.setter
    def wrote(self, value: bool) -> None:
        self._mark.wrote = value

    def insert_calendar(self, summary: str, description: str, time_zone: str) -> str:
        calendar_id = self._google.insert_calendar(summary, description, time_zone)
        self.wrote = True
        return calendar_id

    def owned_calendars(self) -> Iterator[CalendarListEntry]:
        return self._google.owned_calendars()

    def calendar_exists(self, calendar_id: str) -> bool:
        return self._google.calendar_exists(calendar_id)

    def patch_calendar(self, calendar_id: str, fields: dict[str, Any]) -> None:
        self._google.patch_calendar(calendar_id, fields)
        self.wrote = True

    def patch_list_entry(self, calendar_id: str, fields: dict[str, Any]) -> None:
        self._google.patch_list_entry(calendar_id, fields)
        self.wrote = True

    def add_to_list(self, calendar_id: str) -> None:
        self._google.add_to_list(calendar_id)
        self.wrote = True

    def delete_calendar(self, calendar_id: str) -> None:
        self._google.delete_calendar(calendar_id)
        self.wrote = True

    def list_acl(self, calendar_id: str) -> dict[str, str]:
        return self._google.list_acl(calendar_id)

    def insert_acl(self, calendar_id: str, rule_id: str, role: str, *, notify: bool) -> None:
        self._google.insert_acl(calendar_id, rule_id, role, notify=notify)
        self.wrote = True

    def delete_acl(self, calendar_id: str, rule_id: str) -> None:
        self._google.delete_acl(calendar_id, rule_id)
        self.wrote = True
