"""One portal of the portals file (`PortalConfig`, with its `notify:` section and what follows from
its settings: app mode, REST base, the secrets to redact) and the file as a whole (`PortalsFile`:
keys and member ids unique)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bridge.config.base import StrictModel
from bridge.config.connections import BitrixConfig, GoogleConfig, OAuthConfig
from bridge.config.mirroring import MirrorConfig


class NotifyConfig(StrictModel):
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


class PortalConfig(StrictModel):
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


class PortalsFile(StrictModel):
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
