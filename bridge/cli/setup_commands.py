"""The commands that set a portal up or check it: `bind` and `unbind` (app mode's event
subscriptions), `check-config` (bridge.probes online), `reencrypt-tokens`."""

from __future__ import annotations

import argparse
import sys

from bridge.cli.loading import chosen, cipher_for, load_config
from bridge.clients import bind, unbind
from bridge.config import ConfigError


def run_bind(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine

    settings, portals = load_config()
    [portal] = chosen(portals, args.portal)
    if not portal.app_mode:
        raise ConfigError(
            f"portal {portal.key}: binding needs bitrix.oauth (an incoming webhook cannot bind)"
        )
    handler = args.handler_url or portal.bitrix.handler_url
    if not handler and portal.bitrix.delivery == "online":
        raise ConfigError(f"portal {portal.key}: pass --handler-url or set bitrix.handler_url")
    engine = create_db_engine(settings.database_url)
    bound = bind(engine, portal, handler, cipher_for(settings, portals))
    engine.dispose()
    print(
        "\n".join(f"{portal.key}: bound {line}" for line in bound) or f"{portal.key}: already bound"
    )
    return 0


def run_unbind(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine

    settings, portals = load_config()
    [portal] = chosen(portals, args.portal)
    engine = create_db_engine(settings.database_url)
    removed = unbind(engine, portal, args.handler_url, cipher_for(settings, portals))
    engine.dispose()
    print(f"{portal.key}: removed {removed} binding(s)")
    return 0


def run_check_config(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.probes import check_portals

    settings, portals = load_config()
    engine = create_db_engine(settings.database_url)
    try:
        cipher = cipher_for(settings, portals)
        return check_portals(engine, portals, online=args.online, cipher=cipher)
    finally:
        engine.dispose()


def run_reencrypt_tokens(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.tokens import KEYS_VARIABLE, TokenKeysMissing, reencrypt

    settings, portals = load_config()
    cipher = cipher_for(settings, portals)
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
