"""The commands on a configured portal's data: `sync`, `purge`, `replay` (bridge.operations)
and `status` (bridge.status). Each opens the database, runs, and disposes of the engine."""

from __future__ import annotations

import argparse

from bridge.cli.loading import chosen, cipher_for, load_config


def run_sync(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.operations import sync_portals

    settings, portals = load_config()
    engine = create_db_engine(settings.database_url)
    try:
        return sync_portals(
            engine,
            chosen(portals, args.portal),
            dry_run=args.dry_run,
            force=args.force,
            cipher=cipher_for(settings, portals),
        )
    finally:
        engine.dispose()


def run_purge(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.operations import purge_portal

    settings, portals = load_config()
    [portal] = chosen(portals, args.portal)
    engine = create_db_engine(settings.database_url)
    try:
        return purge_portal(
            engine,
            portal,
            dry_run=args.dry_run,
            assume_yes=args.yes,
            cipher=cipher_for(settings, portals),
        )
    finally:
        engine.dispose()


def run_replay(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.operations import replay

    settings, portals = load_config()
    if args.portal:
        chosen(portals, args.portal)
    engine = create_db_engine(settings.database_url)
    try:
        return replay(engine, args.portal, args.section)
    finally:
        engine.dispose()


def run_status(args: argparse.Namespace) -> int:
    from bridge.db import create_db_engine
    from bridge.status import portal_status

    settings, portals = load_config()
    engine = create_db_engine(settings.database_url)
    try:
        return portal_status(engine, chosen(portals, args.portal), as_json=args.json)
    finally:
        engine.dispose()
