"""The schema's version, read without Alembic: the revision the migrations end at, and the one a
database is at. The web's `/readyz` compares the two; importing Alembic (about 11 MiB and 35 ms
with Mako) is left to the commands that migrate (`bridge.migrate`).

The head is read from the migration files as Alembic reads their graph: each file in
`migrations/versions/` declares `revision` and `down_revision` (a literal, as `alembic revision`
writes it); the head is the revision no other one revises. `tests/test_schema.py` holds it
against Alembic's own answer."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import Engine, inspect, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, as `migrations/env.py` leaves it


class UnknownHead(Exception):
    """The migrations do not end at one revision, or a migration file declares none."""


def schema_head() -> str | None:
    """The revision the migrations end at (None: there are none)."""
    declared = [_declared(path) for path in _migration_files()]
    revised = {down for _, downs in declared for down in downs}
    heads = sorted({revision for revision, _ in declared} - revised)
    if len(heads) > 1:
        raise UnknownHead(f"the migrations have {len(heads)} heads: {', '.join(heads)}")
    return heads[0] if heads else None


def schema_revision(engine: Engine) -> str | None:
    """The database's revision (None: never migrated); raises if the database cannot be
    reached."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        return ",".join(sorted(rows)) or None


def _migration_files() -> list[Path]:
    """The files Alembic reads as migrations: Python sources, but no `__init__.py` and no
    editor's lock file (`.#…`)."""
    return sorted(
        path
        for path in (MIGRATIONS_DIR / "versions").glob("*.py")
        if not path.name.startswith(("__init__", ".#"))
    )


def _declared(path: Path) -> tuple[str, tuple[str, ...]]:
    """A migration file's `revision` and the revisions it revises (`down_revision`: none, one,
    or several for a merge)."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value)
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        raise UnknownHead(f"{path.name} declares no revision")
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list):
        return revision, tuple(str(item) for item in down)
    raise UnknownHead(f"{path.name}: down_revision is not a revision or a list of them")
