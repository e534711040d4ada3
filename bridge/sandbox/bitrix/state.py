"""What the Bitrix24 emulator remembers: portals (their sections, entries, users, groups,
webhooks, apps and knobs), faults, the request log and the delivery queue.

`State` holds every portal plus the fault list, the request log, the id sequence and the
delivery queue, all behind one lock. A portal's parts live beside this module: sections in
`sections.py`, users and groups in `directory.py`, entries in `entries.py`; nothing here
delivers events (`change_events.py` says which deliveries a change causes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.background import BackgroundTask

from bridge.sandbox.bitrix.address import Address, addressed
from bridge.sandbox.bitrix.apps import PortalApps
from bridge.sandbox.bitrix.budget import Budget
from bridge.sandbox.bitrix.delivery import DeliveryJob, DeliveryQueue
from bridge.sandbox.bitrix.directory import user_row
from bridge.sandbox.bitrix.entries import EntryBook
from bridge.sandbox.bitrix.rights import Rights
from bridge.sandbox.bitrix.sections import Section, SectionBook, apply_fields

# Every feature code feature.get documents; a new portal's plan has them all.
PLAN_FEATURES = frozenset({"rest_offline_extended", "rest_auth_connector"})


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
    sections: SectionBook = field(default_factory=SectionBook)  # by id and by (type, owner)
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
    portal.sections.add(section)
    return section
