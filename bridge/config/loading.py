"""The portals file from YAML to validated `PortalConfig`s: `${VAR}` resolved from the
environment, then validated; every error is one line naming the portal and the key, never the
value (it may be a resolved secret)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bridge.config.base import ConfigError
from bridge.config.portal import PortalConfig, PortalsFile

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_portals(path: str | Path, environ: Mapping[str, str] | None = None) -> list[PortalConfig]:
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} not found (set BRIDGE_CONFIG)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}".replace("\n", " ")) from None
    return parse_portals(raw, environ, source=str(file))


def parse_portals(
    raw: Any, environ: Mapping[str, str] | None = None, *, source: str = "config"
) -> list[PortalConfig]:
    env = os.environ if environ is None else environ
    if not isinstance(raw, dict) or not isinstance(raw.get("portals"), list):
        raise ConfigError(f"{source}: top level must be a mapping with a 'portals' list")
    resolved = [
        _resolve_vars(portal, env, f"{source}: portal {_portal_name(portal, i)}", "")
        for i, portal in enumerate(raw["portals"])
    ]
    try:
        return PortalsFile.model_validate({**raw, "portals": resolved}).portals
    except ValidationError as exc:
        raise ConfigError(_describe(exc, resolved, source)) from None


def _portal_name(portal: Any, index: int) -> str:
    if isinstance(portal, dict) and isinstance(portal.get("key"), str):
        return str(portal["key"])
    return f"#{index + 1}"


def _resolve_vars(value: Any, env: Mapping[str, str], where: str, key: str) -> Any:
    if isinstance(value, dict):
        return {
            k: _resolve_vars(v, env, where, f"{key}.{k}" if key else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_vars(v, env, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where}, key {key}: environment variable {name} is not set")
            return env[name]

        return _VAR.sub(substitute, value)
    return value


def _describe(exc: ValidationError, portals: list[Any], source: str) -> str:
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = source
    if len(loc) >= 2 and loc[0] == "portals" and isinstance(loc[1], int):
        where = f"{source}: portal {_portal_name(portals[loc[1]], loc[1])}"
        loc = loc[2:]
    elif loc and loc[0] == "portals":
        loc = loc[1:]
    key = ".".join(str(part) for part in loc if not str(part).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    # Never echo the offending value: it may be a resolved secret.
    return f"{where}, key {key}: {message}" if key else f"{where}: {message}"
