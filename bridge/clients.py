"""A portal's clients, built once: its Bitrix24 client and its Google Calendar gateway, paced.

The commands reach the client modules only through here: `bind`/`unbind` and the error classes
they catch (re-exported on purpose). The client modules themselves are imported where a client is
built: every command, the web process included (`bridge serve`), imports this module for its error
classes, and the HTTP clients (httpx, the Google libraries) are heavy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bridge.bitrix_errors import BitrixAccessDenied as BitrixAccessDenied
from bridge.bitrix_errors import BitrixError as BitrixError
from bridge.config import PortalConfig
from bridge.pacing import LeakyBucket
from bridge.tokens import TokenCipher

if TYPE_CHECKING:
    from bridge.google_calendar import CalendarGateway
    from bridge.google_events import EventGateway


# Sections one sync applies at once (`sync._apply`): a created calendar spends most of its time
# waiting on Google and on the database's commits, which overlap. The Google pacer still bounds
# the requests, and the lease fence makes the writes take turns.
APPLYING_AT_ONCE = 4


class PortalClients:
    """The Bitrix24 client and Google gateways (calendars, events) of one portal, and the threads
    that apply its sections (`applying`, each with its own Google transport, kept between
    syncs), built once per worker or command."""

    def __init__(
        self, engine: Engine, portal: PortalConfig, cipher: TokenCipher | None = None
    ) -> None:
        from bridge.google_calendar import GoogleCalendarGateway
        from bridge.google_events import GoogleEventGateway
        from bridge.oauth import bitrix_client_for

        rate = portal.bitrix.rate_limit
        self.bitrix = bitrix_client_for(
            engine,
            portal,
            cipher=cipher,
            bucket=LeakyBucket(burst=rate.burst, per_second=rate.per_second),
        )
        per_minute = portal.google.requests_per_minute
        burst = max(1, per_minute // 10)
        pacer = LeakyBucket(burst=burst, per_second=max(per_minute - burst, 1) / 60)
        calendars = GoogleCalendarGateway(portal.google, pacer=pacer)
        self.google: CalendarGateway = calendars
        # Events share the calendars' credentials, transport and pace (one subject, one quota).
        self.events: EventGateway = GoogleEventGateway(calendars)
        self.applying = ThreadPoolExecutor(APPLYING_AT_ONCE, f"apply-{portal.key}")

    def close(self) -> None:
        self.applying.shutdown()
        self.bitrix.close()


def bind(
    engine: Engine, portal: PortalConfig, handler_url: str | None, cipher: TokenCipher | None
) -> list[str]:
    """`bridge bind`: subscribe the portal's section events; what was newly bound."""
    from bridge.bindings import bind_events
    from bridge.oauth import bitrix_client_for

    with bitrix_client_for(engine, portal, cipher=cipher) as client:
        return bind_events(client, portal, handler_url)


def unbind(
    engine: Engine, portal: PortalConfig, handler_url: str | None, cipher: TokenCipher | None
) -> int:
    """`bridge unbind`: remove the bridge's event subscriptions; how many went."""
    from bridge.bindings import unbind_events
    from bridge.oauth import bitrix_client_for

    with bitrix_client_for(engine, portal, cipher=cipher) as client:
        return unbind_events(client, handler_url)
