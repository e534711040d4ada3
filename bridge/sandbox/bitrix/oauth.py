"""The OAuth side of the Bitrix24 emulator: `oauth.bitrix.info`'s `/oauth/token/`, and app callers.

A refresh answers with the portal's `member_id` and a new pair, and forgets the refresh token
it used, so a client that keeps an old refresh token gets `invalid_grant` on its next refresh
(`settings/oauth/auto-renewal.md`: "Retain it instead of the previous one"). An
`auth=<access_token>` REST call finds its portal and app by the token alone, as the portal's
`client_endpoint` would.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.bitrix.apps import Install, mint_pair, oauth_server_endpoint
from bridge.sandbox.bitrix.rest import RestError
from bridge.sandbox.bitrix.state import Portal, State
from bridge.sandbox.bitrix.values import as_text


@dataclass(frozen=True)
class _AppCaller:
    portal: Portal
    install: Install
    user_id: int


class TokenServer:
    def __init__(self, state: State) -> None:
        self._state = state

    async def token(self, request: Request) -> Response:
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if request.method == "POST":
            raw = (await request.body()).decode("utf-8", "replace")
            params.update(parse_qsl(raw, keep_blank_values=True))
        grant_type = params.get("grant_type", "")
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        refresh_token = params.get("refresh_token", "")
        if grant_type != "refresh_token":
            return _oauth_error(400, "invalid_request", "grant_type must be refresh_token")
        if not (client_id and secret and refresh_token):
            return _oauth_error(
                400, "invalid_request", "client_id, client_secret and refresh_token are required"
            )
        base_url = str(request.base_url).rstrip("/")
        with self._state.lock:
            known = self._state.apps.get(client_id)
            if known is None or not hmac.compare_digest(known, secret):
                return _oauth_error(401, "invalid_client", "Invalid client credentials")
            found = _find_refresh(self._state, client_id, refresh_token)
            if found is None:
                return _oauth_error(400, "invalid_grant", "Invalid refresh token")
            portal, install = found
            user_id = install.refresh.pop(refresh_token)
            pair = mint_pair(install, user_id, time.time())
            install.refresh_count += 1
            portal.apps.refresh_count += 1
            body: dict[str, Any] = {
                "access_token": pair.access_token,
                "client_endpoint": f"{base_url}/rest/",
                "domain": request.url.netloc,  # the authorization server's own domain
                "expires": int(pair.expires_at),
                "expires_in": pair.lifetime_s,
                "member_id": portal.member_id,
                "refresh_token": pair.refresh_token,
                "scope": install.scope,
                "server_endpoint": oauth_server_endpoint(base_url),
                "status": install.status,
                "user_id": user_id,
            }
        return JSONResponse(body)


def _oauth_error(status: int, code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)


def _find_refresh(
    state: State, client_id: str, refresh_token: str
) -> tuple[Portal, Install] | None:
    for portal in state.portals.values():
        install = portal.apps.installs.get(client_id)
        if install is not None and refresh_token in install.refresh:
            return portal, install
    return None


def find_app_caller(state: State, params: dict[str, Any]) -> _AppCaller:
    """Who an `auth=<access_token>` call is; the caller holds the lock."""
    token = as_text(params.pop("auth", None))
    for portal in state.portals.values():
        for install in portal.apps.installs.values():
            access = install.access.get(token) if token else None
            if access is None:
                continue
            if access.expires_at <= time.time():
                raise RestError(401, "expired_token", "The access token provided has expired")
            return _AppCaller(portal, install, access.user_id)
    raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
