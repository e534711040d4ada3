"""`bridge check-config --online`: one read-only call per portal to each API, and the Bitrix24
scopes a portal's config needs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TextIO

from sqlalchemy import Engine

from bridge.clients import BitrixAccessDenied, BitrixError, PortalClients
from bridge.config import PortalConfig
from bridge.google_errors import GoogleError
from bridge.tokens import TokenCipher


def check_portals(
    engine: Engine,
    portals: Sequence[PortalConfig],
    *,
    online: bool,
    out: TextIO | None = None,
    cipher: TokenCipher | None = None,
) -> int:
    """The config is valid by now; with `online`, one read-only call per portal to each API."""
    out = out or sys.stdout
    print(f"config ok: {len(portals)} portal(s): {', '.join(p.key for p in portals)}", file=out)
    if not online:
        return 0
    failed = False
    for portal in portals:
        clients = PortalClients(engine, portal, cipher)
        try:
            probes: tuple[tuple[str, Callable[[PortalClients], str]], ...] = (
                ("bitrix24", partial(_probe_bitrix, portal)),
                ("google", _probe_google),
            )
            for api, probe in probes:
                try:
                    detail = probe(clients)
                    print(f"{portal.key}: {api} ok: {detail}", file=out)
                except (BitrixError, GoogleError) as exc:
                    failed = True
                    print(f"{portal.key}: {api} failing: {exc}", file=out)
        finally:
            clients.close()
    return 1 if failed else 0


# The REST scopes a portal's config needs, and why. Scope codes: api-reference/scopes/
# permissions.md in the Bitrix24 REST docs (`sonet_group` is also called `socialnetwork`; `user`
# also comes as `user_brief`/`user_basic`, either of which lists users).
_SCOPE_GRANTS = {
    "calendar": frozenset({"calendar"}),
    "user": frozenset({"user", "user_brief", "user_basic"}),
    "sonet_group": frozenset({"sonet_group", "socialnetwork"}),
    "im": frozenset({"im"}),
}
# A cheap read-only call per scope, where one exists; `im` is known only from the `scope` list.
_SCOPE_PROBES = {
    "calendar": "calendar.section.get?type=company_calendar&ownerId=0",
    "user": "user.get?FILTER%5BID%5D=0",
    "sonet_group": "socialnetwork.api.workgroup.list?select%5B0%5D=ID&filter%5BID%5D=0",
}


def needed_scopes(portal: PortalConfig) -> dict[str, str]:
    """Scope → what needs it, for this portal's config."""
    needed = {"calendar": "calendar sections and resources"}
    if portal.mirror.users:
        needed["user"] = "mirror.users: listing users"
    if portal.mirror.groups:
        needed["sonet_group"] = "mirror.groups: listing workgroups"
    if portal.notify.bitrix_users:
        needed["im"] = "notify.bitrix_users: Bitrix24 notifications"
    return needed


def _probe_bitrix(portal: PortalConfig, clients: PortalClients) -> str:
    """One batch: `scope` (the webhook's or app's scopes, api-reference/common/system/scope.md)
    and a read-only call per needed scope; a scope is missing when either says so."""
    needed = needed_scopes(portal)
    probes = {scope: _SCOPE_PROBES[scope] for scope in needed if scope in _SCOPE_PROBES}
    answer = clients.bitrix.batch({"scope": "scope", **probes})
    listed = answer.results.get("scope")
    granted = (
        {str(code) for code in listed}
        if isinstance(listed, list) and "scope" not in answer.errors
        else None
    )
    missing = []
    for scope, why in needed.items():
        error = answer.errors.get(scope)
        lacking = error is not None and error.code == "insufficient_scope"
        if lacking or (granted is not None and not _SCOPE_GRANTS[scope] & granted):
            missing.append(f"{scope} ({why})")
        elif error is not None:
            raise error
    if missing:
        raise BitrixAccessDenied(
            "scope",
            "insufficient_scope",
            f"the webhook or app lacks scope(s) {', '.join(missing)}: add them in Bitrix24",
        )
    sections = answer.results.get("calendar")
    count = len(sections) if isinstance(sections, list) else 0
    unverified = "" if granted is not None else " (the `scope` method failed: im not verified)"
    return (
        f"scopes {', '.join(needed)} granted{unverified}; "
        f"{count} company calendar section(s) readable"
    )


def _probe_google(clients: PortalClients) -> str:
    count = sum(1 for _ in clients.google.owned_calendars())
    return f"the owner's calendar list is readable ({count} owned calendar(s))"
