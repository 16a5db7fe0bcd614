"""Office sign-in and data scope: login lockout and session epoch on operators, an operator's
buildings (data scope; none = the whole park), phone; receipt header and copies in the site
defaults (F13); the audit log searchable by object.

Revision ID: 0002_office_access
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_office_access"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("operators") as t:
        t.add_column(sa.Column("phone", sa.String(32), nullable=False, server_default=""))
        t.add_column(sa.Column("failed_logins", BigId, nullable=False, server_default="0"))
        t.add_column(sa.Column("locked_until_ts", BigId, nullable=True))
        # Bumped by logout, password change and disabling: older session cookies stop working.
        t.add_column(sa.Column("session_epoch", BigId, nullable=False, server_default="0"))
    op.create_table(
        "operator_buildings",
        sa.Column("operator_id", BigId, nullable=False),
        sa.Column("building_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_buildings_operator_id_operators"),
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_operator_buildings_building_id_buildings"),
        ),
        sa.PrimaryKeyConstraint("operator_id", "building_id", name=op.f("pk_operator_buildings")),
    )
    with op.batch_alter_table("site_defaults") as t:
        t.add_column(sa.Column("receipt_header", sa.String(200), nullable=True))
        t.add_column(sa.Column("receipt_copies", BigId, nullable=False, server_default="1"))
    op.create_index(op.f("ix_audit_log_target_id"), "audit_log", ["target_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_target_id"), table_name="audit_log")
    with op.batch_alter_table("site_defaults") as t:
        t.drop_column("receipt_copies")
        t.drop_column("receipt_header")
    op.drop_table("operator_buildings")
    with op.batch_alter_table("operators") as t:
        t.drop_column("session_epoch")
        t.drop_column("locked_until_ts")
        t.drop_column("failed_logins")
        t.drop_column("phone")
