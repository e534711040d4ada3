"""The `bitrix:` and `google:` sections of a portal: how the bridge reaches each API (auth,
endpoints, timeouts) and how fast it may go (Bitrix24's leaky bucket, Google's creation pace and
read-only probe)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge.config.base import StrictModel

GOOGLE_API_ENDPOINT = "https://www.googleapis.com/calendar/v3/"


class RateLimit(StrictModel):
    """Bitrix24's leaky bucket: `burst` requests at once, then `per_second` (Enterprise 250/5)."""

    burst: int = Field(default=50, ge=1)
    per_second: float = Field(default=2.0, gt=0)


class OAuthConfig(StrictModel):
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


class BitrixConfig(StrictModel):
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


class CreationPace(StrictModel):
    """At most `calendars` new calendars per owner in any `minutes` (Google's abuse limit is
    about 60 "in a short period", then read-only for hours)."""

    calendars: int = Field(default=30, ge=1)
    minutes: float = Field(default=60, gt=0)


class ReadOnlyProbe(StrictModel):
    """Google's read-only mode (403 quotaExceeded) lasts minutes to hours: one write per owner
    probes it after `first_minutes`, the wait doubling on every refusal up to `max_minutes`."""

    first_minutes: float = Field(default=5, gt=0)
    max_minutes: float = Field(default=120, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ReadOnlyProbe:
        if self.max_minutes < self.first_minutes:
            raise ValueError("max_minutes must not be less than first_minutes")
        return self


class GoogleConfig(StrictModel):
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
