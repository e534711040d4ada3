"""All tables in one module (SQLModel's advice: no circular imports). Alembic owns the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Enum,
    Index,
    MetaData,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from bridge.calendars import MappingState as MappingState

# Stable constraint names on SQLite and PostgreSQL alike.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _state_type(states: type[StrEnum]) -> Enum:
    """Stored as the lower-case value in a plain VARCHAR, readable in SQL on both databases."""
    return Enum(
        states,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


def _timestamp(*, index: bool = False, nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), index=index, nullable=nullable)


class InboxState(StrEnum):
    PENDING = "pending"  # waiting for the worker (maybe after a backoff)
    WORKING = "working"  # taken by the worker holding the portal's lease
    DONE = "done"  # applied to Google
    SKIPPED = "skipped"  # the section is outside the portal's selection
    IGNORED = "ignored"  # an event the bridge does not handle
    PARKED = "parked"  # failed for good, or out of attempts; replayable


class InboxEvent(SQLModel, table=True):
    """One accepted Bitrix24 delivery: the durable copy, the audit log and the work queue."""

    __tablename__ = "inbox_event"
    __table_args__ = (
        # Re-deliveries collapse only while the first copy waits: once the worker has taken it,
        # the same body may report a newer change (Bitrix24's `ts` has one-second resolution).
        Index(
            "uq_inbox_event_pending",
            "portal_key",
            "dedup_key",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_inbox_event_due", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    portal_key: str = Field(max_length=40, index=True)
    event: str = Field(max_length=64)
    section_id: str | None = Field(default=None, max_length=20)
    entry_id: str | None = Field(default=None, max_length=20)  # set for the entry events
    dedup_key: str = Field(max_length=64)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    state: InboxState = Field(default=InboxState.PENDING, sa_type=_state_type(InboxState))
    attempts: int = 0
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    finished_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class CalendarMapping(SQLModel, table=True):
    """Which Google calendar mirrors which Bitrix24 section, and what was last applied to it."""

    __tablename__ = "calendar_mapping"
    __table_args__ = (UniqueConstraint("portal_key", "section_id"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_key: str = Field(max_length=40)
    section_id: str = Field(max_length=20)
    section_type: str = Field(max_length=40)
    owner_id: str = Field(max_length=20)
    state: MappingState = Field(default=MappingState.CREATING, sa_type=_state_type(MappingState))
    nonce: str = Field(max_length=32)
    google_calendar_id: str | None = Field(default=None, max_length=255)
    # What was last applied to Google (JSON of `calendar_state.CalendarState`), to skip no-op calls.
    applied: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class EntryState(StrEnum):
    ACTIVE = "active"  # the Google event mirrors the entry
    CLOSED = "closed"  # the entry is gone (or left the mirror) and its Google event deleted


class EntryMapping(SQLModel, table=True):
    """Which Google event mirrors which Bitrix24 calendar entry, and what was last applied.

    The Google event id is derived from the portal and the entry id, so it is known before the
    insert: a retried insert whose first answer was lost meets `409 duplicate`, never a twin.
    """

    __tablename__ = "entry_mapping"
    __table_args__ = (
        UniqueConstraint("portal_key", "entry_id"),
        Index("ix_entry_mapping_section", "portal_key", "section_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    portal_key: str = Field(max_length=40)
    entry_id: str = Field(max_length=20)
    section_id: str = Field(max_length=20)  # the section whose calendar holds the event
    google_calendar_id: str = Field(max_length=255)
    google_event_id: str = Field(max_length=255)  # an instance id for an edited occurrence
    state: EntryState = Field(default=EntryState.ACTIVE, sa_type=_state_type(EntryState))
    version: str | None = Field(default=None, max_length=20)  # the entry's VERSION when applied
    # A digest of the event body last applied to Google, to skip no-op writes.
    applied: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class PortalState(SQLModel, table=True):
    """Per portal: the worker lease (one drainer at a time; an expired lease may be taken over)
    and the last reconciliation."""

    __tablename__ = "portal_state"

    portal_key: str = Field(primary_key=True, max_length=40)
    holder: str | None = Field(default=None, max_length=80)
    expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    lease_version: int = 0  # the fencing token: bumped whenever the lease changes hands
    reconciled_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    reconcile_outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    credential_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # An offline-queue batch reserved but not yet cleared: re-read it first after a crash.
    offline_process_id: str | None = Field(default=None, max_length=64)
    credential_error_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # App mode, offline delivery: "extended" (reserve, then clear) or "basic" (delete on read),
    # from the plan's `rest_offline_extended` feature, checked once and kept here.
    offline_mode: str | None = Field(default=None, max_length=16)
    # Basic mode: a delete-on-read began here and its records are not in the inbox yet; a portal
    # left with it is reconciled before the next pull (`bridge.offline`).
    offline_read_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    # Entries: when the first full backfill of the window finished (until then a reconciliation
    # shows it as a backfill), and the portal's date format as learned from its entries.
    entries_backfilled_at: datetime | None = Field(
        default=None, sa_column=_timestamp(nullable=True)
    )
    entry_date_format: str | None = Field(default=None, max_length=16)


class PortalAddress(SQLModel, table=True):
    """An address a portal's events or REST answers named that the config does not imply
    (another domain, REST host or OAuth server, or where REST moved to), reported once."""

    __tablename__ = "portal_address"

    portal_key: str = Field(primary_key=True, max_length=40)
    kind: str = Field(primary_key=True, max_length=32)  # domain, client_endpoint, …
    value: str = Field(primary_key=True, max_length=255)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    reported_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class OwnerQuota(SQLModel, table=True):
    """A Google owner in read-only mode (403 quotaExceeded): one probing write is allowed at
    `probe_at`; each refusal doubles `interval_s` up to two hours."""

    __tablename__ = "owner_quota"

    subject: str = Field(primary_key=True, max_length=255)
    blocked_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    probe_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    interval_s: float = 300.0


class CalendarCreation(SQLModel, table=True):
    """One `calendars.insert` by an owner: the creation pace is counted across all workers."""

    __tablename__ = "calendar_creation"
    __table_args__ = (Index("ix_calendar_creation_subject_at", "subject", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class Notification(SQLModel, table=True):
    """When an alert of one cause last went out for a portal: at most one an hour, any worker."""

    __tablename__ = "notification"

    portal_key: str = Field(primary_key=True, max_length=40)
    cause: str = Field(primary_key=True, max_length=64)
    sent_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class PortalCredentials(SQLModel, table=True):
    """App mode: what the install delivered, kept current by refreshes (the refresh token
    rotates on every refresh, so this row is the only valid copy)."""

    __tablename__ = "portal_credentials"

    portal_key: str = Field(primary_key=True, max_length=40)
    # Tokens are stored encrypted (Fernet text, longer than the token): hence Text.
    access_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    refresh_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    application_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    installed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    uninstalled_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    refreshed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    refresh_count: int = 0
    problem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class PendingInstall(SQLModel, table=True):
    """App mode: an install as it arrived, trusted for nothing until the worker has verified it
    against the configured Bitrix24 servers; then it replaces the live install."""

    __tablename__ = "pending_install"

    id: int | None = Field(default=None, primary_key=True)
    portal_key: str = Field(max_length=40, index=True)
    access_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    refresh_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    application_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    expires_in: int | None = None
    received_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    verified_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    problem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CalendarRemoval(SQLModel, table=True):
    """One calendar a portal's run deleted or archived: the mass-delete guard counts these over
    a rolling window, across workers, the event path and `sync`."""

    __tablename__ = "calendar_removal"
    __table_args__ = (Index("ix_calendar_removal_portal_at", "portal_key", "removed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_key: str = Field(max_length=40)
    section_id: str = Field(max_length=20)
    removed_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
