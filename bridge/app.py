"""The web process: its routes and the app factory. Deliveries are validated, persisted and
acknowledged by `bridge.deliveries`; the web never calls Bitrix24 or Google."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import StatelessLifespan

from bridge.config import PortalConfig, Settings, load_portals
from bridge.db import create_db_engine
from bridge.deliveries import Deliveries, error_response
from bridge.inbox import InboxWriter
from bridge.metrics import authorized
from bridge.metrics import render as render_metrics
from bridge.schema import schema_head, schema_revision
from bridge.tokens import TokenCipher, require_cipher, token_cipher

Lifespan = StatelessLifespan[Starlette]


def create_app(
    *,
    portals: Sequence[PortalConfig],
    engine: Engine,
    lifespan: Lifespan | None = None,
    metrics_token: str | None = None,
    body_timeout: float = 10.0,
    store_timeout: float = 5.0,
    cipher: TokenCipher | None = None,
) -> Starlette:
    """`cipher` seals and opens the OAuth tokens of app-mode portals (required with one)."""
    if any(portal.app_mode for portal in portals):
        require_cipher(cipher)
    health = _Health(engine, len({portal.member_id for portal in portals}), metrics_token)
    writer = InboxWriter(engine, store_timeout=store_timeout)
    deliveries = Deliveries(portals, engine, writer, body_timeout, cipher)
    return Starlette(
        routes=[
            Route("/bitrix/events", deliveries.receive_event, methods=["POST"]),
            Route("/bitrix/install", deliveries.install_callback, methods=["POST"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", health.metrics, methods=["GET"]),
        ],
        lifespan=_closing(writer, lifespan),
    )


class _Health:
    """`/healthz` (the process answers), `/readyz` (its database is reachable and migrated) and
    `/metrics` (behind the metrics token)."""

    def __init__(self, engine: Engine, portals: int, metrics_token: str | None) -> None:
        self.engine = engine
        self.portals = portals
        self.metrics_token = metrics_token
        self.head = schema_head()

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> JSONResponse:
        try:
            revision = await run_in_threadpool(schema_revision, self.engine)
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "unavailable", "database": f"unreachable ({exc.__class__.__name__})"},
                status_code=503,
            )
        if revision != self.head:
            expected = f"expected {self.head}: run `bridge migrate`"
            detail = f"schema at {revision or 'nothing'}, {expected}"
            return JSONResponse({"status": "unavailable", "database": detail}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "portals": self.portals})

    async def metrics(self, request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), self.metrics_token):
            response = error_response(401, "metrics need Authorization: Bearer <METRICS_TOKEN>")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        try:
            body = await run_in_threadpool(render_metrics, self.engine)
        except SQLAlchemyError:
            return error_response(503, "the database is unavailable")
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _closing(writer: InboxWriter, lifespan: Lifespan | None) -> Lifespan:
    """The caller's lifespan around the app's; at shutdown the inbox writer's thread stops and
    frees its connection first (otherwise every app made in one process keeps one for good)."""

    @asynccontextmanager
    async def closing(app: Starlette) -> AsyncIterator[None]:
        async with lifespan(app) if lifespan is not None else nullcontext():
            try:
                yield
            finally:
                await run_in_threadpool(writer.close)

    return closing


def _freeze_start_up_heap() -> None:
    """Put what start-up made (the modules, the config, SQLAlchemy's and pydantic's structures:
    about 86,000 objects) out of the garbage collector's reach. A delivery leaves nothing behind,
    but with many in flight enough of their objects outlive a young collection to trigger a full
    one every few thousand requests, and each walked the whole start-up heap: a tenth of the web
    process's CPU per request at 64 concurrent deliveries (`python -m bench ingestion`).
    Collected first, so no start-up garbage is kept for good."""
    gc.collect()
    gc.freeze()


def app_from_env() -> Starlette:
    """Zero-argument factory for `uvicorn --factory bridge.app:app_from_env`."""
    settings = Settings.from_env()
    portals = load_portals(settings.config_path)
    cipher = token_cipher(settings.token_keys, portals)
    engine = create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:  # fail fast on a bad DATABASE_URL
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        _freeze_start_up_heap()
        yield
        engine.dispose()

    return create_app(
        portals=portals,
        engine=engine,
        lifespan=lifespan,
        metrics_token=settings.metrics_token,
        body_timeout=settings.body_timeout_s,
        store_timeout=settings.store_timeout_s,
        cipher=cipher,
    )
