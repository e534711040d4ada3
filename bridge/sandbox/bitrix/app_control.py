"""The app part of the Bitrix24 emulator's `/_control/` API: register, install and uninstall apps.

Installing mints the first token pair and an `application_token` and queues `ONAPPINSTALL` to the
install handler; the control answer carries the same tokens so tests can check them. Tests can
also expire every access token of a portal, read back the tokens, bindings and offline queue, and
set the plan's features (`/plan`), which `feature.get` and `event.offline.get` follow.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.bitrix.apps import (
    Install,
    PortalApps,
    app_auth,
    install_event,
    mint_pair,
    uninstall_events,
)
from bridge.sandbox.bitrix.control_http import (
    ControlError,
    emulator_base_url,
    json_body,
    portal_of,
    required_text,
)
from bridge.sandbox.bitrix.state import State
from bridge.sandbox.bitrix.values import as_bool, as_int, as_text

_DEFAULT_SCOPE = "calendar,user,sonet_group"


class AppControl:
    def __init__(self, state: State) -> None:
        self._state = state

    async def add_app(self, request: Request) -> Response:
        body = await json_body(request)
        client_id = (
            as_text(body.get("client_id"))
            or f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
        )
        secret = as_text(body.get("client_secret")) or secrets.token_urlsafe(36)
        with self._state.lock:
            self._state.apps[client_id] = secret
        return JSONResponse({"client_id": client_id, "client_secret": secret}, status_code=201)

    async def install(self, request: Request) -> Response:
        """Install (or reinstall, which drops the old tokens and bindings) an app on a portal."""
        body = await json_body(request)
        client_id = required_text(body, "client_id")
        base_url = emulator_base_url(request)
        with self._state.lock:
            if client_id not in self._state.apps:
                raise ControlError(404, "no such app; POST /_control/apps first")
            portal = portal_of(self._state, request)
            user_id = as_int(body.get("user_id")) or portal.webhook_user_id
            install = Install(
                client_id=client_id,
                application_token=as_text(body.get("application_token")) or secrets.token_hex(16),
                handler=as_text(body.get("handler")),
                user_id=user_id,
                admin=as_bool(body.get("admin", True)),
                scope=as_text(body.get("scope")) or _DEFAULT_SCOPE,
                status=as_text(body.get("status")) or "L",
                lifetime_s=as_int(body.get("access_lifetime_s")) or 3600,
                language_id=as_text(body.get("language_id")) or "en",
                version=as_text(body.get("version")) or "1",
            )
            portal.apps.installs[client_id] = install
            pair = mint_pair(install, user_id, time.time())
            where = {"member_id": portal.member_id, "domain": portal.domain, "base_url": base_url}
            jobs = install_event(install, pair, **where)
            answer: dict[str, Any] = {
                "client_id": client_id,
                **app_auth(install, pair, **where),
                "expires": int(pair.expires_at),
                "user_id": user_id,
                "handler": install.handler,
            }
        return JSONResponse(answer, status_code=201, background=self._state.background(jobs))

    async def uninstall(self, request: Request) -> Response:
        body = await json_body(request)
        client_id = required_text(body, "client_id")
        with self._state.lock:
            portal = portal_of(self._state, request)
            install = portal.apps.installs.pop(client_id, None)
            if install is None:
                raise ControlError(404, "the app is not installed on this portal")
            jobs = uninstall_events(
                install,
                member_id=portal.member_id,
                domain=portal.domain,
                base_url=emulator_base_url(request),
                clean=as_bool(body.get("clean", False)),
            )
        answer = {"uninstalled": client_id, "deliveries": len(jobs)}
        return JSONResponse(answer, background=self._state.background(jobs))

    async def expire_tokens(self, request: Request) -> Response:
        now = time.time()
        count = 0
        with self._state.lock:
            for install in portal_of(self._state, request).apps.installs.values():
                for access in install.access.values():
                    if access.expires_at > now:
                        access.expires_at = now
                        count += 1
        return JSONResponse({"expired": count})

    async def view_app(self, request: Request) -> Response:
        now = time.time()
        with self._state.lock:
            apps = portal_of(self._state, request).apps
            view = {
                "member_id": request.path_params["member_id"],
                "automation": apps.automation,
                "refresh_count": apps.refresh_count,
                "apps": [_install_view(install, now) for install in apps.installs.values()],
            }
        return JSONResponse(view)

    async def view_offline(self, request: Request) -> Response:
        with self._state.lock:
            apps: PortalApps = portal_of(self._state, request).apps
            records = [
                {**record.row(), "AUTH_CONNECTOR": record.connector, "client_id": client_id}
                for client_id, install in apps.installs.items()
                for record in install.offline
            ]
        return JSONResponse({"records": records})

    async def plan(self, request: Request) -> Response:
        """GET or PUT the plan's features: `{"features": [...]}` lists what the plan has (a
        missing `rest_offline_extended` makes `event.offline.get` with `clear=0` answer
        WRONG_LICENSE); `{"features": null}` is a self-hosted portal without a feature check."""
        body = await json_body(request) if request.method == "PUT" else {}
        with self._state.lock:
            portal = portal_of(self._state, request)
            if request.method == "PUT":
                if "features" not in body:
                    raise ControlError(400, "features is required (a list, or null)")
                given = body["features"]
                if given is not None and not isinstance(given, list):
                    raise ControlError(400, "features must be a list of feature codes, or null")
                portal.features = None if given is None else frozenset(map(str, given))
            features = None if portal.features is None else sorted(portal.features)
        return JSONResponse({"features": features})


def _install_view(install: Install, now: float) -> dict[str, Any]:
    latest = install.latest
    return {
        "client_id": install.client_id,
        "application_token": install.application_token,
        "handler": install.handler,
        "user_id": install.user_id,
        "admin": install.admin,
        "scope": install.scope,
        "status": install.status,
        "access_lifetime_s": install.lifetime_s,
        "refresh_count": install.refresh_count,
        "access_token": latest.access_token if latest else None,
        "refresh_token": latest.refresh_token if latest else None,
        "access_tokens": [
            {
                "token": token,
                "user_id": access.user_id,
                "expires": access.expires_at,
                "expired": access.expires_at <= now,
            }
            for token, access in install.access.items()
        ],
        "refresh_tokens": [
            {"token": token, "user_id": user_id} for token, user_id in install.refresh.items()
        ],
        "bindings": [
            {
                "id": b.id,
                "event": b.event,
                "handler": b.handler,
                "auth_type": b.auth_type,
                "offline": b.offline,
                "auth_connector": b.connector,
                "min_timeout": b.min_timeout,
            }
            for b in install.bindings
        ],
    }
