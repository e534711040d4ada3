"""The floor for ingestion: bare Starlette that reads and parses the same form body as
`POST /bitrix/events` and answers 200 without checking a portal or storing anything.

Run it as the bridge runs: `uvicorn bench.floor:app` in a process of its own.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.events import parse_body, read_event


async def receive_event(request: Request) -> JSONResponse:
    body = await request.body()
    event = read_event(parse_body(body, request.headers.get("content-type", "")))
    return JSONResponse({"status": "accepted", "id": 0, "duplicate": event.section_id is None})


app = Starlette(routes=[Route("/bitrix/events", receive_event, methods=["POST"])])
