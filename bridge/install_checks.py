"""App mode, in the worker: a portal's waiting installs verified against the configured servers
(what an install is trusted for until then: `bridge.installs`).

The worker verifies a portal's waiting installs oldest first: it refreshes the install's refresh
token at the configured OAuth server (`bitrix.oauth.token_url`) with the configured client id and
secret, and the answer must name the configured `member_id` (`settings/oauth/auto-renewal.md`).
Nothing is ever sent to an address the install named. Only then do the refreshed tokens and the
install's application token replace the live install (`PortalCredentials`), and only if the
install arrived after the live one. Bitrix24 rotates refresh tokens and refuses a used one, so a
replayed install (forged from an old genuine body) fails its refresh and cannot roll tokens back.
Finished rows lose their tokens, and only the newest `KEEP_FINISHED` of them are kept for
`status`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from bridge.bitrix import BitrixUnavailable
from bridge.config import PortalConfig
from bridge.credentials import lifetime_s
from bridge.metrics import INSTALL_VERIFICATIONS
from bridge.models import PendingInstall, PortalCredentials, utcnow
from bridge.oauth import exchange_refresh_token
from bridge.tokens import TokenCipher, TokenUnreadable

log = logging.getLogger("bridge.installs")  # the logger these lines had in installs.py

KEEP_FINISHED = 5


@dataclass(frozen=True)
class Verdict:
    pending_id: int
    problem: str | None  # None: verified

    @property
    def verified(self) -> bool:
        return self.problem is None


def verify_waiting(
    engine: Engine, cipher: TokenCipher, portal: PortalConfig, *, timeout: float = 10.0
) -> list[Verdict]:
    """Verify the portal's waiting installs, oldest first. Run it under the portal's lease.
    Raises `BitrixUnavailable` if the OAuth server cannot answer: the rest keep waiting."""
    verdicts = []
    while (pending_id := _oldest_waiting(engine, portal.key)) is not None:
        try:
            problem = _verify(engine, cipher, portal, pending_id, timeout)
        except BitrixUnavailable:
            INSTALL_VERIFICATIONS.labels(portal.key, "unavailable").inc()
            raise
        verdicts.append(Verdict(pending_id, problem))
        INSTALL_VERIFICATIONS.labels(portal.key, "refused" if problem else "verified").inc()
        if problem:
            log.warning("an install was refused: %s", problem, extra={"portal": portal.key})
        else:
            log.info("an install was verified and is now in use", extra={"portal": portal.key})
    if verdicts:
        _prune(engine, portal.key)
    return verdicts


def _verify(
    engine: Engine, cipher: TokenCipher, portal: PortalConfig, pending_id: int, timeout: float
) -> str | None:
    assert portal.bitrix.oauth is not None
    with Session(engine) as session:
        pending = session.get(PendingInstall, pending_id)
        assert pending is not None
        received_at = pending.received_at
        try:
            refresh_token = cipher.open(pending.refresh_token) or ""
            application_token = cipher.open(pending.application_token)
            problem = None
        except TokenUnreadable as exc:
            refresh_token, application_token, problem = "", None, str(exc)
    with Session(engine) as session:
        problem = problem or _stale(session.get(PortalCredentials, portal.key), received_at)
    answer: dict[str, object] = {}
    if problem is None:
        answer = exchange_refresh_token(portal.bitrix.oauth, refresh_token, timeout)
        problem = _answer_problem(answer, portal)
    with Session(engine) as session:
        live = session.exec(
            select(PortalCredentials)
            .where(PortalCredentials.portal_key == portal.key)
            .with_for_update()
        ).first()
        pending = session.get(PendingInstall, pending_id)
        assert pending is not None
        problem = problem or _stale(live, received_at)
        if problem is None:
            now = utcnow()
            live = live or PortalCredentials(portal_key=portal.key)
            live.access_token = cipher.seal(str(answer["access_token"]))
            live.refresh_token = cipher.seal(str(answer["refresh_token"]))
            live.application_token = cipher.seal(application_token)
            live.expires_at = now + timedelta(seconds=lifetime_s(answer.get("expires_in")))
            live.installed_at = received_at
            live.refreshed_at = now
            live.uninstalled_at = None
            live.problem = None
            session.add(live)
            pending.verified_at = now
        else:
            pending.problem = problem
        pending.access_token = pending.refresh_token = pending.application_token = None
        session.add(pending)
        session.commit()
    return problem


def _answer_problem(answer: dict[str, object], portal: PortalConfig) -> str | None:
    if "access_token" not in answer or "refresh_token" not in answer:
        error = str(answer.get("error") or "no tokens returned")[:60]
        return f"the OAuth server refused its refresh token ({error})"
    if str(answer.get("member_id", "")) != portal.member_id:
        return "the OAuth server's answer names another portal (member_id)"
    return None


def _stale(live: PortalCredentials | None, received_at: datetime) -> str | None:
    """Why an install received then must not replace the live one: it is not newer than the
    live install (or than its uninstall)."""
    if live is None:
        return None
    moments = [moment for moment in (live.installed_at, live.uninstalled_at) if moment]
    if moments and received_at <= max(moments):
        return "it is older than the install in use (or its uninstall)"
    return None


def _oldest_waiting(engine: Engine, portal_key: str) -> int | None:
    with Session(engine) as session:
        return session.exec(
            select(PendingInstall.id)
            .where(
                PendingInstall.portal_key == portal_key,
                col(PendingInstall.verified_at).is_(None),
                col(PendingInstall.problem).is_(None),
            )
            .order_by(col(PendingInstall.id))
            .limit(1)
        ).first()


def _prune(engine: Engine, portal_key: str) -> None:
    """Finished installs beyond the newest `KEEP_FINISHED` go, except the newest verified one
    (its inbox row still has to bind the events); waiting ones always stay."""
    mine = col(PendingInstall.portal_key) == portal_key
    verified = col(PendingInstall.verified_at).is_not(None)
    finished = verified | col(PendingInstall.problem).is_not(None)
    with Session(engine) as session:
        newest = select(PendingInstall.id).where(mine).order_by(col(PendingInstall.id).desc())
        keep = [
            *session.exec(newest.where(finished).limit(KEEP_FINISHED)).all(),
            *session.exec(newest.where(verified).limit(1)).all(),
        ]
        session.execute(
            delete(PendingInstall).where(mine, finished, col(PendingInstall.id).not_in(keep))
        )
        session.commit()
