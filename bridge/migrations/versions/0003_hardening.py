"""hardening: pending installs, encrypted token columns, removals for the rolling delete guard

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 08:35:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_TOKENS = ('access_token', 'refresh_token', 'application_token')


def upgrade() -> None:
    op.create_table('pending_install',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=True),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('application_token', sa.Text(), nullable=True),
    sa.Column('expires_in', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('problem', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_install'))
    )
    with op.batch_alter_table('pending_install', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_install_portal_key'), ['portal_key'], unique=False)

    op.create_table('calendar_removal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('section_id', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_removal'))
    )
    with op.batch_alter_table('calendar_removal', schema=None) as batch_op:
        batch_op.create_index('ix_calendar_removal_portal_at', ['portal_key', 'removed_at'], unique=False)

    with op.batch_alter_table('portal_credentials', schema=None) as batch_op:
        for name in _TOKENS:
            batch_op.alter_column(name, existing_type=sqlmodel.sql.sqltypes.AutoString(length=255), type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('portal_credentials', schema=None) as batch_op:
        for name in _TOKENS:
            batch_op.alter_column(name, existing_type=sa.Text(), type_=sqlmodel.sql.sqltypes.AutoString(length=255), existing_nullable=True)
    with op.batch_alter_table('calendar_removal', schema=None) as batch_op:
        batch_op.drop_index('ix_calendar_removal_portal_at')
    op.drop_table('calendar_removal')
    with op.batch_alter_table('pending_install', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_install_portal_key'))
    op.drop_table('pending_install')
