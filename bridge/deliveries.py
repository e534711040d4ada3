"""Deliveries from Bitrix24 (`/bitrix/events` and a local app's install callback): read and
validate the request, check it is authentic, persist it, acknowledge. Nothing here calls
Bitrix24 or Google; an install is only recorded, to be verified by the worker.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from bridge.addresses import Address, AddressMemory
from bridge.addresses import record as record_addresses
from bridge.config import PortalConfig
from bridge.credentials import installed_token, record_uninstall
from bridge.events import (
    INSTALL,
    MAX_BODY_BYTES,
    UNINSTALL,
    BitrixEvent,
    EventAuth,
    MalformedEvent,
    UnsupportedContentType,
    parse_body,
    read_event,
)
from bridge.inbox import InboxWriter, StoreUnavailable, UnstorableEvent
from bridge.installs import PAYLOAD_KEY, record_pending
from bridge.metrics import UNKNOWN_PORTAL, count_delivery
from bridge.tokens import TokenCipher, require_cipher

log = logging.getLogger("bridge.web")

_MAX_ERROR = 400  # an error names the problem and quotes at most ~100 characters of the request


class _BodyTooLarge(Exception):
    pass


class Deliveries:
    """`/bitrix/events` and the install callback: validate, persist, acknowledge."""

    def __init__(
        self,
        portals: Sequence[PortalConfig],
        engine: Engine,
        writer: InboxWriter,
        body_timeout: float,
        cipher: TokenCipher | None,
    ) -> None:
        self.by_member_id = {portal.member_id: portal for portal in portals}
        self.engine = engine
        self.writer = writer
        self.body_timeout = body_timeout
        self.cipher = cipher
        self.addresses = AddressMemory()

    async def receive_event(self, request: Request) -> JSONResponse:
        event = await self._read(request)
        if isinstance(event, JSONResponse):
            return event
        portal = self.by_member_id.get(event.auth.member_id)
        if portal is None:
            log.warning("event from an unknown portal refused", extra={"event": event.event})
            count_delivery(UNKNOWN_PORTAL, event.event, "unknown_portal")
            return error_response(403, "auth[member_id] is not a configured portal")
        fields = {
            "portal": portal.key,
            "event": event.event,
            "section_id": event.section_id,
            "entry_id": event.entry_id,
        }
        refusal = _refused_install(portal, event, fields) if event.event == INSTALL else None
        if refusal is not None:
            return refusal
        try:
            if event.event == INSTALL:
                return await self._install(portal, event)
            return await self._accept(portal, event, fields)
        except UnstorableEvent as exc:
            log.warning("the store refused the event's content: %s", exc, extra=fields)
            count_delivery(portal.key, event.event, "unstorable")
            return error_response(400, "the event's content cannot be stored; nothing was accepted")
        except (SQLAlchemyError, StoreUnavailable) as exc:
            log.error("could not store the event: %s", exc.__class__.__name__, extra=fields)
            count_delivery(portal.key, event.event, "store_failed")
            return error_response(503, "the event store is unavailable; nothing was accepted")

    async def install_callback(self, request: Request) -> JSONResponse:
        """A local app's install callback: the install's auth block without an event name."""
        request.scope["bridge.install"] = True
        return await self.receive_event(request)

    async def _read(self, request: Request) -> BitrixEvent | JSONResponse:
        """The delivery's event, or the response refusing an unreadable one."""
        try:
            body = await _read_body(request, self.body_timeout)
        except _BodyTooLarge:
            return error_response(413, f"body is larger than {MAX_BODY_BYTES} bytes")
        except TimeoutError:
            return error_response(408, f"the body was not complete within {self.body_timeout:g} s")
        except ClientDisconnect:
            return error_response(400, "client disconnected before the body was complete")
        try:
            raw = parse_body(body, request.headers.get("content-type", ""))
            if request.scope.get("bridge.install"):
                raw.setdefault("event", INSTALL)
            return read_event(raw)
        except UnsupportedContentType as exc:
            return error_response(415, str(exc))
        except MalformedEvent as exc:
            return error_response(400, str(exc), field=exc.field)

    async def _accept(
        self, portal: PortalConfig, event: BitrixEvent, fields: dict[str, str | None]
    ) -> JSONResponse:
        """Any event but an install: authentic by its application token, then stored."""
        expected = portal.application_token
        if portal.app_mode:
            live = await run_in_threadpool(
                installed_token, self.engine, portal, require_cipher(self.cipher)
            )
            expected = live or expected
        if not expected or not hmac.compare_digest(
            event.auth.application_token.encode(), expected.encode()
        ):
            log.warning("event with a wrong application token refused", extra=fields)
            count_delivery(portal.key, event.event, "wrong_token")
            return error_response(401, "auth[application_token] is wrong")
        if found := self.addresses.unseen(portal, event.auth):
            await self._note_addresses(portal, event.auth, found)
        if event.event == UNINSTALL:
            await run_in_threadpool(record_uninstall, self.engine, portal)
            log.warning("the app was uninstalled; the portal's work stops", extra=fields)
        recorded = await self.writer.record(portal.key, event)
        status = "accepted" if event.handled else "ignored"
        outcome = "duplicate" if recorded.duplicate else status
        count_delivery(portal.key, event.event, outcome)
        return JSONResponse({"status": status, "id": recorded.id, "duplicate": recorded.duplicate})

    async def _install(self, portal: PortalConfig, event: BitrixEvent) -> JSONResponse:
        fields = {"portal": portal.key, "event": event.event}
        if not portal.app_mode:
            count_delivery(portal.key, event.event, "not_an_app")
            return error_response(
                403, "the portal is configured with an incoming webhook, not as an app"
            )
        configured = portal.application_token
        if configured and not hmac.compare_digest(
            event.auth.application_token.encode(), configured.encode()
        ):
            count_delivery(portal.key, event.event, "wrong_token")
            return error_response(401, "auth[application_token] is wrong")
        for name in ("access_token", "refresh_token"):
            if not getattr(event.auth, name):
                return error_response(400, f"auth[{name}]: is missing", field=f"auth[{name}]")
        # Trusted for nothing until the worker has verified it (bridge.install_checks).
        pending = await run_in_threadpool(
            record_pending, self.engine, require_cipher(self.cipher), portal, event.auth
        )
        if pending is None:
            log.warning("install refused: too many installs wait for verification", extra=fields)
            count_delivery(portal.key, event.event, "too_many_installs")
            return error_response(
                429, "too many installs are waiting for verification; try again later"
            )
        payload = {**event.payload, PAYLOAD_KEY: pending}
        recorded = await self.writer.record(portal.key, replace(event, payload=payload))
        log.info("an install was received; it is trusted once verified", extra=fields)
        count_delivery(portal.key, event.event, "pending")
        return JSONResponse({"status": "pending verification", "id": recorded.id})

    async def _note_addresses(
        self, portal: PortalConfig, auth: EventAuth, found: list[Address]
    ) -> None:
        """Record addresses the config does not imply, before the event, so the worker that
        takes the event sees them; a failure here never costs the event its 200."""
        try:
            await run_in_threadpool(record_addresses, self.engine, portal, found)
        except Exception as exc:  # a report must never cost an authentic event its 200
            log.warning(
                "could not record an address the event names: %s",
                exc.__class__.__name__,
                extra={"portal": portal.key},
            )
            return
        self.addresses.remember(portal, auth, found)


def _refused_install(
    portal: PortalConfig, event: BitrixEvent, fields: dict[str, str | None]
) -> JSONResponse | None:
    """Installs bring tokens the bridge will use, so their addresses must match the config.
    Other events are authentic by member_id and token alone: their addresses are only reported
    (bridge.addresses), never called."""
    if event.auth.domain != portal.domain:
        log.warning("event for another domain refused", extra=fields)
        count_delivery(portal.key, event.event, "wrong_domain")
        return error_response(403, "auth[domain] does not match the configured portal")
    refusal = _foreign_origin(portal, event.auth)
    if refusal is not None:
        log.warning("event refused: %s", refusal, extra=fields)
        count_delivery(portal.key, event.event, "foreign_origin")
        return error_response(403, refusal)
    return None


async def _read_body(request: Request, timeout: float) -> bytes:
    """The body, whole within `timeout` seconds (else TimeoutError): a trickle holds nothing."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit():
        if len(declared) > 20 or int(declared) > MAX_BODY_BYTES:
            raise _BodyTooLarge
        async with asyncio.timeout(timeout):  # the server ends the body at its declared length
            return await request.body()
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):  # chunked: counted as it comes
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def _foreign_origin(portal: PortalConfig, auth: EventAuth) -> str | None:
    """Why an install naming endpoints other than the configured ones is refused: the tokens it
    brings will be used to call the portal, so they must come from the configured one."""
    if auth.client_endpoint and auth.client_endpoint.rstrip("/") != portal.rest_base.rstrip("/"):
        return "auth[client_endpoint] is not the configured portal's REST URL"
    if auth.server_endpoint and auth.server_endpoint.rstrip("/") != portal.server_endpoint.rstrip(
        "/"
    ):
        return "auth[server_endpoint] is not the configured OAuth server"
    return None


def error_response(status: int, message: str, *, field: str | None = None) -> JSONResponse:
    content: dict[str, str] = {"error": message[:_MAX_ERROR]}
    if field:
        content["field"] = field
    return JSONResponse(content, status_code=status)
