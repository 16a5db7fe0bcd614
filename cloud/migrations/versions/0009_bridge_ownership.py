"""Several bridges on one database (issue 15): the live bridges, and per collector which bridge
owns it (applies its uplink, acks it, numbers and sends its downlink). Ownership changes only
under the collector's row lock, so two bridges never apply or number for one collector at once
(docs/architecture.md, "Several bridges"). And per meter, the collector's message id of the
newest money result applied, so a reading the collector sent before that result is not taken
for a ledger mismatch when a resend delivers it late.

Revision ID: 0009_bridge_ownership
Revises: 0008_notify
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_bridge_ownership"
down_revision = "0008_notify"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bridge_members",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(200), nullable=False, server_default=""),
        sa.Column("started_ms", BigId, nullable=False),
        sa.Column("heartbeat_ms", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bridge_members")),
    )
    with op.batch_alter_table("gateways") as t:
        t.add_column(sa.Column("owner", sa.String(128), nullable=True))
        t.add_column(sa.Column("owner_epoch", BigId, nullable=False, server_default="0"))
        t.add_column(sa.Column("owner_ms", BigId, nullable=True))
    with op.batch_alter_table("meters") as t:
        t.add_column(sa.Column("money_result_id", BigId, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meters") as t:
        t.drop_column("money_result_id")
    with op.batch_alter_table("gateways") as t:
        t.drop_column("owner_ms")
        t.drop_column("owner_epoch")
        t.drop_column("owner")
    op.drop_table("bridge_members")
