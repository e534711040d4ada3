"""What the Bitrix24 emulator remembers: portals, their sections, entries, users, groups, webhooks.

`State` holds every portal plus the fault list, the request log, the id sequence and the
delivery queue, all behind one lock. Section changes made here never deliver events themselves;
`section_events` (and `entry_events` for calendar entries, `entries.py`) says which deliveries a
change causes and the caller queues them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from starlette.background import BackgroundTask

from bridge.sandbox.bitrix.address import Address, addressed
from bridge.sandbox.bitrix.apps import PortalApps, app_events
from bridge.sandbox.bitrix.budget import Budget
from bridge.sandbox.bitrix.delivery import DeliveryJob, DeliveryQueue
from bridge.sandbox.bitrix.entries import EntryBook
from bridge.sandbox.bitrix.rights import Rights
from bridge.sandbox.bitrix.values import as_bool, as_int, as_text

_SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"
# Every feature code feature.get documents; a new portal's plan has them all.
PLAN_FEATURES = frozenset({"rest_offline_extended", "rest_auth_connector"})


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Section:
    id: int
    cal_type: str
    owner_id: int
    created_by: int
    name: str = ""
    description: str = ""
    color: str = "#9dcf00"
    text_color: str = "#ffffff"
    export_allow: bool = True
    export_set: str = "all"
    gapi_calendar_id: str | None = None
    external_type: str = "local"
    date_create: str = field(default_factory=_now_text)
    timestamp_x: str = field(default_factory=_now_text)
    active: bool = True


@dataclass
class _Bucket:
    burst: int
    drain_per_s: float
    level: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def admit(self) -> bool:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.at) * self.drain_per_s)
        self.at = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


@dataclass(frozen=True)
class Hook:
    id: str
    url: str
    events: frozenset[str]
    application_token: str


@dataclass
class Portal:
    member_id: str
    domain: str
    webhook_user_id: int
    webhook_code: str
    bucket: _Bucket
    sections: dict[int, Section] = field(default_factory=dict)
    next_id: int = 1
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    apps: PortalApps = field(default_factory=PortalApps)
    notifications: list[dict[str, Any]] = field(default_factory=list)  # im.notify.system.add
    address: Address = field(default_factory=Address)  # public address, OAuth server, moves
    rights: Rights = field(default_factory=Rights)  # the webhook's scopes and admin rights
    # The plan's REST features (`feature.get`, api-reference/common/system/feature-get.md);
    # None: a self-hosted portal without a feature check handler.
    features: frozenset[str] | None = PLAN_FEATURES
    budget: Budget = field(default_factory=Budget)  # method time budget (limits.md)
    entries: EntryBook = field(default_factory=EntryBook)  # calendar entries, locale (entries.py)


@dataclass
class Fault:
    id: str
    member_id: str | None
    method: str
    remaining: int | None  # None: until DELETE /_control/faults
    kind: str
    status: int
    error: str
    description: str
    seconds: float


class State:
    def __init__(self, *, deliver_timeout_s: float) -> None:
        self.lock = threading.Lock()
        self.portals: dict[str, Portal] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.sequence = 0
        self.apps: dict[str, str] = {}  # registered apps: client_id -> client_secret
        self.deliveries = DeliveryQueue(timeout_s=deliver_timeout_s)

    def add_portal(
        self,
        *,
        member_id: str,
        domain: str,
        webhook_user_id: int,
        webhook_code: str,
        bucket_burst: int,
        bucket_drain_per_s: float,
    ) -> None:
        with self.lock:
            if member_id in self.portals:
                raise ValueError(f"portal {member_id!r} already exists")
            if any(p.webhook_code == webhook_code for p in self.portals.values()):
                raise ValueError("webhook_code is already used by another portal")
            portal = Portal(
                member_id=member_id,
                domain=domain,
                webhook_user_id=webhook_user_id,
                webhook_code=webhook_code,
                bucket=_Bucket(burst=bucket_burst, drain_per_s=bucket_drain_per_s),
            )
            # A portal always has the user who created the incoming webhook.
            portal.users[webhook_user_id] = user_row({"ID": webhook_user_id, "NAME": "Admin"})
            self.portals[member_id] = portal

    # The methods below expect the caller to hold `lock`.

    def find_webhook_portal(self, user_id: str, code: str) -> Portal | None:
        portal = next((p for p in self.portals.values() if p.webhook_code == code), None)
        if portal is not None and str(portal.webhook_user_id) != user_id:
            return None
        return portal

    def take_fault(self, member_id: str, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.member_id not in (None, member_id) or fault.method not in ("*", method):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    def next_sequence(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    # The methods below take `lock` themselves.

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def background(self, jobs: list[DeliveryJob]) -> BackgroundTask | None:
        if not jobs:
            return None
        with self.lock:  # every delivery names the portal's address and OAuth server as now
            jobs = [self._addressed(job) for job in jobs]
        # Reserved now so that a flush right after the answer waits for these deliveries too.
        ticket = self.deliveries.reserve(len(jobs))
        return BackgroundTask(self.deliveries.enqueue, ticket, list(jobs))

    def _addressed(self, job: DeliveryJob) -> DeliveryJob:
        portal = self.portals.get(job.member_id)
        if portal is None:
            return job
        return replace(job, auth=addressed(portal.address, job.auth))

    def reset(self) -> None:
        with self.lock:
            self.portals.clear()
            self.apps.clear()
            self.faults.clear()
            self.requests.clear()
            self.sequence = 0
        self.deliveries.clear()


# sections


def create_section(
    portal: Portal, cal_type: str, owner_id: int, fields: Mapping[str, Any]
) -> Section:
    section = Section(
        id=portal.next_id,
        cal_type=cal_type,
        owner_id=0 if cal_type == "resource" else owner_id,
        created_by=portal.webhook_user_id,
    )
    portal.next_id += 1
    apply_fields(section, fields)
    portal.sections[section.id] = section
    return section


def apply_fields(section: Section, fields: Mapping[str, Any]) -> None:
    for key in ("name", "description", "color", "text_color", "external_type"):
        if key in fields and fields[key] is not None:
            setattr(section, key, as_text(fields[key]))
    if "gapi_calendar_id" in fields:
        section.gapi_calendar_id = as_text(fields["gapi_calendar_id"]) or None
    export = fields.get("export")
    if isinstance(export, Mapping):
        if "ALLOW" in export:
            section.export_allow = as_bool(export["ALLOW"])
        if "SET" in export:
            section.export_set = as_text(export["SET"])
    section.timestamp_x = _now_text()


def deactivate(section: Section) -> None:
    section.active = False
    section.timestamp_x = _now_text()


def section_events(
    portal: Portal,
    action: str,
    section_id: int,
    base_url: str,
    *,
    user_id: int | None = None,
    connector: str = "",
) -> list[DeliveryJob]:
    """Outgoing-webhook deliveries, then those of installed apps (online and offline)."""
    return _change_events(
        portal, f"ONCALENDARSECTION{action}", section_id, base_url, user_id, connector
    )


def entry_events(
    portal: Portal,
    action: str,
    entry_id: int,
    base_url: str,
    *,
    user_id: int | None = None,
    connector: str = "",
) -> list[DeliveryJob]:
    """ONCALENDARENTRY{ADD,UPDATE,DELETE}: the section events' shape, `data[id]` the entry id
    (api-reference/calendar/calendar-event/events/on-calendar-entry-add.md and siblings)."""
    event = f"ONCALENDARENTRY{action}"
    return _change_events(portal, event, entry_id, base_url, user_id, connector)


def _change_events(
    portal: Portal,
    event: str,
    object_id: int,
    base_url: str,
    user_id: int | None,
    connector: str,
) -> list[DeliveryJob]:
    hooks = [
        DeliveryJob(
            member_id=portal.member_id,
            handler_id=hook.id,
            url=hook.url,
            event=event,
            section_id=object_id,
            auth={
                "domain": portal.domain,
                "client_endpoint": f"{base_url}/rest/",
                "server_endpoint": _SERVER_ENDPOINT,
                "member_id": portal.member_id,
                "application_token": hook.application_token,
            },
        )
        for hook in portal.hooks
        if event in hook.events
    ]
    apps = app_events(
        portal.apps,
        member_id=portal.member_id,
        domain=portal.domain,
        event=event,
        section_id=object_id,
        base_url=base_url,
        user_id=user_id,
        connector=connector,
    )
    return hooks + apps


def section_view(section: Section) -> dict[str, Any]:
    return {
        "ID": str(section.id),
        "NAME": section.name,
        "GAPI_CALENDAR_ID": section.gapi_calendar_id,
        "DESCRIPTION": section.description,
        "COLOR": section.color,
        "TEXT_COLOR": section.text_color,
        "EXPORT": {"ALLOW": section.export_allow},
        "CAL_TYPE": section.cal_type,
        "OWNER_ID": str(section.owner_id),
        "CREATED_BY": str(section.created_by),
        "DATE_CREATE": section.date_create,
        "TIMESTAMP_X": section.timestamp_x,
        "CAL_DAV_CON": None,
        "SYNC_TOKEN": None,
        "PAGE_TOKEN": None,
        "EXTERNAL_TYPE": section.external_type,
        "ACCESS": {"G2": 13, f"U{section.created_by}": 19},
        "IS_COLLAB": False,
        "PERM": {
            "view_time": True,
            "view_title": True,
            "view_full": True,
            "add": True,
            "edit": True,
            "edit_section": True,
            "access": True,
        },
    }


# users and groups


def user_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    user_id = as_int(raw.get("ID"))
    if user_id is None:
        raise ValueError("every user needs a numeric ID")
    row: dict[str, Any] = {
        "ID": str(user_id),
        "ACTIVE": True,
        "NAME": "",
        "LAST_NAME": "",
        "SECOND_NAME": "",
        "EMAIL": f"user{user_id}@example.com",
        "LAST_LOGIN": "",
        "DATE_REGISTER": "2024-01-01T00:00:00+00:00",
        "TIME_ZONE": "",
        "IS_ONLINE": "N",
        "PERSONAL_GENDER": "",
        "PERSONAL_BIRTHDAY": "",
        "WORK_POSITION": "",
        "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": [1],
        "USER_TYPE": "employee",
    }
    row.update({str(key).upper(): value for key, value in raw.items()})
    row["ID"] = str(user_id)
    row["ACTIVE"] = as_bool(row["ACTIVE"])
    return row


def group_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    group_id = as_int(raw.get("ID"))
    if group_id is None:
        raise ValueError("every group needs a numeric ID")
    row: dict[str, Any] = {
        "ID": str(group_id),
        "NAME": f"Group {group_id}",
        "DESCRIPTION": "",
        "ACTIVE": "Y",
        "VISIBLE": "Y",
        "OPENED": "N",
        "CLOSED": "N",
        "PROJECT": "N",
        "TYPE": "group",
        "OWNER_ID": "1",
        "SUBJECT_ID": "1",
        "SITE_ID": "s1",
        "DATE_CREATE": "2024-01-01T00:00:00+00:00",
        "NUMBER_OF_MEMBERS": "1",
    }
    row.update({str(key).upper(): value for key, value in raw.items()})
    row["ID"] = str(group_id)
    for flag in ("ACTIVE", "VISIBLE", "OPENED", "CLOSED", "PROJECT"):
        if isinstance(row[flag], bool):
            row[flag] = "Y" if row[flag] else "N"
    return row
