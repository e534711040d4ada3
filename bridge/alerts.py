"""What a worker tells the people who run its portals: alerts through the notifier, addresses
first seen, and whether a portal's credentials are refused (kept in `PortalState` for
`bridge status`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bridge.addresses import alert as address_alert
from bridge.addresses import claim_unreported
from bridge.config import PortalConfig
from bridge.lease import Lease, fenced_state
from bridge.models import PortalState, utcnow
from bridge.notify import Notifier

log = logging.getLogger("bridge.worker")


class Alerts:
    def __init__(self, engine: Engine, portals: Iterable[str], notifier: Notifier | None) -> None:
        self.engine = engine
        self.notifier = notifier
        self._credential_trouble = {key for key in portals if _has_credential_error(engine, key)}

    def alert(self, portal: PortalConfig, cause: str, message: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(portal, cause, message)

    def addresses(self, portal: PortalConfig) -> None:
        """One alert for the addresses first seen since the last report (by the web in events,
        or by a REST client after a redirect); the rows say which went out, across workers."""
        try:
            found = claim_unreported(self.engine, portal)
        except SQLAlchemyError as exc:  # the next pass asks again
            log.warning("addresses not reported: %s", exc.__class__.__name__)
            return
        if found:
            self.alert(portal, *address_alert(portal, found))

    def credentials_failed(self, lease: Lease, portal: PortalConfig, reason: str) -> None:
        with fenced_state(lease) as state:
            state.credential_error = reason
            state.credential_error_at = state.credential_error_at or utcnow()
        self._credential_trouble.add(lease.portal_key)
        self.alert(portal, "credentials", f"credentials are refused: {reason}")

    def credentials_ok(self, lease: Lease) -> None:
        if lease.portal_key not in self._credential_trouble:
            return
        with fenced_state(lease) as state:
            state.credential_error = state.credential_error_at = None
        self._credential_trouble.discard(lease.portal_key)


def _has_credential_error(engine: Engine, portal_key: str) -> bool:
    with Session(engine) as session:
        state = session.get(PortalState, portal_key)
        return state is not None and state.credential_error is not None
