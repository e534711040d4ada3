"""Alerts to the people who run a portal, sent without ever blocking the worker.

Causes are parked work, failing credentials and a tripped mass-delete guard. Each goes to the
portal's chosen Bitrix24 users (`im.notify.system.add`) and/or a Slack-compatible webhook, at most
once per cause per `notify.every_minutes` (default an hour) across every worker: the last sending
time is a database row claimed atomically. Sending happens on a daemon thread fed by a queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta

import httpx
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col

from bridge.bitrix import BitrixError
from bridge.config import PortalConfig
from bridge.models import Notification, utcnow
from bridge.oauth import bitrix_client_for
from bridge.tokens import TokenCipher

log = logging.getLogger("bridge.notify")


class Notifier:
    def __init__(self, engine: Engine, cipher: TokenCipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher  # app-mode portals send alerts with their stored tokens
        self._queue: queue.Queue[tuple[PortalConfig, str, str] | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, daemon=True, name="bridge-notify")
        self._thread.start()

    def notify(self, portal: PortalConfig, cause: str, message: str) -> None:
        if not (portal.notify.bitrix_users or portal.notify.webhook_url):
            return
        try:
            self._queue.put_nowait((portal, cause, message))
        except queue.Full:
            log.warning("alert dropped, the queue is full", extra={"portal": portal.key})

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def wait_idle(self) -> None:
        """For tests and shutdown: until everything queued so far was handled."""
        self._queue.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            portal, cause, message = item
            try:
                if self._claim(portal, cause):
                    self._send(portal, cause, message)
            except Exception:  # an alert must never take the worker down
                log.exception("sending an alert failed", extra={"portal": portal.key})
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _claim(self, portal: PortalConfig, cause: str) -> bool:
        """True if no alert of this cause went out within the interval (and mark it sent now)."""
        now = utcnow()
        since = now - timedelta(minutes=portal.notify.every_minutes)
        try:
            with Session(self.engine) as session:
                result = session.execute(
                    update(Notification)
                    .where(
                        col(Notification.portal_key) == portal.key,
                        col(Notification.cause) == cause,
                        col(Notification.sent_at) < since,
                    )
                    .values(sent_at=now)
                )
                if getattr(result, "rowcount", 0) == 1:
                    session.commit()
                    return True
                if session.get(Notification, (portal.key, cause)) is not None:
                    return False
                session.add(Notification(portal_key=portal.key, cause=cause, sent_at=now))
                session.commit()
                return True
        except IntegrityError:
            return False  # another worker claimed it a moment ago
        except SQLAlchemyError as exc:
            log.warning("alert not sent, database unavailable: %s", exc.__class__.__name__)
            return False

    def _send(self, portal: PortalConfig, cause: str, message: str) -> None:
        text = f"Bitrix24 → Google bridge, portal {portal.key}: {message}"
        if portal.notify.bitrix_users:
            with bitrix_client_for(self.engine, portal, cipher=self.cipher, attempts=2) as client:
                for user in portal.notify.bitrix_users:
                    try:
                        client.call("im.notify.system.add", {"USER_ID": user, "MESSAGE": text})
                    except BitrixError as exc:
                        log.warning(
                            "Bitrix24 alert not delivered: %s", exc, extra={"portal": portal.key}
                        )
        if portal.notify.webhook_url:
            body = {"text": text, "portal": portal.key, "cause": cause}
            try:
                httpx.post(portal.notify.webhook_url, json=body, timeout=10).raise_for_status()
            except httpx.HTTPError as exc:
                log.warning(
                    "webhook alert not delivered: %s",
                    exc.__class__.__name__,
                    extra={"portal": portal.key},
                )
        log.info("alert sent: %s", cause, extra={"portal": portal.key})
