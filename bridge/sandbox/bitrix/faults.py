"""Faults the Bitrix24 emulator injects into whole REST calls: an error, an nginx HTML page, a
delay or a dropped connection (queued through `/_control/faults`, kept in `State.faults`)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bridge.sandbox.bitrix.rest import RestError
from bridge.sandbox.bitrix.state import Fault, State

RAW_SEND = "bridge.sandbox.raw_send"
FAULT_KINDS = frozenset({"error", "html", "delay", "drop"})


async def answer_fault(
    state: State, fault: Fault, request: Request, entry: dict[str, Any]
) -> Response | None:
    """Apply `fault` to a whole REST call; None lets the call go on after the fault's delay."""
    if fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
        return None
    if fault.kind == "drop":
        entry["error"] = "connection dropped"
        state.record(entry)
        await _drop_connection(request)
        return Response(status_code=fault.status)
    if fault.kind == "html":
        entry.update(status=fault.status, error="html")
        state.record(entry)
        return HTMLResponse(_html_page(fault.status), status_code=fault.status)
    raise RestError(fault.status, fault.error, fault.description)


async def _drop_connection(request: Request) -> None:
    raw_send = request.scope.get(RAW_SEND)
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the server does not expose its transport; cannot drop the connection")
    transport.close()
    await asyncio.sleep(0.01)  # let the server see the disconnect before we return


def _html_page(status: int) -> str:
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
