"""Apps installed on an emulated Bitrix24 portal: OAuth grants, bindings and the offline queue.

An install holds the tokens minted for it, its bindings and its offline queue. `app_events` says
which deliveries and queue writes a section change causes; like `section_events` it never
delivers anything itself. Every function here expects the caller to hold the state lock.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.sandbox.bitrix.delivery import DeliveryJob

OFFLINE_NOTICE = "ONOFFLINEEVENT"
_ALPHABET = string.ascii_lowercase + string.digits


def _new_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


@dataclass
class _Access:
    user_id: int
    expires_at: float


@dataclass(frozen=True)
class _Pair:
    access_token: str
    refresh_token: str
    user_id: int
    expires_at: float
    lifetime_s: int


@dataclass
class Binding:
    id: str
    event: str
    handler: str  # "" for an offline binding
    auth_type: int  # 0: the user who triggered the event
    offline: bool
    connector: str
    min_timeout: float
    last_notice: float | None = None  # monotonic; throttles ONOFFLINEEVENT


@dataclass
class OfflineRecord:
    id: int
    event: str
    message_id: str
    data: dict[str, Any]
    connector: str
    timestamp: float
    process_id: str = ""
    error: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "ID": str(self.id),
            "TIMESTAMP_X": datetime.fromtimestamp(self.timestamp, UTC).isoformat("T", "seconds"),
            "EVENT_NAME": self.event,
            "EVENT_DATA": self.data,
            "EVENT_ADDITIONAL": False,
            "MESSAGE_ID": self.message_id,
            "PROCESS_ID": self.process_id,
            "ERROR": "1" if self.error else "0",
        }


@dataclass
class Install:
    client_id: str
    application_token: str
    handler: str
    user_id: int
    admin: bool
    scope: str
    status: str
    lifetime_s: int
    language_id: str
    version: str
    access: dict[str, _Access] = field(default_factory=dict)
    refresh: dict[str, int] = field(default_factory=dict)  # refresh token -> user id
    bindings: list[Binding] = field(default_factory=list)
    offline: list[OfflineRecord] = field(default_factory=list)
    refresh_count: int = 0
    latest: _Pair | None = None


@dataclass
class PortalApps:
    installs: dict[str, Install] = field(default_factory=dict)
    automation: bool = False  # changes count as made by an automation rule: no tokens in events
    refresh_count: int = 0  # kept across reinstalls
    # Binding ids start apart from outgoing-webhook ids so `event_handler_id` stays unambiguous.
    next_binding: int = 1001
    next_record: int = 1


def mint_pair(install: Install, user_id: int, now: float) -> _Pair:
    pair = _Pair(
        access_token=_new_token(),
        refresh_token=_new_token(),
        user_id=user_id,
        expires_at=now + install.lifetime_s,
        lifetime_s=install.lifetime_s,
    )
    install.access[pair.access_token] = _Access(user_id=user_id, expires_at=pair.expires_at)
    install.refresh[pair.refresh_token] = user_id
    install.latest = pair
    return pair


def oauth_server_endpoint(base_url: str) -> str:
    return f"{base_url}/oauth/rest/"


def app_auth(
    install: Install, pair: _Pair | None, *, member_id: str, domain: str, base_url: str
) -> dict[str, str]:
    """The `auth` block of an app event, in the documented key order; no pair, no tokens."""
    auth: dict[str, str] = {}
    if pair is not None:
        auth.update(
            access_token=pair.access_token, expires_in=str(pair.lifetime_s), scope=install.scope
        )
    auth.update(
        domain=domain, server_endpoint=oauth_server_endpoint(base_url), status=install.status
    )
    auth.update(client_endpoint=f"{base_url}/rest/", member_id=member_id)
    if pair is not None:
        auth["refresh_token"] = pair.refresh_token
    auth["application_token"] = install.application_token
    return auth


def install_event(
    install: Install, pair: _Pair, *, member_id: str, domain: str, base_url: str
) -> list[DeliveryJob]:
    if not install.handler:
        return []
    data = {"VERSION": install.version, "ACTIVE": "Y", "INSTALLED": "Y"}
    data["LANGUAGE_ID"] = install.language_id
    auth = app_auth(install, pair, member_id=member_id, domain=domain, base_url=base_url)
    return [DeliveryJob(member_id, "", install.handler, "ONAPPINSTALL", None, auth, data)]


def uninstall_events(
    install: Install, *, member_id: str, domain: str, base_url: str, clean: bool
) -> list[DeliveryJob]:
    """ONAPPUNINSTALL to the handlers bound for it, and to nobody else: "If such a handler
    exists, Bitrix24 will call this handler" (settings/app-uninstallation.md); the install
    handler is not one (api-reference/common/events/on-app-uninstall.md)."""
    auth = {
        "domain": domain,
        "server_endpoint": oauth_server_endpoint(base_url),
        "client_endpoint": f"{base_url}/rest/",
        "member_id": member_id,
        "application_token": install.application_token,
    }
    data = {"LANGUAGE_ID": install.language_id, "CLEAN": "1" if clean else "0"}
    targets = [
        (b.id, b.handler) for b in install.bindings if b.event == "ONAPPUNINSTALL" and not b.offline
    ]
    return [
        DeliveryJob(member_id, handler_id, url, "ONAPPUNINSTALL", None, auth, data)
        for handler_id, url in targets
    ]


@dataclass
class _EventAuth:
    """The `auth` blocks of one change's app events: one fresh pair per (app, user), minted when
    first needed, and none at all when an automation made the change."""

    apps: PortalApps
    member_id: str
    domain: str
    base_url: str
    user_id: int | None  # who made the change; None: the installing user
    now: float
    pairs: dict[tuple[str, int], _Pair] = field(default_factory=dict)

    def block(self, install: Install, binding: Binding) -> dict[str, str]:
        pair: _Pair | None = None
        if not self.apps.automation:
            owner = binding.auth_type or self.user_id or install.user_id
            key = (install.client_id, owner)
            if key not in self.pairs:
                self.pairs[key] = mint_pair(install, owner, self.now)
            pair = self.pairs[key]
        return app_auth(
            install, pair, member_id=self.member_id, domain=self.domain, base_url=self.base_url
        )


def app_events(
    apps: PortalApps,
    *,
    member_id: str,
    domain: str,
    event: str,
    section_id: int,
    base_url: str,
    user_id: int | None,
    connector: str,
) -> list[DeliveryJob]:
    """Online deliveries and offline-queue writes of one section change, for every install.

    `connector` is the `auth_connector` the change was made with: queues bound with the same
    connector do not get it back.
    """
    now = time.time()
    auth = _EventAuth(apps, member_id, domain, base_url, user_id, now)
    jobs: list[DeliveryJob] = []
    for install in apps.installs.values():
        queued = False
        for binding in install.bindings:
            if binding.event != event:
                continue
            if not binding.offline:
                block = auth.block(install, binding)
                jobs.append(
                    DeliveryJob(member_id, binding.id, binding.handler, event, section_id, block)
                )
            elif not (connector and binding.connector == connector):
                _enqueue(apps, install, event, section_id, binding.connector, now)
                queued = True
        if queued:
            jobs.extend(_offline_notices(install, auth))
    return jobs


def _enqueue(
    apps: PortalApps,
    install: Install,
    event: str,
    section_id: int,
    connector: str,
    now: float,
) -> None:
    # EVENT_DATA is undocumented for calendar events (the examples show `false`). We store the
    # `data` an online handler gets, `{"id": "<section id>"}`, since the sender builds that array
    # once for both kinds of handler [inferred]. MESSAGE_ID names the object, so a record
    # coalesces every change of one (event, section) until a `get` reserves it.
    message_id = hashlib.md5(f"{event}:{section_id}".encode(), usedforsecurity=False).hexdigest()
    data = {"id": str(section_id)}
    for record in install.offline:
        same = record.event == event and record.message_id == message_id
        if same and record.connector == connector and not record.process_id:
            record.timestamp, record.data, record.error = now, data, False
            return
    record = OfflineRecord(apps.next_record, event, message_id, data, connector, now)
    apps.next_record += 1
    install.offline.append(record)


def _offline_notices(install: Install, auth: _EventAuth) -> list[DeliveryJob]:
    # minTimeout > 0: one notice, then silence for that many seconds. minTimeout 0 means one per
    # Bitrix24 hit; the emulator approximates a hit by one section change.
    jobs: list[DeliveryJob] = []
    mono = time.monotonic()
    for binding in install.bindings:
        if binding.event != OFFLINE_NOTICE or binding.offline:
            continue
        last = binding.last_notice
        if binding.min_timeout > 0 and last is not None and mono - last < binding.min_timeout:
            continue
        binding.last_notice = mono
        block = auth.block(install, binding)
        jobs.append(
            DeliveryJob(
                auth.member_id, binding.id, binding.handler, OFFLINE_NOTICE, None, block, {}
            )
        )
    return jobs
