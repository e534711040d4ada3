"""entries: the entry mapping, inbox rows that name an entry, a portal's backfill mark

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('entry_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('section_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('google_calendar_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('google_event_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('state', sa.Enum('active', 'closed', name='entrystate', native_enum=False, length=16), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('applied', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entry_mapping')),
    sa.UniqueConstraint('portal_key', 'entry_id', name=op.f('uq_entry_mapping_portal_key_entry_id')),
    )
    with op.batch_alter_table('entry_mapping', schema=None) as batch_op:
        batch_op.create_index('ix_entry_mapping_section', ['portal_key', 'section_id'], unique=False)

    with op.batch_alter_table('inbox_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entry_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))

    with op.batch_alter_table('portal_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entries_backfilled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('entry_date_format', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('portal_state', schema=None) as batch_op:
        batch_op.drop_column('entry_date_format')
        batch_op.drop_column('entries_backfilled_at')
    with op.batch_alter_table('inbox_event', schema=None) as batch_op:
        batch_op.drop_column('entry_id')
    with op.batch_alter_table('entry_mapping', schema=None) as batch_op:
        batch_op.drop_index('ix_entry_mapping_section')
    op.drop_table('entry_mapping')
