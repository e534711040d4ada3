"""App mode: an install is trusted only after it was verified against the configured servers.

The web keeps an install (ONAPPINSTALL, or a local app's install callback) as a `PendingInstall`
row and trusts it for nothing: its application token authenticates no event until the worker
has verified it (`bridge.install_checks`). Here: the row recorded, and what became of it.

Bounds: at most `MAX_WAITING` installs of a portal wait at once (the web answers 429 beyond
that, so a flood cannot push out an earlier genuine install: it is verified first).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.config import PortalConfig
from bridge.credentials import lifetime_s
from bridge.events import EventAuth
from bridge.models import InboxEvent, PendingInstall
from bridge.tokens import TokenCipher

MAX_WAITING = 10
# The inbox row of an install names its pending row under this payload key.
PAYLOAD_KEY = "pending_install"


class InstallState(StrEnum):
    WAITING = "waiting"  # not verified yet (or the OAuth server could not be reached)
    VERIFIED = "verified"  # its tokens are the live install's
    REFUSED = "refused"  # verification failed: trusted for nothing
    GONE = "gone"  # no longer on record (pruned after newer installs)


def record_pending(
    engine: Engine, cipher: TokenCipher, portal: PortalConfig, auth: EventAuth
) -> int | None:
    """Keep an install as it arrived, its tokens sealed; None when `MAX_WAITING` already wait."""
    with Session(engine) as session:
        if _waiting_count(session, portal.key) >= MAX_WAITING:
            return None
        row = PendingInstall(
            portal_key=portal.key,
            access_token=cipher.seal(auth.access_token),
            refresh_token=cipher.seal(auth.refresh_token),
            application_token=cipher.seal(auth.application_token),
            expires_in=lifetime_s(auth.expires_in),
        )
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def install_state(engine: Engine, row: InboxEvent) -> tuple[InstallState, str]:
    """What became of the install an inbox row carries, with the reason when it is not trusted.
    A row from before verification existed names no install and counts as verified."""
    try:
        pending_id = json.loads(row.payload).get(PAYLOAD_KEY)
    except (ValueError, AttributeError):
        pending_id = None
    if not isinstance(pending_id, int):
        return InstallState.VERIFIED, ""
    with Session(engine) as session:
        pending = session.get(PendingInstall, pending_id)
    if pending is None:
        return InstallState.GONE, "no longer on record (newer installs replaced it)"
    return _state(pending), pending.problem or ""


def install_report(engine: Engine, portal: PortalConfig) -> dict[str, Any]:
    """For `status`: how many installs wait, and the latest refusals."""
    with Session(engine) as session:
        waiting = _waiting_count(session, portal.key)
        refused = session.exec(
            select(PendingInstall)
            .where(
                PendingInstall.portal_key == portal.key, col(PendingInstall.problem).is_not(None)
            )
            .order_by(col(PendingInstall.id).desc())
            .limit(3)
        ).all()
    return {
        "waiting": waiting,
        "refused": [{"received_at": row.received_at, "problem": row.problem} for row in refused],
    }


def _state(pending: PendingInstall) -> InstallState:
    if pending.problem:
        return InstallState.REFUSED
    if pending.verified_at is not None:
        return InstallState.VERIFIED
    return InstallState.WAITING


def _waiting_count(session: Session, portal_key: str) -> int:
    return session.exec(
        select(func.count())
        .select_from(PendingInstall)
        .where(
            PendingInstall.portal_key == portal_key,
            col(PendingInstall.verified_at).is_(None),
            col(PendingInstall.problem).is_(None),
        )
    ).one()
