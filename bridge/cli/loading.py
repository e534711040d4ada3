"""What the commands share: the settings and portals loaded (secrets registered for redaction),
the OAuth tokens' cipher, and the portals a `--portal KEY` names."""

from __future__ import annotations

from bridge.config import ConfigError, PortalConfig, Settings, load_portals
from bridge.logs import redact
from bridge.tokens import TokenCipher, token_cipher


def load_config() -> tuple[Settings, list[PortalConfig]]:
    settings = Settings.from_env()
    portals = load_portals(settings.config_path)
    redact([settings.metrics_token or "", *(s for p in portals for s in p.secrets())])
    redact(settings.token_keys)
    return settings, portals


def cipher_for(settings: Settings, portals: list[PortalConfig]) -> TokenCipher | None:
    """The OAuth tokens' cipher; with an app-mode portal and no key this is a config error."""
    return token_cipher(settings.token_keys, portals)


def chosen(portals: list[PortalConfig], key: str | None) -> list[PortalConfig]:
    if key is None:
        return portals
    matching = [portal for portal in portals if portal.key == key]
    if not matching:
        known = ", ".join(portal.key for portal in portals) or "none"
        raise ConfigError(f"no portal with key {key!r} (configured: {known})")
    return matching
