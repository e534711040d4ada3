"""Where an emulated portal lives: the addresses its deliveries name and where its REST answers.

Real portals differ here (reference/bitrix24/NOTES.md §9a), so each is a knob of
`POST /_control/portals` and `PATCH /_control/portals/{member_id}`:

- `server_endpoint`, or `region` ("world", "ru"): the OAuth server deliveries name in
  `auth[server_endpoint]` (`_includes/auth-params-in-events.md`); portals of the `.ru` zone, and
  others, name `https://oauth.bitrix24.tech/rest/`.
- `address` (`scheme://host[:port]`): the portal's public address; deliveries name
  `{address}/rest/` in `auth[client_endpoint]` wherever the REST call that caused them came in,
  as for a self-hosted portal that the integration reaches by an internal address.
- `moved: true` with a new `address` (and usually a new `domain`): the portal's address changed
  (`settings/how-to-call-rest-api/change-domen.md`); REST requests that arrive at a former
  address answer 302 with `Location` at the same path on the new one. Everything runs on
  loopback, so an address is told apart by the request's Host: `http://localhost:PORT` and
  `http://127.0.0.1:PORT` are two addresses of one emulator. The emulator finds the portal (by
  webhook code or token) before redirecting, so an unknown caller gets its 401 there.

Without these knobs a portal names the address each request came in at and the worldwide OAuth
server for outgoing webhooks (the emulator's own `/oauth/rest/` for apps), as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bridge.sandbox.bitrix.values import as_bool, as_text

REGIONS = {
    "world": "https://oauth.bitrix.info/rest/",
    "ru": "https://oauth.bitrix24.tech/rest/",
}


@dataclass
class Address:
    public: str | None = None  # scheme://host[:port]; None: where each request came in
    server_endpoint: str | None = None  # None: the default of the kind of delivery
    former: set[str] = field(default_factory=set)  # addresses that now answer 302


def configure(address: Address, body: Mapping[str, Any]) -> None:
    """Apply the knobs present in a control request's body; ValueError explains a bad one."""
    if "region" in body:
        region = as_text(body["region"]).lower()
        if region not in REGIONS:
            raise ValueError(f"region must be one of {sorted(REGIONS)}")
        address.server_endpoint = REGIONS[region]
    if "server_endpoint" in body:
        address.server_endpoint = _url(as_text(body["server_endpoint"]), "server_endpoint") + "/"
    moved = as_bool(body.get("moved", False))
    if "address" not in body:
        if moved:
            raise ValueError("moved needs the new `address`")
        return
    new = _url(as_text(body["address"]), "address")
    if urlsplit(new).path:
        raise ValueError("address must be scheme://host[:port] without a path")
    if moved:
        if address.public is None:
            raise ValueError("moved needs the portal's previous `address`: set it first")
        address.former.add(address.public)
    address.former.discard(new)
    address.public = new


def view(address: Address) -> dict[str, Any]:
    return {
        "address": address.public,
        "server_endpoint": address.server_endpoint,
        "moved_from": sorted(address.former),
    }


def addressed(address: Address, auth: Mapping[str, str]) -> dict[str, str]:
    """A delivery's `auth` block naming the portal's public address and OAuth server."""
    named = dict(auth)
    if address.public is not None and "client_endpoint" in named:
        named["client_endpoint"] = f"{address.public}/rest/"
    if address.server_endpoint is not None and "server_endpoint" in named:
        named["server_endpoint"] = address.server_endpoint
    return named


def moved_location(address: Address, came_in_at: str, path: str, query: str) -> str | None:
    """Where a REST request that came in at a former address is sent (change-domen.md)."""
    if address.public is None or _origin(came_in_at) not in address.former:
        return None
    return f"{address.public}{path}" + (f"?{query}" if query else "")


def _url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an http(s) URL")
    return _origin(value) + parts.path.rstrip("/")


def _origin(value: str) -> str:
    parts = urlsplit(value)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"
