"""Tenant sign-in on the phone site (issue 12): one row per (site, unit number, phone) that
asked for a one-time code, holding the code's salted hash and expiry, the send rate, the wrong
tries and the pause they cause, and the session epoch (signing out ends every older cookie).

Revision ID: 0007_tenant_logins
Revises: 0006_receipts
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_tenant_logins"
down_revision = "0006_receipts"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenant_logins",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("unit_number", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("code_salt", sa.String(32), nullable=False, server_default=""),
        sa.Column("code_hash", sa.String(64), nullable=False, server_default=""),
        sa.Column("code_expires_ts", BigId, nullable=True),
        sa.Column("code_sent_ts", BigId, nullable=True),
        sa.Column("sent_day", sa.String(10), nullable=False, server_default=""),
        sa.Column("sent_that_day", BigId, nullable=False, server_default="0"),
        sa.Column("failures", BigId, nullable=False, server_default="0"),
        sa.Column("paused_until_ts", BigId, nullable=True),
        sa.Column("session_epoch", BigId, nullable=False, server_default="0"),
        sa.Column("last_login_ts", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_tenant_logins_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_logins")),
        sa.UniqueConstraint(
            "site_id",
            "unit_number",
            "phone",
            name=op.f("uq_tenant_logins_site_id_unit_number_phone"),
        ),
    )


def downgrade() -> None:
    op.drop_table("tenant_logins")
