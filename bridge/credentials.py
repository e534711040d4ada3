"""App mode: a portal's stored install (`PortalCredentials`) as the web and the scheduler read it,
with no client and no HTTP: the application token a verified install's events carry, an
uninstall recorded, why the app cannot work now, and the lifetime of a token as sent.

The tokens' refresh and the REST client built on them are `bridge.oauth`'s."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlmodel import Session

from bridge.config import PortalConfig
from bridge.models import PortalCredentials, utcnow
from bridge.tokens import TokenCipher, TokenUnreadable

log = logging.getLogger("bridge.oauth")  # the logger these lines had in oauth.py


def lifetime_s(expires_in: object, default: int = 3600) -> int:
    """A token lifetime in seconds from `expires_in`, whoever sent it: ASCII digits, at most a
    day; anything else is the default."""
    text = str(expires_in) if expires_in is not None else ""
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 6):
        return default
    return min(max(int(text), 60), 86400)


def record_uninstall(engine: Engine, portal: PortalConfig) -> None:
    with Session(engine) as session:
        row = session.get(PortalCredentials, portal.key)
        if row is not None:
            row.access_token = row.refresh_token = None
            row.uninstalled_at = utcnow()
            session.add(row)
            session.commit()


def installed_token(engine: Engine, portal: PortalConfig, cipher: TokenCipher) -> str | None:
    """The application token a verified install's events must carry (None: not installed).
    Installs waiting for verification (`bridge.installs`) are not consulted: they prove nothing."""
    with Session(engine) as session:
        row = session.get(PortalCredentials, portal.key)
        if row is None or row.installed_at is None:
            return None
        try:
            return cipher.open(row.application_token)
        except TokenUnreadable as exc:
            log.error("events cannot be checked: %s", exc, extra={"portal": portal.key})
            return None


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
