"""What every part of the Bitrix24 emulator's `/_control/` API shares: its error, the guard that
turns errors into JSON answers, request bodies, the portal a path names, the emulator's own
address."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.bitrix.state import Portal, State
from bridge.sandbox.bitrix.values import as_text


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def guard(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return guarded


async def json_any(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, "body is not valid JSON") from exc


async def json_body(request: Request) -> dict[str, Any]:
    body = await json_any(request)
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def required_text(body: Mapping[str, Any], name: str) -> str:
    value = as_text(body.get(name))
    if not value:
        raise ControlError(400, f"{name} is required")
    return value


def emulator_base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def portal_of(state: State, request: Request) -> Portal:
    """The portal `{member_id}` in the path names; the caller holds the state lock."""
    portal = state.portals.get(request.path_params["member_id"])
    if portal is None:
        raise ControlError(404, "no such portal")
    return portal
