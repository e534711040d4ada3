"""Settings from the environment and the validated YAML portals file.

Config flows one way: environment → `Settings` → `load_portals` (secrets resolved, validated) →
passed explicitly into the app, the worker and the CLI. Every error names the portal and the key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_PATH = "config/portals.yaml"
DEFAULT_DATABASE_URL = "sqlite:///bridge.db"
GOOGLE_API_ENDPOINT = "https://www.googleapis.com/calendar/v3/"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Section fields a `mirror.name` template may use.
NAME_FIELDS = ("name", "type", "owner_id", "owner_name", "id")


class OnDelete(StrEnum):
    """What becomes of a calendar whose section is gone or left the selection."""

    DELETE = "delete"
    ARCHIVE = "archive"  # renamed, hidden and unshared, kept in Google
    KEEP = "keep"  # left as it is, no longer mapped


SectionType = Literal["company_calendar", "location", "resource", "group", "user"]


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the portal and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    """Bitrix24's leaky bucket: `burst` requests at once, then `per_second` (Enterprise 250/5)."""

    burst: int = Field(default=50, ge=1)
    per_second: float = Field(default=2.0, gt=0)


class OAuthConfig(_Strict):
    """App mode: the app's credentials; tokens arrive with the install and are kept refreshed."""

    client_id: Annotated[str, Field(min_length=1)]
    client_secret: Annotated[str, Field(min_length=1)]
    token_url: str = "https://oauth.bitrix.info/oauth/token/"
    server_endpoint: str = "https://oauth.bitrix.info/rest/"

    @field_validator("token_url", "server_endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") + "/"


class BitrixConfig(_Strict):
    webhook_url: str | None = None
    oauth: OAuthConfig | None = None
    rest_url: str | None = None  # app mode: the portal's REST base; default https://<domain>/rest/
    delivery: Literal["online", "offline"] = "online"
    offline_poll_seconds: float = Field(default=30, gt=0)
    handler_url: str | None = None  # public URL of /bitrix/events: bind events on install
    timeout_s: float = Field(default=10.0, gt=0)
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    @model_validator(mode="after")
    def _one_auth_mode(self) -> BitrixConfig:
        if (self.webhook_url is None) == (self.oauth is None):
            raise ValueError("set exactly one of webhook_url (incoming webhook) and oauth (app)")
        if self.delivery == "offline" and self.oauth is None:
            raise ValueError("delivery: offline needs oauth (offline events are for apps only)")
        return self

    @field_validator("rest_url", "handler_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
        ):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        segments = [s for s in parts.path.split("/") if s]
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        if len(segments) < 3 or segments[-3] != "rest" or not segments[-2].isdigit():
            raise ValueError("must have the form https://<portal>/rest/<user_id>/<code>/")
        return value.rstrip("/") + "/"


class CreationPace(_Strict):
    """At most `calendars` new calendars per owner in any `minutes` (Google's abuse limit is
    about 60 "in a short period", then read-only for hours)."""

    calendars: int = Field(default=30, ge=1)
    minutes: float = Field(default=60, gt=0)


class ReadOnlyProbe(_Strict):
    """Google's read-only mode (403 quotaExceeded) lasts minutes to hours: one write per owner
    probes it after `first_minutes`, the wait doubling on every refusal up to `max_minutes`."""

    first_minutes: float = Field(default=5, gt=0)
    max_minutes: float = Field(default=120, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ReadOnlyProbe:
        if self.max_minutes < self.first_minutes:
            raise ValueError("max_minutes must not be less than first_minutes")
        return self


class GoogleConfig(_Strict):
    service_account: str
    subject: str
    api_endpoint: str = GOOGLE_API_ENDPOINT
    time_zone: str = "UTC"
    timeout_s: float = Field(default=20.0, gt=0)
    creation_pace: CreationPace = Field(default_factory=CreationPace)
    requests_per_minute: int = Field(default=500, ge=1, le=10_000)
    read_only_probe: ReadOnlyProbe = Field(default_factory=ReadOnlyProbe)

    @field_validator("service_account")
    @classmethod
    def _key_json(cls, value: str) -> str:
        text = value.strip()
        if not text.startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise ValueError("is neither service-account JSON nor a readable file path")
            text = path.read_text(encoding="utf-8")
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON ({exc.msg})") from None
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if missing:
            raise ValueError(f"service-account JSON lacks {', '.join(missing)}")
        return text

    @field_validator("subject")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("must be the e-mail of the Workspace user who owns the calendars")
        return value

    @field_validator("api_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") + "/"

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    def service_account_info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads(self.service_account)
        return info


OwnerSelection = Literal["all"] | list[Annotated[int, Field(gt=0)]]


class ShareRule(_Strict):
    """One Google ACL rule the bridge keeps on every mirrored calendar."""

    scope: Literal["user", "group", "domain", "default"]
    value: str | None = None
    role: Literal["freeBusyReader", "reader", "writerWithoutPrivateAccess", "writer", "owner"]

    @model_validator(mode="after")
    def _value_fits_scope(self) -> ShareRule:
        if self.scope == "default" and self.value:
            raise ValueError("scope default takes no value")
        if self.scope != "default" and not self.value:
            raise ValueError(f"scope {self.scope} needs a value (an e-mail or a domain)")
        return self

    @property
    def rule_id(self) -> str:
        """Google's id for the rule: `type:value`, or `default`."""
        return (
            "default" if self.scope == "default" else f"{self.scope}:{(self.value or '').lower()}"
        )


class DeleteGuard(_Strict):
    """How many of a portal's calendars may be deleted or archived within a rolling window
    without `sync --force`: `max_share` of them, but at least `min_count` (so a hand deletion
    on a small portal goes through) and at most `max_count` (so a large portal is not emptied
    a quarter at a time). `bridge.mirror.removal_limit` is the rule."""

    window_hours: float = Field(default=24, gt=0)
    min_count: int = Field(default=3, ge=0)
    max_count: int = Field(default=50, ge=0)
    max_share: float = Field(default=0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> DeleteGuard:
        if self.min_count > self.max_count:
            raise ValueError(
                f"min_count ({self.min_count}) is more than max_count ({self.max_count}): "
                "min_count is the number of removals always allowed in the window, max_count "
                "the most ever allowed"
            )
        return self


class MirrorConfig(_Strict):
    company: bool = True
    resources: bool = True
    locations: bool = True
    groups: OwnerSelection = Field(default_factory=list)
    users: OwnerSelection = Field(default_factory=list)
    name: str = "{name}"
    on_delete: OnDelete = OnDelete.DELETE
    share: list[ShareRule] = Field(default_factory=list)
    share_by_type: dict[SectionType, list[ShareRule]] = Field(default_factory=dict)
    share_notifications: bool = False
    include_google_synced: bool = False
    reconcile_interval_minutes: float = Field(default=15, ge=0)  # 0 turns it off
    delete_guard: DeleteGuard = Field(default_factory=DeleteGuard)

    def share_for(self, section_type: str) -> list[ShareRule]:
        for kind, rules in self.share_by_type.items():
            if kind == section_type:
                return rules
        return self.share

    @field_validator("name")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format_map({f: "x" for f in NAME_FIELDS})
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"template {value!r} is invalid ({exc}); fields: {', '.join(NAME_FIELDS)}"
            ) from None
        return value


class NotifyConfig(_Strict):
    """Where alerts go: parked work, failing credentials, a tripped mass-delete guard."""

    bitrix_users: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    webhook_url: str | None = None  # Slack-compatible: a JSON body with "text"
    every_minutes: float = Field(default=60, gt=0)  # one message per cause per this long

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value


class PortalConfig(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
    member_id: Annotated[str, Field(min_length=1, max_length=64)]
    domain: str
    # The outgoing webhook's token (required with webhook_url); in app mode the install brings it.
    application_token: Annotated[str, Field(min_length=8)] | None = None
    bitrix: BitrixConfig
    google: GoogleConfig
    mirror: MirrorConfig = Field(default_factory=MirrorConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @model_validator(mode="after")
    def _token_for_webhooks(self) -> PortalConfig:
        if self.bitrix.webhook_url and not self.application_token:
            raise ValueError("application_token is required with bitrix.webhook_url")
        return self

    @property
    def app_mode(self) -> bool:
        return self.bitrix.oauth is not None

    @property
    def rest_base(self) -> str:
        """Where the portal's REST API lives: events must name exactly this client_endpoint."""
        if self.bitrix.webhook_url:
            parts = urlsplit(self.bitrix.webhook_url)
            return f"{parts.scheme}://{parts.netloc}/rest/"
        return (self.bitrix.rest_url or f"https://{self.domain}/rest/").rstrip("/") + "/"

    @property
    def server_endpoint(self) -> str:
        oauth = self.bitrix.oauth
        return (
            oauth.server_endpoint if oauth else OAuthConfig.model_fields["server_endpoint"].default
        )

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        values = [self.application_token or ""]
        if self.bitrix.webhook_url:
            values += [
                self.bitrix.webhook_url,
                self.bitrix.webhook_url.rstrip("/").rsplit("/", 1)[-1],
            ]
        if self.bitrix.oauth:
            values.append(self.bitrix.oauth.client_secret)
        if self.notify.webhook_url:
            values.append(self.notify.webhook_url)
        key = self.google.service_account_info().get("private_key", "")
        return [*values, *str(key).splitlines()[1:-1]]

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if "/" in value or not value:
            raise ValueError("must be a bare host name such as acme.bitrix24.com")
        return value.lower()


class PortalsFile(_Strict):
    portals: list[PortalConfig]

    @model_validator(mode="after")
    def _unique(self) -> PortalsFile:
        for field in ("key", "member_id"):
            seen: set[str] = set()
            for portal in self.portals:
                value = getattr(portal, field)
                if value in seen:
                    raise ValueError(f"portal {portal.key}: {field} {value!r} is used twice")
                seen.add(value)
        return self


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
