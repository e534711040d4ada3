"""`bridge COMMAND` / `python -m bridge COMMAND`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType

from sqlalchemy import Engine

from bridge import __version__
from bridge.clients import BitrixError, bind, unbind
from bridge.config import ConfigError, PortalConfig, Settings, load_portals
from bridge.db import AnotherWorkerRuns
from bridge.logs import configure_logging, redact
from bridge.tokens import TokenCipher, token_cipher

log = logging.getLogger("bridge")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        code: int = args.run(args)
        return code
    except ConfigError as exc:
        print(f"bridge: config error: {exc}", file=sys.stderr)
        return 2
    except AnotherWorkerRuns as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    except BitrixError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Mirror Bitrix24 calendar sections and resources as Google calendars.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web process (honours PORT)")
    serve.add_argument("--host", default="0.0.0.0", help="interface to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 8000)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run the worker that applies events to Google")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=_migrate)

    sync = commands.add_parser(
        "sync", help="reconcile every selected section with Google now (repairs missed events)"
    )
    sync.add_argument("--portal", metavar="KEY", help="only this portal (default: all)")
    sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sync.add_argument(
        "--force", action="store_true", help="run even if the mass-delete guard would stop it"
    )
    sync.set_defaults(run=_sync)

    purge = commands.add_parser(
        "purge", help="delete every calendar the bridge created for a portal, and its mappings"
    )
    purge.add_argument("--portal", metavar="KEY", required=True, help="the portal to purge")
    purge.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(run=_purge)

    replay = commands.add_parser("replay", help="put parked events back in the queue")
    replay.add_argument("--portal", metavar="KEY", help="only this portal")
    replay.add_argument("--section", metavar="ID", help="only events of this section")
    replay.set_defaults(run=_replay)

    status = commands.add_parser(
        "status", help="calendars, pending and parked work (with reasons), last reconciliation"
    )
    status.add_argument("--portal", metavar="KEY", help="only this portal")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(run=_status)

    bind = commands.add_parser(
        "bind", help="app mode: subscribe the section events (event.bind; running it twice is safe)"
    )
    bind.add_argument("--portal", metavar="KEY", required=True, help="the portal")
    bind.add_argument(
        "--handler-url",
        metavar="URL",
        help="public URL of /bitrix/events (default: bitrix.handler_url)",
    )
    bind.set_defaults(run=_bind)

    unbind = commands.add_parser("unbind", help="app mode: remove the bridge's event subscriptions")
    unbind.add_argument("--portal", metavar="KEY", required=True, help="the portal")
    unbind.add_argument("--handler-url", metavar="URL", help="only bindings to this URL")
    unbind.set_defaults(run=_unbind)

    check = commands.add_parser(
        "check-config", help="validate the portals file and the environment (and the credentials)"
    )
    check.add_argument(
        "--online", action="store_true", help="also make one read-only call per portal to each API"
    )
    check.set_defaults(run=_check_config)

    reencrypt = commands.add_parser(
        "reencrypt-tokens",
        help="app mode: seal every stored OAuth token with the first key of BRIDGE_TOKEN_KEYS",
    )
    reencrypt.set_defaults(run=_reencrypt_tokens)

    demo = commands.add_parser(
        "demo", help="run the whole loop against local emulators on a throw-away SQLite database"
    )
    demo.add_argument("--serve", action="store_true", help="keep running and print the URLs")
    demo.set_defaults(run=_demo)

    sandbox = commands.add_parser(
        "sandbox", help="run the Bitrix24 and Google emulators standalone"
    )
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)"
    )
    sandbox.add_argument("--bitrix-port", type=int, default=0, help="Bitrix24 emulator port")
    sandbox.add_argument("--google-port", type=int, default=0, help="Google emulator port")
    sandbox.set_defaults(run=_sandbox)
    return parser


def _load() -> tuple[Settings, list[PortalConfig]]:
    settings = Settings.from_env()
    portals = load_portals(settings.config_path)
    redact([settings.metrics_token or "", *(s for p in portals for s in p.secrets())])
    redact(settings.token_keys)
    return settings, portals


def _cipher(settings: Settings, portals: list[PortalConfig]) -> TokenCipher | None:
    """The OAuth tokens' cipher; with an app-mode portal and no key this is a config error."""
    return token_cipher(settings.token_keys, portals)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings, portals = _load()  # fail here, with one line, before uvicorn starts
    _cipher(settings, portals)
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


def _worker(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine, only_worker_on_sqlite
    from bridge.metrics import serve_worker_metrics
    from bridge.notify import Notifier
    from bridge.worker import Worker

    settings, portals = _load()
    cipher = _cipher(settings, portals)
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


def _reencrypt_tokens(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.tokens import KEYS_VARIABLE, TokenKeysMissing, reencrypt

    settings, portals = _load()
    cipher = _cipher(settings, portals)
    if cipher is None:
        raise TokenKeysMissing()
    engine = create_db_engine(settings.database_url)
    try:
        done = reencrypt(engine, cipher)
    finally:
        engine.dispose()
    print(f"re-encrypted {done.rows} row(s) with the first key of {KEYS_VARIABLE}")
    if done.unreadable:
        print(
            f"{done.unreadable} row(s) hold tokens that no key in {KEYS_VARIABLE} opens: keep "
            "the key they were sealed with, or reinstall the app",
            file=sys.stderr,
        )
        return 1
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from bridge.db import migrate

    settings = Settings.from_env()
    migrate(settings.database_url)
    log.info("database schema is at the latest revision")
    return 0


def _chosen(portals: list[PortalConfig], key: str | None) -> list[PortalConfig]:
    if key is None:
        return portals
    chosen = [portal for portal in portals if portal.key == key]
    if not chosen:
        known = ", ".join(portal.key for portal in portals) or "none"
        raise ConfigError(f"no portal with key {key!r} (configured: {known})")
    return chosen


def _sync(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.operations import sync_portals

    settings, portals = _load()
    engine = create_db_engine(settings.database_url)
    try:
        return sync_portals(
            engine,
            _chosen(portals, args.portal),
            dry_run=args.dry_run,
            force=args.force,
            cipher=_cipher(settings, portals),
        )
    finally:
        engine.dispose()


def _purge(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.operations import purge_portal

    settings, portals = _load()
    [portal] = _chosen(portals, args.portal)
    engine = create_db_engine(settings.database_url)
    try:
        return purge_portal(
            engine,
            portal,
            dry_run=args.dry_run,
            assume_yes=args.yes,
            cipher=_cipher(settings, portals),
        )
    finally:
        engine.dispose()


def _replay(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.operations import replay

    settings, portals = _load()
    if args.portal:
        _chosen(portals, args.portal)
    engine = create_db_engine(settings.database_url)
    try:
        return replay(engine, args.portal, args.section)
    finally:
        engine.dispose()


def _status(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.status import portal_status

    settings, portals = _load()
    engine = create_db_engine(settings.database_url)
    try:
        return portal_status(engine, _chosen(portals, args.portal), as_json=args.json)
    finally:
        engine.dispose()


def _bind(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine

    settings, portals = _load()
    [portal] = _chosen(portals, args.portal)
    if not portal.app_mode:
        raise ConfigError(
            f"portal {portal.key}: binding needs bitrix.oauth (an incoming webhook cannot bind)"
        )
    handler = args.handler_url or portal.bitrix.handler_url
    if not handler and portal.bitrix.delivery == "online":
        raise ConfigError(f"portal {portal.key}: pass --handler-url or set bitrix.handler_url")
    engine = create_db_engine(settings.database_url)
    bound = bind(engine, portal, handler, _cipher(settings, portals))
    engine.dispose()
    print(
        "\n".join(f"{portal.key}: bound {line}" for line in bound) or f"{portal.key}: already bound"
    )
    return 0


def _unbind(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine

    settings, portals = _load()
    [portal] = _chosen(portals, args.portal)
    engine = create_db_engine(settings.database_url)
    removed = unbind(engine, portal, args.handler_url, _cipher(settings, portals))
    engine.dispose()
    print(f"{portal.key}: removed {removed} binding(s)")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.probes import check_portals

    settings, portals = _load()
    engine = create_db_engine(settings.database_url)
    try:
        return check_portals(engine, portals, online=args.online, cipher=_cipher(settings, portals))
    finally:
        engine.dispose()


def _demo(args: argparse.Namespace) -> int:
    from bridge.demo import run_demo

    return run_demo(keep_serving=args.serve)


def _sandbox(args: argparse.Namespace) -> int:
    from bridge.demo import run_sandbox

    return run_sandbox(host=args.host, bitrix_port=args.bitrix_port, google_port=args.google_port)
