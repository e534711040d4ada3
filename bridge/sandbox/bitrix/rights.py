"""What the incoming webhook may do in the Bitrix24 emulator: its scopes and its user's rights.

Real webhooks are made with a chosen set of scopes; a method outside them answers 403
`insufficient_scope` (`_includes/system-errors.md`). Listings are filtered by the caller's rights:
`socialnetwork.api.workgroup.list` hides secret groups unless `params[IS_ADMIN]=Y` comes from an
admin (api-reference/sonet-group/socialnetwork-api-workgroup-list.md), and `user.get` hides
extranet users unless `ADMIN_MODE` does (api-reference/user/user-get.md). Knobs, set with
`PATCH /_control/portals/{member_id}`: `webhook_admin` (default true: the webhook's user is an
admin) and `webhook_scopes` (a list; null: every scope).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The scopes a webhook gets when none were chosen (codes: api-reference/scopes/permissions.md).
DEFAULT_SCOPES = frozenset({"calendar", "im", "sonet_group", "user"})

# Which scopes let a method run; any one of them will do. Methods not named here need only
# `basic` (`scope`, `event.*`, `feature.get`, …), which every webhook and app has.
_METHOD_SCOPES: dict[str, frozenset[str]] = {
    "calendar.": frozenset({"calendar"}),
    "user.get": frozenset({"user", "user_brief", "user_basic"}),
    "socialnetwork.": frozenset({"sonet_group", "socialnetwork"}),
    "im.": frozenset({"im"}),
}


@dataclass
class Rights:
    webhook_admin: bool = True
    webhook_scopes: frozenset[str] | None = None  # None: DEFAULT_SCOPES


def scopes_of(rights: Rights) -> frozenset[str]:
    return DEFAULT_SCOPES if rights.webhook_scopes is None else rights.webhook_scopes


def lacks_scope(rights: Rights, method: str) -> bool:
    for prefix, accepted in _METHOD_SCOPES.items():
        if method == prefix or (prefix.endswith(".") and method.startswith(prefix)):
            return not accepted & scopes_of(rights)
    return False


def configure(rights: Rights, body: Mapping[str, Any]) -> None:
    if "webhook_admin" in body:
        value = body["webhook_admin"]
        if not isinstance(value, bool):
            raise ValueError("webhook_admin must be true or false")
        rights.webhook_admin = value
    if "webhook_scopes" in body:
        scopes = body["webhook_scopes"]
        if scopes is None:
            rights.webhook_scopes = None
        elif isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
            rights.webhook_scopes = frozenset(scopes)
        else:
            raise ValueError("webhook_scopes must be a list of scope codes or null")


def view(rights: Rights) -> dict[str, Any]:
    return {"webhook_admin": rights.webhook_admin, "webhook_scopes": sorted(scopes_of(rights))}


def php_truthy(value: Any) -> bool:
    """How PHP's `if ($value)` reads a request value: "", "0", false and null are false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, Mapping | list):
        return bool(value)
    return str(value) not in ("", "0")
