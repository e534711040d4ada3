"""The process-wide settings, read once from the environment (`Settings.from_env`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from bridge.config.base import ConfigError

DEFAULT_CONFIG_PATH = "config/portals.yaml"
DEFAULT_DATABASE_URL = "sqlite:///bridge.db"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    config_path: str = DEFAULT_CONFIG_PATH
    port: int = 8000
    lease_seconds: float = 30.0  # a dead worker's portals are taken over after this
    metrics_port: int | None = None  # the worker serves /metrics here when set
    metrics_token: str | None = None  # both /metrics pages then need `Authorization: Bearer`
    body_timeout_s: float = 10.0  # the web answers 408 to a body not complete after this
    store_timeout_s: float = 5.0  # the web answers 503 to an event not committed after this
    poll_seconds: float = 2.0  # PostgreSQL: an idle worker looks this often without a wake-up
    # BRIDGE_TOKEN_KEYS: Fernet keys for OAuth tokens at rest, newest first (bridge.tokens).
    token_keys: tuple[str, ...] = Field(default=(), repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        port = env.get("PORT", "8000")
        if not port.isdigit():
            raise ConfigError(f"PORT must be a number, got {port!r}")
        lease = env.get("BRIDGE_LEASE_SECONDS", "30")
        try:
            lease_seconds = float(lease)
        except ValueError:
            raise ConfigError(f"BRIDGE_LEASE_SECONDS must be a number, got {lease!r}") from None
        if not 1 <= lease_seconds <= 3600:
            raise ConfigError("BRIDGE_LEASE_SECONDS must be between 1 and 3600")
        metrics = env.get("METRICS_PORT", "")
        if metrics and not metrics.isdigit():
            raise ConfigError(f"METRICS_PORT must be a number, got {metrics!r}")
        token = env.get("METRICS_TOKEN", "").strip()
        if token and (len(token) < 16 or not token.isascii() or not token.isprintable()):
            raise ConfigError("METRICS_TOKEN must be at least 16 printable ASCII characters")
        if " " in token:
            raise ConfigError("METRICS_TOKEN must not contain spaces")
        return cls(
            body_timeout_s=_env_seconds(env, "BRIDGE_BODY_TIMEOUT_SECONDS", 10.0),
            store_timeout_s=_env_seconds(env, "BRIDGE_STORE_TIMEOUT_SECONDS", 5.0),
            poll_seconds=_env_seconds(env, "BRIDGE_POLL_SECONDS", 2.0),
            metrics_port=int(metrics) if metrics else None,
            metrics_token=token or None,
            token_keys=tuple(
                key.strip() for key in env.get("BRIDGE_TOKEN_KEYS", "").split(",") if key.strip()
            ),
            database_url=normalize_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            config_path=env.get("BRIDGE_CONFIG") or DEFAULT_CONFIG_PATH,
            port=int(port),
            lease_seconds=lease_seconds,
        )


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    try:
        seconds = float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0.1 <= seconds <= 300:
        raise ConfigError(f"{name} must be between 0.1 and 300 seconds")
    return seconds


def normalize_database_url(url: str) -> str:
    """Heroku writes `postgres://`; SQLAlchemy wants an explicit driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
