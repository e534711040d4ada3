"""A portal's clients, built once: its Bitrix24 client and its Google Calendar gateway, paced."""

from __future__ import annotations

from sqlalchemy import Engine

from bridge.config import PortalConfig
from bridge.google_calendar import CalendarGateway, GoogleCalendarGateway
from bridge.oauth import bitrix_client_for
from bridge.pacing import LeakyBucket
from bridge.tokens import TokenCipher


class PortalClients:
    """The Bitrix24 client and Google gateway of one portal, built once per worker or command."""

    def __init__(
        self, engine: Engine, portal: PortalConfig, cipher: TokenCipher | None = None
    ) -> None:
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
        self.google: CalendarGateway = GoogleCalendarGateway(portal.google, pacer=pacer)

    def close(self) -> None:
        self.bitrix.close()
