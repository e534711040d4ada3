"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 22:55:48.452688
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('calendar_creation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_creation'))
    )
    with op.batch_alter_table('calendar_creation', schema=None) as batch_op:
        batch_op.create_index('ix_calendar_creation_subject_at', ['subject', 'created_at'], unique=False)

    op.create_table('calendar_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('section_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('section_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('owner_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('state', sa.Enum('creating', 'active', 'archived', name='mappingstate', native_enum=False, length=16), nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('google_calendar_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('applied', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_mapping')),
    sa.UniqueConstraint('portal_key', 'section_id', name=op.f('uq_calendar_mapping_portal_key_section_id'))
    )
    op.create_table('inbox_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('section_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('dedup_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'working', 'done', 'skipped', 'ignored', 'parked', name='inboxstate', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_event'))
    )
    with op.batch_alter_table('inbox_event', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_event_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_event_portal_key'), ['portal_key'], unique=False)
        batch_op.create_index('uq_inbox_event_pending', ['portal_key', 'dedup_key'], unique=True, sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'"))

    op.create_table('notification',
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('cause', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('portal_key', 'cause', name=op.f('pk_notification'))
    )
    op.create_table('portal_credentials',
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('access_token', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('refresh_token', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('application_token', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('installed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('uninstalled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refresh_count', sa.Integer(), nullable=False),
    sa.Column('problem', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('portal_key', name=op.f('pk_portal_credentials'))
    )
    op.create_table('portal_state',
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_version', sa.Integer(), nullable=False),
    sa.Column('reconciled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reconcile_outcome', sa.Text(), nullable=True),
    sa.Column('credential_error', sa.Text(), nullable=True),
    sa.Column('offline_process_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('credential_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('portal_key', name=op.f('pk_portal_state'))
    )



def downgrade() -> None:

    op.drop_table('portal_state')
    op.drop_table('portal_credentials')
    op.drop_table('notification')
    with op.batch_alter_table('inbox_event', schema=None) as batch_op:
        batch_op.drop_index('uq_inbox_event_pending', sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_inbox_event_portal_key'))
        batch_op.drop_index('ix_inbox_event_due')

    op.drop_table('inbox_event')
    op.drop_table('calendar_mapping')
    with op.batch_alter_table('calendar_creation', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_creation_subject_at')

    op.drop_table('calendar_creation')

