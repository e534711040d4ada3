"""inbox wake-up: PostgreSQL notifies the workers from the INSERT that adds waiting rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 14:20:00.000000

The web process's group commit was BEGIN, INSERT, `SELECT pg_notify(...)`, COMMIT: a statement
trigger with a transition table sends the notifications inside the INSERT, so a group costs the
three round trips of the plain write (`bridge.wakeups`). SQLite has no notifications: nothing to
do there.
"""
from __future__ import annotations

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# The channel is `bridge.wakeups.CHANNEL`; a notification is delivered when the transaction
# commits, and identical ones in a transaction are delivered once.
_FUNCTION = """
CREATE FUNCTION bridge_inbox_wakeup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bridge_inbox', waiting.portal_key)
    FROM (SELECT DISTINCT portal_key FROM inserted WHERE state = 'pending') AS waiting;
    RETURN NULL;
END
$$
"""
_TRIGGER = """
CREATE TRIGGER inbox_event_wakeup AFTER INSERT ON inbox_event
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION bridge_inbox_wakeup()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP TRIGGER IF EXISTS inbox_event_wakeup ON inbox_event')
    op.execute('DROP FUNCTION IF EXISTS bridge_inbox_wakeup()')
