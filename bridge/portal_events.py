"""App mode in the worker: a portal's waiting installs are verified (`bridge.install_checks`)
before any of its rows goes on, and an install's row binds the events only once its install was
verified."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from bridge.bindings import bind_events
from bridge.bitrix import BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.events import INSTALL
from bridge.install_checks import verify_waiting
from bridge.installs import InstallState, install_state
from bridge.lease import Lease
from bridge.models import InboxEvent
from bridge.offline import offline_mode
from bridge.tokens import TokenCipher

log = logging.getLogger("bridge.portal_events")


@dataclass
class CheckedInstalls:
    """The rows sorted by their install's state; the worker settles them."""

    go_on: list[InboxEvent] = field(default_factory=list)  # no install, or a verified one
    waiting: list[InboxEvent] = field(default_factory=list)  # install not verified yet
    untrusted: list[tuple[InboxEvent, str]] = field(default_factory=list)  # refused or gone
    verified: bool = False  # an install was verified now: the portal's tokens changed
    refused: list[str] = field(default_factory=list)  # why installs verified now were refused


def check_installs(
    engine: Engine, cipher: TokenCipher, portal: PortalConfig, rows: list[InboxEvent]
) -> CheckedInstalls:
    """Verify the portal's waiting installs first. An install's row goes on only if its install was
    verified; it waits while the OAuth server cannot be reached and ends if it was refused."""
    checked = CheckedInstalls()
    try:
        verdicts = verify_waiting(engine, cipher, portal, timeout=portal.bitrix.timeout_s)
    except BitrixError as exc:
        log.warning("install verification postponed: %s", exc, extra={"portal": portal.key})
        verdicts = []
    checked.verified = any(verdict.verified for verdict in verdicts)
    checked.refused = [verdict.problem for verdict in verdicts if verdict.problem]
    for row in rows:
        state, detail = install_state(engine, row) if row.event == INSTALL else ("", "")
        if state == InstallState.WAITING:
            checked.waiting.append(row)
        elif state in (InstallState.REFUSED, InstallState.GONE):
            checked.untrusted.append((row, detail))
        else:
            checked.go_on.append(row)
    return checked


def bind_after_install(lease: Lease, portal: PortalConfig, clients: PortalClients) -> str:
    """Bind the events and ask the plan's offline mode again; returns the row's outcome."""
    bound = bind_events(clients.bitrix, portal, portal.bitrix.handler_url)
    outcome = "install verified" + (f"; bound {', '.join(bound)}" if bound else "")
    if portal.bitrix.delivery == "offline":
        mode = offline_mode(lease, clients.bitrix, recheck=True)
        outcome += f"; offline delivery: {mode}"
    return outcome
