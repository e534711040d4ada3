"""The commands that run a process: `serve` (the web), `worker`, `migrate`, and the local
`demo` and `sandbox` against the emulators."""

from __future__ import annotations

import argparse
import logging
import signal
from datetime import timedelta
from types import FrameType

from sqlalchemy import Engine

from bridge.cli.loading import cipher_for, load_config
from bridge.config import Settings
from bridge.tokens import TokenCipher

log = logging.getLogger("bridge")


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings, portals = load_config()  # fail here, with one line, before uvicorn starts
    cipher_for(settings, portals)
    uvicorn.run(
        "bridge.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port or settings.port,
        proxy_headers=True,
        timeout_graceful_shutdown=25,
        access_log=False,
        log_config=None,  # keep our JSON handler on the root logger
    )
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine, only_worker_on_sqlite
    from bridge.metrics import serve_worker_metrics
    from bridge.notify import Notifier
    from bridge.worker import Worker

    settings, portals = load_config()
    cipher = cipher_for(settings, portals)
    engine = create_db_engine(settings.database_url)
    if cipher is not None:
        _reencrypt_at_start(engine, cipher)
    notifier = Notifier(engine, cipher)
    worker = Worker(
        engine=engine,
        portals=portals,
        lease_ttl=timedelta(seconds=settings.lease_seconds),
        notifier=notifier,
        cipher=cipher,
        poll_seconds=settings.poll_seconds,
    )
    if settings.metrics_port:
        serve_worker_metrics(settings.metrics_port, settings.metrics_token)
        log.info("worker metrics on port %d", settings.metrics_port)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current portal, then stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with only_worker_on_sqlite(settings.database_url):
        worker.run()
    notifier.close()
    return 0


def _reencrypt_at_start(engine: Engine, cipher: TokenCipher) -> None:
    """Tokens in plaintext (from an earlier version) or under an older key get the newest key."""
    from sqlalchemy.exc import SQLAlchemyError

    from bridge.tokens import reencrypt

    try:
        done = reencrypt(engine, cipher)
    except SQLAlchemyError as exc:  # the worker's own loop waits for the database
        log.warning("tokens not re-encrypted at start-up: %s", exc.__class__.__name__)
        return
    if done.rows:
        log.info("re-encrypted the stored tokens of %d row(s) with the newest key", done.rows)
    if done.unreadable:
        log.error("%d row(s) hold tokens no key in %s opens", done.unreadable, "BRIDGE_TOKEN_KEYS")


def run_migrate(args: argparse.Namespace) -> int:
    from bridge.migrate import migrate

    settings = Settings.from_env()
    migrate(settings.database_url)
    log.info("database schema is at the latest revision")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from bridge import demo

    return demo.run_demo(keep_serving=args.serve)


def run_sandbox(args: argparse.Namespace) -> int:
    from bridge import demo

    return demo.run_sandbox(
        host=args.host, bitrix_port=args.bitrix_port, google_port=args.google_port
    )
