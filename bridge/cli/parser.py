"""`bridge`'s arguments: one function per group of commands adds their subparsers, in the order
`bridge --help` lists them; each subparser names the function that runs it (`run`)."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from bridge import __version__
from bridge.cli import portal_commands, processes, setup_commands

# What `add_subparsers` returns: where each group adds its commands.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Mirror Bitrix24 calendar sections and resources as Google calendars.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_process_commands(commands)
    _add_portal_commands(commands)
    _add_setup_commands(commands)
    _add_local_commands(commands)
    return parser


def _add_process_commands(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the web process (honours PORT)")
    serve.add_argument("--host", default="0.0.0.0", help="interface to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 8000)")
    serve.set_defaults(run=processes.run_serve)

    worker = commands.add_parser("worker", help="run the worker that applies events to Google")
    worker.set_defaults(run=processes.run_worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=processes.run_migrate)


def _add_portal_commands(commands: Commands) -> None:
    sync = commands.add_parser(
        "sync", help="reconcile every selected section with Google now (repairs missed events)"
    )
    sync.add_argument("--portal", metavar="KEY", help="only this portal (default: all)")
    sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sync.add_argument(
        "--force", action="store_true", help="run even if the mass-delete guard would stop it"
    )
    sync.set_defaults(run=portal_commands.run_sync)

    purge = commands.add_parser(
        "purge", help="delete every calendar the bridge created for a portal, and its mappings"
    )
    purge.add_argument("--portal", metavar="KEY", required=True, help="the portal to purge")
    purge.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(run=portal_commands.run_purge)

    replay = commands.add_parser("replay", help="put parked events back in the queue")
    replay.add_argument("--portal", metavar="KEY", help="only this portal")
    replay.add_argument("--section", metavar="ID", help="only events of this section")
    replay.set_defaults(run=portal_commands.run_replay)

    status = commands.add_parser(
        "status", help="calendars, pending and parked work (with reasons), last reconciliation"
    )
    status.add_argument("--portal", metavar="KEY", help="only this portal")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(run=portal_commands.run_status)


def _add_setup_commands(commands: Commands) -> None:
    bind = commands.add_parser(
        "bind", help="app mode: subscribe the section events (event.bind; running it twice is safe)"
    )
    bind.add_argument("--portal", metavar="KEY", required=True, help="the portal")
    bind.add_argument(
        "--handler-url",
        metavar="URL",
        help="public URL of /bitrix/events (default: bitrix.handler_url)",
    )
    bind.set_defaults(run=setup_commands.run_bind)

    unbind = commands.add_parser("unbind", help="app mode: remove the bridge's event subscriptions")
    unbind.add_argument("--portal", metavar="KEY", required=True, help="the portal")
    unbind.add_argument("--handler-url", metavar="URL", help="only bindings to this URL")
    unbind.set_defaults(run=setup_commands.run_unbind)

    check = commands.add_parser(
        "check-config", help="validate the portals file and the environment (and the credentials)"
    )
    check.add_argument(
        "--online", action="store_true", help="also make one read-only call per portal to each API"
    )
    check.set_defaults(run=setup_commands.run_check_config)

    reencrypt = commands.add_parser(
        "reencrypt-tokens",
        help="app mode: seal every stored OAuth token with the first key of BRIDGE_TOKEN_KEYS",
    )
    reencrypt.set_defaults(run=setup_commands.run_reencrypt_tokens)


def _add_local_commands(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo", help="run the whole loop against local emulators on a throw-away SQLite database"
    )
    demo.add_argument("--serve", action="store_true", help="keep running and print the URLs")
    demo.set_defaults(run=processes.run_demo)

    sandbox = commands.add_parser(
        "sandbox", help="run the Bitrix24 and Google emulators standalone"
    )
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)"
    )
    sandbox.add_argument("--bitrix-port", type=int, default=0, help="Bitrix24 emulator port")
    sandbox.add_argument("--google-port", type=int, default=0, help="Google emulator port")
    sandbox.set_defaults(run=processes.run_sandbox)
