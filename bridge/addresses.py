"""Addresses a portal names that its config does not imply, kept and reported once.

Events carry `auth[domain]`, `auth[client_endpoint]` and `auth[server_endpoint]`
(`_includes/auth-params-in-events.md`). The bridge never calls them, so they never refuse an
authentic event; but a difference means something an operator may want to know: the portal was
renamed, a self-hosted portal is reached at an internal address, the portal belongs to another
region's OAuth server. The REST client adds where a moved portal's REST answers now
(`settings/how-to-call-rest-api/change-domen.md`). Each value is a `portal_address` row, written
idempotently by whichever process sees it first, logged once, counted by `/metrics`, listed by
`bridge status` and alerted once by a worker.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from bridge.config import PortalConfig
from bridge.events import EventAuth
from bridge.models import PortalAddress, utcnow

log = logging.getLogger("bridge.addresses")

_MAX_VALUE = 255  # portal_address.value
_REST = "/rest/"


class AddressKind(StrEnum):
    DOMAIN = "domain"  # auth[domain] of events
    CLIENT_ENDPOINT = "client_endpoint"  # auth[client_endpoint] of events
    SERVER_ENDPOINT = "server_endpoint"  # auth[server_endpoint] of events
    REST_URL = "rest_url"  # where REST answered after a redirect


@dataclass(frozen=True)
class Address:
    kind: AddressKind
    value: str


@lru_cache(maxsize=256)  # every event names the same few; each costs a urlsplit otherwise
def normal_url(value: str) -> str:
    """`scheme://host[:port]/path/` in lower case, without credentials, query or anything after
    `/rest/` (a webhook's secret code lives there)."""
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path or "/"
    if _REST in path + "/":
        path = (path + "/")[: (path + "/").index(_REST) + len(_REST)]
    return f"{parts.scheme.lower()}://{host}{path.rstrip('/')}/"


def configured(portal: PortalConfig, kind: AddressKind) -> str:
    """What the config implies for `kind`."""
    if kind == AddressKind.DOMAIN:
        return portal.domain
    if kind == AddressKind.SERVER_ENDPOINT:
        return normal_url(portal.server_endpoint)
    return normal_url(portal.rest_base)


def _normal(kind: AddressKind, value: str) -> str:
    text = value.strip().lower().rstrip(".") if kind == AddressKind.DOMAIN else normal_url(value)
    return text[:_MAX_VALUE]


def unexpected(portal: PortalConfig, auth: EventAuth) -> list[Address]:
    """The addresses an authentic event names that differ from the config's."""
    named = (
        (AddressKind.DOMAIN, auth.domain),
        (AddressKind.CLIENT_ENDPOINT, auth.client_endpoint),
        (AddressKind.SERVER_ENDPOINT, auth.server_endpoint),
    )
    found = []
    for kind, raw in named:
        if raw and (value := _normal(kind, raw)) != configured(portal, kind):
            found.append(Address(kind, value))
    return found


def record(engine: Engine, portal: PortalConfig, found: Sequence[Address]) -> list[Address]:
    """Insert the rows that do not exist yet (safe when processes race); log and return those
    this call inserted."""
    table = PortalAddress.__table__  # type: ignore[attr-defined]
    inserted = []
    with engine.begin() as connection:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        for address in found:
            statement = dialect.insert(table).on_conflict_do_nothing(
                index_elements=["portal_key", "kind", "value"]
            )
            values = {
                "portal_key": portal.key,
                "kind": address.kind.value,
                "value": address.value,
                "first_seen_at": utcnow(),
                "reported_at": None,
            }
            if connection.execute(statement, values).rowcount == 1:
                inserted.append(address)
    for address in inserted:
        log.warning(
            "%s; %s",
            describe(portal, address.kind, address.value),
            advice(portal, address.kind),
            extra={"portal": portal.key},
        )
    return inserted


def record_move(engine: Engine, portal: PortalConfig, rest_url: str) -> None:
    """The REST client's `on_moved`: it must never fail the call that was redirected."""
    address = Address(AddressKind.REST_URL, _normal(AddressKind.REST_URL, rest_url))
    if address.value == configured(portal, AddressKind.REST_URL):
        return
    try:
        record(engine, portal, [address])
    except SQLAlchemyError as exc:
        log.warning(
            "could not record the portal's new REST address: %s",
            exc.__class__.__name__,
            extra={"portal": portal.key},
        )


class AddressMemory:
    """The web's record of values already in the table, so only a process's first sighting of
    a value costs a database write; and of the senders' address triples already judged, so an
    event naming what earlier ones named costs one set lookup."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: set[tuple[str, Address]] = set()
        self._judged: set[tuple[str, str, str, str]] = set()
        self._limit = limit

    def unseen(self, portal: PortalConfig, auth: EventAuth) -> list[Address]:
        """The addresses the event names that differ from the config and are not recorded."""
        named = _named(portal, auth)
        if named in self._judged:
            return []
        found = [a for a in unexpected(portal, auth) if (portal.key, a) not in self._seen]
        if not found:
            self._judge(named)
        return found

    def remember(self, portal: PortalConfig, auth: EventAuth, found: Sequence[Address]) -> None:
        """`found` (from `unseen`) is recorded now."""
        if len(self._seen) + len(found) > self._limit:
            self._seen.clear()  # authentic senders only; a bound keeps memory flat regardless
        self._seen.update((portal.key, address) for address in found)
        self._judge(_named(portal, auth))

    def _judge(self, named: tuple[str, str, str, str]) -> None:
        if len(self._judged) >= self._limit:
            self._judged.clear()
        self._judged.add(named)


def _named(portal: PortalConfig, auth: EventAuth) -> tuple[str, str, str, str]:
    return (portal.key, auth.domain, auth.client_endpoint, auth.server_endpoint)


def claim_unreported(engine: Engine, portal: PortalConfig) -> list[Address]:
    """Rows of the portal not alerted yet and still differing from the config, each marked
    reported by exactly one caller however many workers ask."""
    now = utcnow()
    claimed = []
    with Session(engine) as session:
        rows = session.exec(
            select(PortalAddress).where(
                PortalAddress.portal_key == portal.key, col(PortalAddress.reported_at).is_(None)
            )
        ).all()
        for row in rows:
            result = session.execute(
                update(PortalAddress)
                .where(
                    col(PortalAddress.portal_key) == row.portal_key,
                    col(PortalAddress.kind) == row.kind,
                    col(PortalAddress.value) == row.value,
                    col(PortalAddress.reported_at).is_(None),
                )
                .values(reported_at=now)
            )
            if getattr(result, "rowcount", 0) == 1 and _still_differs(portal, row):
                claimed.append(Address(AddressKind(row.kind), row.value))
        session.commit()
    return claimed


def alert(portal: PortalConfig, found: Sequence[Address]) -> tuple[str, str]:
    """The cause (one per set of values, so a later value is not held back by the alert
    interval) and the message of one alert for newly seen addresses."""
    lines = [f"{describe(portal, a.kind, a.value)}; {advice(portal, a.kind)}" for a in found]
    digest = hashlib.sha256("\n".join(f"{a.kind}={a.value}" for a in found).encode()).hexdigest()
    return f"address:{digest[:16]}", " / ".join(lines)


def current(engine: Engine, portal: PortalConfig) -> list[dict[str, object]]:
    """For `bridge status`: the values seen that still differ from the config."""
    with Session(engine) as session:
        rows = session.exec(
            select(PortalAddress)
            .where(PortalAddress.portal_key == portal.key)
            .order_by(col(PortalAddress.first_seen_at))
        ).all()
    return [
        {
            "kind": row.kind,
            "value": row.value,
            "configured": configured(portal, AddressKind(row.kind)),
            "first_seen_at": row.first_seen_at,
            "reported_at": row.reported_at,
            "message": describe(portal, row.kind, row.value),
            "advice": advice(portal, row.kind),
        }
        for row in rows
        if _still_differs(portal, row)
    ]


def describe(portal: PortalConfig, kind: str, value: str) -> str:
    expected = configured(portal, AddressKind(kind))
    return {
        AddressKind.DOMAIN: f"events name address {value}, the config says {expected}",
        AddressKind.CLIENT_ENDPOINT: (
            f"events name the REST address {value}, the bridge calls {expected}"
        ),
        AddressKind.SERVER_ENDPOINT: (
            f"events name the OAuth server {value}, the config implies {expected}"
        ),
        AddressKind.REST_URL: f"REST requests to {expected} are redirected to {value}",
    }[AddressKind(kind)]


def advice(portal: PortalConfig, kind: str) -> str:
    rest_setting = "bitrix.webhook_url" if portal.bitrix.webhook_url else "bitrix.rest_url"
    return {
        AddressKind.DOMAIN: "update `domain` in the config",
        AddressKind.CLIENT_ENDPOINT: (
            f"if the portal moved, update `{rest_setting}`; if the bridge reaches the same "
            "portal by an internal address, nothing to change"
        ),
        AddressKind.SERVER_ENDPOINT: (
            "set `bitrix.oauth.server_endpoint` and `token_url` to that region's server"
            if portal.app_mode
            else "an incoming webhook does not use it; nothing to change"
        ),
        AddressKind.REST_URL: f"the portal moved: update `{rest_setting}` and `domain`",
    }[AddressKind(kind)]


def _still_differs(portal: PortalConfig, row: PortalAddress) -> bool:
    try:
        return row.value != configured(portal, AddressKind(row.kind))
    except ValueError:  # a kind this version does not know
        return False
