"""Portal leases: one worker (or CLI run) acts for a portal at a time, and only while it holds it.

A lease row per portal names its holder, an expiry and a version. Claiming takes a free, expired
or own lease; a lease that changes hands gets a new version. Every write a holder makes about the
portal's work (inbox outcomes, mappings) runs inside `fenced`, which re-reads the lease row in the
same transaction (locked on PostgreSQL) and refuses when holder or version changed: a worker that
stalled past its expiry while another took over cannot record a stale result. The lock is shared,
so a holder's own writes (a sync applies several sections at once) commit side by side, and a
change of holder waits for them; the portal's own row is changed through `fenced_state`. What a new
holder does with the rows the previous one left taken is `bridge.queue`'s business.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, Executable, bindparam, case, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from bridge.models import PortalState, utcnow


class LeaseLost(Exception):
    """Another holder took the portal over; this one must stop and write nothing."""


@dataclass
class Lease:
    engine: Engine
    portal_key: str
    holder: str
    version: int
    ttl: timedelta
    _renewed: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        now = utcnow()
        with Session(self.engine) as session:
            result = session.execute(
                update(PortalState)
                .where(
                    col(PortalState.portal_key) == self.portal_key,
                    col(PortalState.holder) == self.holder,
                    col(PortalState.lease_version) == self.version,
                )
                .values(expires_at=now + self.ttl)
            )
            session.commit()
        if getattr(result, "rowcount", 0) != 1:
            raise LeaseLost(f"the lease on portal {self.portal_key} passed to another worker")
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        """Cheap to call between steps: renews once a third of the lease time has gone."""
        if time.monotonic() - self._renewed > self.ttl.total_seconds() / 3:
            self.renew()


def claim_portal(engine: Engine, portal_key: str, holder: str, ttl: timedelta) -> Lease | None:
    """Take the portal's lease, or None while another live holder has it."""
    now = utcnow()
    with Session(engine) as session:
        if session.get(PortalState, portal_key) is None:
            session.add(PortalState(portal_key=portal_key))
            try:
                session.commit()
            except IntegrityError:  # another process inserted it first; the update decides
                session.rollback()
        result = session.execute(
            update(PortalState)
            .where(
                col(PortalState.portal_key) == portal_key,
                or_(
                    col(PortalState.holder).is_(None),
                    col(PortalState.holder) == holder,
                    col(PortalState.expires_at) < now,
                ),
            )
            .values(
                holder=holder,
                expires_at=now + ttl,
                lease_version=case(
                    (col(PortalState.holder) == holder, col(PortalState.lease_version)),
                    else_=col(PortalState.lease_version) + 1,
                ),
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            session.rollback()
            return None
        state = session.get(PortalState, portal_key)
        assert state is not None
        session.commit()
        return Lease(
            engine=engine,
            portal_key=portal_key,
            holder=holder,
            version=state.lease_version,
            ttl=ttl,
        )


def release_portal(lease: Lease) -> None:
    with Session(lease.engine) as session:
        session.execute(
            update(PortalState)
            .where(
                col(PortalState.portal_key) == lease.portal_key,
                col(PortalState.holder) == lease.holder,
                col(PortalState.lease_version) == lease.version,
            )
            .values(holder=None, expires_at=None)
        )
        session.commit()


# Built once: building a statement costs more than running it (`fenced` runs twice per created
# calendar).
_HOLDING = select(PortalState.holder, PortalState.lease_version).where(
    col(PortalState.portal_key) == bindparam("portal_key")
)
_FENCE = _HOLDING.with_for_update(read=True)
_FENCE_EXCLUSIVE = _HOLDING.with_for_update()


@contextmanager
def fenced(lease: Lease) -> Iterator[Session]:
    """A session whose writes commit only if `lease` still holds the portal. The lease row is
    locked for share: a holder's fenced sessions do not wait for each other."""
    with _fenced(lease, _FENCE) as session:
        yield session


@contextmanager
def fenced_state(lease: Lease) -> Iterator[PortalState]:
    """The portal's own row, to change while `lease` holds the portal. It is locked for update
    from the start: two sessions that each held it for share and then both wrote it would
    deadlock."""
    with _fenced(lease, _FENCE_EXCLUSIVE) as session:
        state = session.get(PortalState, lease.portal_key)
        assert state is not None  # the lease lives in this row
        yield state
        session.add(state)


@contextmanager
def _fenced(lease: Lease, fence: Executable) -> Iterator[Session]:
    with Session(lease.engine, expire_on_commit=False) as session:
        holding = session.connection().execute(fence, {"portal_key": lease.portal_key}).first()
        if holding is None or tuple(holding) != (lease.holder, lease.version):
            session.rollback()
            raise LeaseLost(f"the lease on portal {lease.portal_key} passed to another worker")
        yield session
        session.commit()
