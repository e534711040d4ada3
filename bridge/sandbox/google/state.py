"""Everything the Google emulator remembers, the lock that guards it and its abuse limits.

One `Store` per emulator: `state` is replaced wholesale on reset, while the trusted keys, the
fault counter and the limits survive it. Callers hold `lock` while they read or change `state`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.sandbox.google.wire import (
    JSON,
    ApiError,
    ApiRequest,
    not_found,
    parse_json_or_none,
    quota_exceeded,
)

ROLES = ("none", "freeBusyReader", "reader", "writerWithoutPrivateAccess", "writer", "owner")


class FaultAction(StrEnum):
    ERROR = "error"
    DELAY = "delay"
    COMMIT_THEN_STALL = "commit_then_stall"
    COMMIT_THEN_DROP = "commit_then_drop"
    DROP = "drop"


@dataclass
class Fault:
    id: str
    method: str
    path: str
    count: int
    action: FaultAction
    status: int
    reason: str
    message: str
    domain: str
    seconds: float
    reset: bool

    def matches(self, request: ApiRequest) -> bool:
        return self.method in ("*", request.method) and request.path.startswith(self.path)

    def describe(self) -> JSON:
        return {key: str(value) if key == "action" else value for key, value in vars(self).items()}


@dataclass
class Token:
    user: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class AclRule:
    id: str
    scope_type: str
    scope_value: str | None
    role: str
    etag: str
    send_notifications: bool
    deleted: bool = False

    def render(self) -> JSON:
        scope: JSON = {"type": self.scope_type}
        if self.scope_value is not None:
            scope["value"] = self.scope_value
        role = "none" if self.deleted else self.role
        return {
            "kind": "calendar#aclRule",
            "etag": self.etag,
            "id": self.id,
            "scope": scope,
            "role": role,
        }


@dataclass
class Subscription:
    etag: str
    color_id: str
    hidden: bool = False
    selected: bool = True
    background: str | None = None
    foreground: str | None = None
    summary_override: str | None = None
    default_reminders: list[JSON] = field(default_factory=list)
    notification_settings: JSON | None = None
    deleted: bool = False


@dataclass
class _State:
    calendars: dict[str, JSON] = field(default_factory=dict)
    # calendar id → event id → event; an instance override is stored under its instance id
    events: dict[str, dict[str, JSON]] = field(default_factory=dict)
    acl: dict[str, dict[str, AclRule]] = field(default_factory=dict)
    lists: dict[str, dict[str, Subscription]] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    creations: dict[str, deque[float]] = field(default_factory=dict)
    event_creations: dict[str, deque[float]] = field(default_factory=dict)
    recent_requests: dict[str, deque[float]] = field(default_factory=dict)
    read_only_until: dict[str, float] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[JSON] = field(default_factory=list)
    etag: int = 3_180_000_000_000_000


class Store:
    def __init__(
        self,
        *,
        creation_limit: int,
        creation_window_s: float,
        quota_cooloff_s: float,
        user_rate_per_minute: int,
        event_creation_limit: int,
        event_creation_window_s: float,
    ) -> None:
        self.creation_limit = creation_limit
        self.creation_window_s = creation_window_s
        self.event_creation_limit = event_creation_limit
        self.event_creation_window_s = event_creation_window_s
        self.quota_cooloff_s = quota_cooloff_s
        self.user_rate_per_minute = user_rate_per_minute
        self.lock = threading.Lock()
        self.keys: dict[str, dict[str, rsa.RSAPublicKey]] = {}
        self.state = _State()
        self.fault_ids = 0

    def reset(self) -> None:
        with self.lock:
            self.state = _State()

    def next_etag(self) -> str:
        self.state.etag += 1
        return f'"{self.state.etag}"'

    def is_read_only(self, user: str) -> bool:
        return self.state.read_only_until.get(user, 0.0) > time.monotonic()

    def spend_request_budget(self, user: str) -> None:
        now = time.monotonic()
        recent = self.state.recent_requests.setdefault(user, deque())
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= self.user_rate_per_minute:
            raise ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits")
        recent.append(now)

    def spend_creation_budget(self, user: str) -> None:
        created = self.state.creations.setdefault(user, deque())
        self._spend_abuse_budget(user, created, self.creation_limit, self.creation_window_s)

    def spend_event_creation_budget(self, user: str) -> None:
        # NOTES §7.1: "100,000 events in a short period" → read-only, like too many calendars.
        created = self.state.event_creations.setdefault(user, deque())
        limit, window_s = self.event_creation_limit, self.event_creation_window_s
        self._spend_abuse_budget(user, created, limit, window_s)

    def _spend_abuse_budget(
        self, user: str, created: deque[float], limit: int, window_s: float
    ) -> None:
        now = time.monotonic()
        while created and created[0] <= now - window_s:
            created.popleft()
        if len(created) >= limit:
            self.state.read_only_until[user] = now + self.quota_cooloff_s
            raise quota_exceeded()
        created.append(now)

    def role(self, calendar_id: str, user: str) -> str:
        calendar = self.state.calendars[calendar_id]
        if calendar.get("dataOwner") == user:
            return "owner"
        domain = user.rpartition("@")[2].lower()
        best = "none"
        for rule in self.state.acl.get(calendar_id, {}).values():
            applies = (
                rule.scope_type == "default"
                or (rule.scope_type == "user" and rule.scope_value == user.lower())
                or (rule.scope_type == "domain" and rule.scope_value == domain)
            )
            if applies and not rule.deleted and ROLES.index(rule.role) > ROLES.index(best):
                best = rule.role
        return best

    def calendar_for(self, user: str, calendar_id: str, *, need: str = "freeBusyReader") -> JSON:
        if calendar_id == "primary":
            calendar_id = user
        calendar = self.state.calendars.get(calendar_id)
        if calendar is None:
            raise not_found()
        role = self.role(calendar_id, user)
        if role == "none":
            raise not_found()
        if ROLES.index(role) < ROLES.index(need):
            raise ApiError(403, "forbidden", "Forbidden")
        return calendar

    def log_request(self, request: ApiRequest, user: str | None, status: int | None) -> None:
        self.state.log.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "user": user,
                "status": status,
                "body": parse_json_or_none(request.body),
                "in_batch": request.in_batch,
                "t": time.time(),
            }
        )
