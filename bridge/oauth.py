"""App mode: the tokens an install delivered, stored in the database and refreshed single-flight,
and the REST client built on them (what needs no client is `bridge.credentials`).

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
from bridge.config import OAuthConfig, PortalConfig
from bridge.credentials import lifetime_s
from bridge.models import PortalCredentials, utcnow
from bridge.pacing import LeakyBucket
from bridge.tokens import TokenCipher, TokenUnreadable, require_cipher

log = logging.getLogger("bridge.oauth")


class StoredTokens:
    def __init__(
        self, engine: Engine, portal: PortalConfig, cipher: TokenCipher, *, timeout: float = 10.0
    ) -> None:
        assert portal.bitrix.oauth is not None
        self.engine = engine
        self.portal = portal
        self.cipher = cipher
        self.oauth = portal.bitrix.oauth
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None

    def current(self) -> str:
        token = self._token  # read once: another thread's refused refresh may clear it
        if token is None:
            with Session(self.engine) as session:
                token = self._open(
                    self._usable(session.get(PortalCredentials, self.portal.key)).access_token
                )
            self._token = token
        assert token is not None
        return token

    def _open(self, stored: str | None) -> str | None:
        try:
            return self.cipher.open(stored)
        except TokenUnreadable as exc:
            raise BitrixNotInstalled("oauth", "TOKEN_KEY", str(exc)) from None

    def refresh(self, stale: str) -> str:
        with self._lock, Session(self.engine) as session:
            row = session.exec(
                select(PortalCredentials)
                .where(PortalCredentials.portal_key == self.portal.key)
                .with_for_update()
            ).first()
            row = self._usable(row)
            current = self._open(row.access_token)
            if current != stale:  # someone else refreshed meanwhile
                session.commit()
                self._token = current
                assert self._token is not None
                return self._token
            answer = exchange_refresh_token(
                self.oauth, str(self._open(row.refresh_token)), self.timeout
            )
            if "access_token" not in answer or "refresh_token" not in answer:
                refused = answer.get("error", "no tokens returned")
                row.problem = f"the token refresh was refused ({refused}): reinstall the app"
                session.add(row)
                session.commit()
                self._token = None
                raise BitrixNotInstalled("oauth", str(answer.get("error", "")), row.problem)
            now = utcnow()
            row.access_token = self.cipher.seal(str(answer["access_token"]))
            row.refresh_token = self.cipher.seal(str(answer["refresh_token"]))
            row.application_token = self.cipher.seal(self._open(row.application_token))
            row.expires_at = now + timedelta(seconds=lifetime_s(answer.get("expires_in")))
            row.refreshed_at = now
            row.refresh_count += 1
            session.add(row)
            session.commit()
            self._token = str(answer["access_token"])
            log.info("access token refreshed", extra={"portal": self.portal.key})
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


def exchange_refresh_token(
    oauth: OAuthConfig, refresh_token: str, timeout: float
) -> dict[str, object]:
    """The refresh request goes to the configured OAuth server only, never to the portal or to
    an address an event named (`settings/oauth/auto-renewal.md`)."""
    params = {
        "grant_type": "refresh_token",
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        "refresh_token": refresh_token,
    }
    try:
        response = httpx.get(oauth.token_url, params=params, timeout=timeout)
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
    engine: Engine,
    portal: PortalConfig,
    *,
    cipher: TokenCipher | None = None,
    bucket: LeakyBucket | None = None,
    attempts: int = 5,
) -> BitrixClient:
    """The portal's REST client in its auth mode: the incoming webhook, or the app's tokens
    (which need the token cipher). Where a moved portal's REST now answers is kept for `status`
    and an alert."""

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
        tokens=StoredTokens(
            engine, portal, require_cipher(cipher), timeout=portal.bitrix.timeout_s
        ),
        on_moved=moved,
    )
