"""Settings from the environment and the validated YAML portals file.

Config flows one way: environment → `Settings` → `load_portals` (secrets resolved, validated) →
passed explicitly into the app, the worker and the CLI. Every error names the portal and the key.

The parts: `settings` (the environment), `connections` (a portal's `bitrix:` and `google:`),
`mirroring` (its `mirror:`), `portal` (a whole portal and the file), `loading` (YAML to portals,
one-line errors), `base` (the error class, the strict model base). The rest of the bridge imports
from `bridge.config`, which names them all.
"""

from bridge.config.base import ConfigError
from bridge.config.connections import (
    GOOGLE_API_ENDPOINT,
    BitrixConfig,
    CreationPace,
    GoogleConfig,
    OAuthConfig,
    RateLimit,
    ReadOnlyProbe,
)
from bridge.config.loading import load_portals, parse_portals
from bridge.config.mirroring import (
    NAME_FIELDS,
    DeleteGuard,
    EntriesConfig,
    MirrorConfig,
    OnDelete,
    OwnerSelection,
    SectionType,
    ShareRule,
)
from bridge.config.portal import NotifyConfig, PortalConfig, PortalsFile
from bridge.config.settings import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATABASE_URL,
    Settings,
    normalize_database_url,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATABASE_URL",
    "GOOGLE_API_ENDPOINT",
    "NAME_FIELDS",
    "BitrixConfig",
    "ConfigError",
    "CreationPace",
    "DeleteGuard",
    "EntriesConfig",
    "GoogleConfig",
    "MirrorConfig",
    "NotifyConfig",
    "OAuthConfig",
    "OnDelete",
    "OwnerSelection",
    "PortalConfig",
    "PortalsFile",
    "RateLimit",
    "ReadOnlyProbe",
    "SectionType",
    "Settings",
    "ShareRule",
    "load_portals",
    "normalize_database_url",
    "parse_portals",
]
