"""When a portal's periodic reconciliation is due: its interval has passed since the last one
(`PortalState.reconciled_at`, so every worker sees the same) and its app, if any, is ready.
Scheduled offline pulls keep their own time (`bridge.offline.PullSchedule`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge.config import PortalConfig
from bridge.credentials import app_ready
from bridge.models import PortalState, utcnow


def reconciliations_due(engine: Engine, portals: Sequence[PortalConfig]) -> list[PortalConfig]:
    now = utcnow()
    with Session(engine) as session:
        last = {
            state.portal_key: state.reconciled_at
            for state in session.exec(select(PortalState)).all()
        }
    due = []
    for portal in portals:
        every = portal.mirror.reconcile_interval_minutes
        if every <= 0:
            continue
        previous = last.get(portal.key)
        if (previous is None or now - previous >= timedelta(minutes=every)) and app_ready(
            engine, portal
        ):
            due.append(portal)
    return due
