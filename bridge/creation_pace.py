"""Calendar creations paced per owner (the Google `subject`), counted in the database so every
worker shares the count: more than about 60 new calendars in a short period puts the owner in
read-only mode for hours. `apply.py` reserves a creation before each insert, in the transaction
that writes the mapping row it is for; the queue retries a paced action at
`CreationPaced.retry_at`. Reservations for one owner are made one at a time: on PostgreSQL a
transaction-scoped advisory lock on the owner, taken before counting, holds the next one back until
this one commits (SQLite has one writer at a time anyway), so concurrent syncs and workers never
count the same room twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, insert, text
from sqlmodel import Session, col, func, select

from bridge.google_errors import GoogleError
from bridge.models import CalendarCreation, utcnow


class CreationPaced(GoogleError):
    """The owner has created as many calendars as the pace allows; try again at `retry_at`."""

    def __init__(self, subject: str, retry_at: datetime, limit: int, window: timedelta) -> None:
        minutes = window.total_seconds() / 60
        super().__init__(
            f"{subject} created {limit} calendars in the last {minutes:g} minutes, the configured "
            f"pace; the next one waits until {retry_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        self.retry_at = retry_at


def reserve_creation(session: Session, subject: str, limit: int, window: timedelta) -> None:
    """Record one calendar creation by `subject` in `session` (committed by the caller), or
    raise CreationPaced if over the pace."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_OWNER_LOCK, {"subject": subject})
    now = utcnow()
    recent = connection.execute(_RECENT, {"subject": subject, "since": now - window}).one()
    count, oldest = int(recent[0]), recent[1]
    if count >= limit:
        raise CreationPaced(subject, (oldest or now) + window, limit, window)
    connection.execute(_RESERVE, {"subject": subject, "created_at": now})


def creation_room(engine: Engine, subject: str, limit: int, window: timedelta) -> int:
    """How many calendars `subject` may create now, as the pace stands."""
    since = utcnow() - window
    with engine.connect() as connection:
        recent = connection.execute(_RECENT, {"subject": subject, "since": since}).one()
    return max(0, limit - int(recent[0]))


# Built once: building a statement costs more than running it.
_RECENT = select(func.count(), func.min(CalendarCreation.created_at)).where(
    col(CalendarCreation.subject) == bindparam("subject"),
    col(CalendarCreation.created_at) > bindparam("since"),
)
_RESERVE = insert(CalendarCreation)
_OWNER_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('bridge creation pace ' || :subject))")
