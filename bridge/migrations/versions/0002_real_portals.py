"""real portals: reported addresses, offline mode and open basic reads, Google owners in read-only mode

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 08:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_address',
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('portal_key', 'kind', 'value', name=op.f('pk_portal_address'))
    )
    op.create_table('owner_quota',
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('probe_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interval_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('subject', name=op.f('pk_owner_quota'))
    )
    with op.batch_alter_table('portal_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offline_mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('offline_read_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('portal_state', schema=None) as batch_op:
        batch_op.drop_column('offline_read_at')
        batch_op.drop_column('offline_mode')
    op.drop_table('owner_quota')
    op.drop_table('portal_address')
