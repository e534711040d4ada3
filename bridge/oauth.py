"""App mode: the tokens an install delivered, stored in the database and refreshed single-flight.

Bitrix24 rotates the refresh token on every refresh and rejects a used one, so two workers that
refresh at once would lock each other out (`invalid_grant`). A refresh therefore runs under a
thread lock inside the process and a row lock across processes (`SELECT … FOR UPDATE` on
PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers): whoever comes second finds the token
already changed and uses the new one. A refused refresh marks the install broken, which parks the
portal's work with the reason instead of looping.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge.addresses import record_move
from bridge.bitrix import BitrixClient, BitrixNotInstalled, BitrixUnavailable
from bridge.config import PortalConfig
from bridge.events import EventAuth
from bridge.models import PortalCredentials, utcnow
from bridge.pacing import LeakyBucket

log = logging.getLogger("bridge.oauth")


class StoredTokens:
    def __init__(self, engine: Engine, portal: PortalConfig, *, timeout: float = 10.0) -> None:
        assert portal.bitrix.oauth is not None
        self.engine = engine
        self.portal = portal
        self.oauth = portal.bitrix.oauth
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None

    def current(self) -> str:
        if self._token is None:
            with Session(self.engine) as session:
                self._token = self._usable(
                    session.get(PortalCredentials, self.portal.key)
                ).access_token
        assert self._token is not None
        return self._token

    def refresh(self, stale: str) -> str:
        with self._lock, Session(self.engine) as session:
            row = session.exec(
                select(PortalCredentials)
                .where(PortalCredentials.portal_key == self.portal.key)
                .with_for_update()
            ).first()
            row = self._usable(row)
            if row.access_token != stale:  # someone else refreshed meanwhile
                session.commit()
                self._token = row.access_token
                assert self._token is not None
                return self._token
            answer = self._exchange(str(row.refresh_token))
            if "access_token" not in answer or "refresh_token" not in answer:
                refused = answer.get("error", "no tokens returned")
                row.problem = f"the token refresh was refused ({refused}): reinstall the app"
                session.add(row)
                session.commit()
                self._token = None
                raise BitrixNotInstalled("oauth", str(answer.get("error", "")), row.problem)
            now = utcnow()
            row.access_token = str(answer["access_token"])
            row.refresh_token = str(answer["refresh_token"])
            row.expires_at = now + timedelta(seconds=int(str(answer.get("expires_in", 3600))))
            row.refreshed_at = now
            row.refresh_count += 1
            session.add(row)
            session.commit()
            self._token = row.access_token
            log.info("access token refreshed", extra={"portal": self.portal.key})
            assert self._token is not None
            return self._token

    def _usable(self, row: PortalCredentials | None) -> PortalCredentials:
        if row is None or row.installed_at is None:
            raise BitrixNotInstalled(
                "oauth", "NOT_INSTALLED", "the app is not installed on the portal"
            )
        if row.uninstalled_at is not None:
            raise BitrixNotInstalled(
                "oauth",
                "UNINSTALLED",
                f"the app was uninstalled at {row.uninstalled_at:%Y-%m-%d %H:%M} UTC",
            )
        if row.problem:
            raise BitrixNotInstalled("oauth", "REINSTALL_NEEDED", row.problem)
        return row

    def _exchange(self, refresh_token: str) -> dict[str, object]:
        """The refresh request goes to the configured OAuth server only, never to the portal."""
        params = {
            "grant_type": "refresh_token",
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret,
            "refresh_token": refresh_token,
        }
        try:
            response = httpx.get(self.oauth.token_url, params=params, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise BitrixUnavailable("oauth", "NETWORK", exc.__class__.__name__) from None
        if response.status_code >= 500:
            raise BitrixUnavailable("oauth", "", "the OAuth server failed", response.status_code)
        try:
            answer = response.json()
        except ValueError:
            raise BitrixUnavailable("oauth", "", "the OAuth server's answer is not JSON") from None
        return answer if isinstance(answer, dict) else {}


def bitrix_client_for(
    engine: Engine, portal: PortalConfig, *, bucket: LeakyBucket | None = None, attempts: int = 5
) -> BitrixClient:
    """The portal's REST client in its auth mode: the incoming webhook, or the app's tokens.
    Where a moved portal's REST now answers is kept for `status` and an alert."""

    def moved(rest_url: str) -> None:
        record_move(engine, portal, rest_url)

    if portal.bitrix.webhook_url:
        return BitrixClient(
            portal.bitrix.webhook_url,
            timeout=portal.bitrix.timeout_s,
            bucket=bucket,
            attempts=attempts,
            on_moved=moved,
        )
    return BitrixClient(
        portal.rest_base,
        timeout=portal.bitrix.timeout_s,
        bucket=bucket,
        attempts=attempts,
        tokens=StoredTokens(engine, portal, timeout=portal.bitrix.timeout_s),
        on_moved=moved,
    )


def record_install(engine: Engine, portal: PortalConfig, auth: EventAuth) -> None:
    """Keep what ONAPPINSTALL (or the local app's install callback) delivered."""
    now = utcnow()
    expires = int(auth.expires_in) if auth.expires_in.isdigit() else 3600
    with Session(engine) as session:
        row = session.exec(
            select(PortalCredentials)
            .where(PortalCredentials.portal_key == portal.key)
            .with_for_update()
        ).first() or PortalCredentials(portal_key=portal.key)
        row.access_token = auth.access_token
        row.refresh_token = auth.refresh_token
        row.expires_at = now + timedelta(seconds=expires)
        row.application_token = auth.application_token
        row.installed_at = now
        row.uninstalled_at = None
        row.problem = None
        session.add(row)
        session.commit()


def record_uninstall(engine: Engine, portal: PortalConfig) -> None:
    with Session(engine) as session:
        row = session.get(PortalCredentials, portal.key)
        if row is not None:
            row.access_token = row.refresh_token = None
            row.uninstalled_at = utcnow()
            session.add(row)
            session.commit()


def installed_token(engine: Engine, portal: PortalConfig) -> str | None:
    """The application token an installed app's events must carry (None: not installed)."""
    with Session(engine) as session:
        row = session.get(PortalCredentials, portal.key)
        if row is None or row.installed_at is None:
            return None
        return row.application_token


def app_problem(engine: Engine, portal: PortalConfig) -> str | None:
    """Why the portal's app cannot work now (None for webhook portals and healthy installs)."""
    if not portal.app_mode:
        return None
    with Session(engine) as session:
        row = session.get(PortalCredentials, portal.key)
    if row is None or row.installed_at is None:
        return "the app is not installed on the portal"
    if row.uninstalled_at is not None:
        return f"the app was uninstalled at {row.uninstalled_at:%Y-%m-%d %H:%M} UTC; work stopped"
    return row.problem


def app_ready(engine: Engine, portal: PortalConfig) -> bool:
    return app_problem(engine, portal) is None
