"""Meter swaps (B06): a tenant's old meter closed and its balance moved to a new meter of the
same account (cloud/models/swaps.py).

Revision ID: 0010_meter_swaps
Revises: 0009_bridge_ownership
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_meter_swaps"
down_revision = "0009_bridge_ownership"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "meter_swaps",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("old_meter_id", sa.String(64), nullable=False),
        sa.Column("new_meter_id", sa.String(64), nullable=False),
        sa.Column("settlement_id", BigId, nullable=True),
        sa.Column("transfer_in_id", BigId, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("final_energy_wh", BigId, nullable=True),
        sa.Column("price_micro_yuan_per_kwh", BigId, nullable=True),
        sa.Column("unmetered_energy_wh", BigId, nullable=True),
        sa.Column("unmetered_charge_micro_yuan", BigId, nullable=True),
        sa.Column("settled_balance_micro_yuan", BigId, nullable=True),
        sa.Column("moved_micro_yuan", BigId, nullable=True),
        sa.Column("debt_owed_micro_yuan", BigId, nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("settled_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_meter_swaps_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["old_meter_id"], ["meters.id"], name=op.f("fk_meter_swaps_old_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["new_meter_id"], ["meters.id"], name=op.f("fk_meter_swaps_new_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_meter_swaps_settlement_id_settlements"),
        ),
        sa.ForeignKeyConstraint(
            ["transfer_in_id"],
            ["transfers_in.id"],
            name=op.f("fk_meter_swaps_transfer_in_id_transfers_in"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_meter_swaps_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_swaps")),
    )
    for column in ("account_id", "old_meter_id", "new_meter_id", "settlement_id"):
        op.create_index(op.f(f"ix_meter_swaps_{column}"), "meter_swaps", [column])


def downgrade() -> None:
    for column in ("account_id", "old_meter_id", "new_meter_id", "settlement_id"):
        op.drop_index(op.f(f"ix_meter_swaps_{column}"), table_name="meter_swaps")
    op.drop_table("meter_swaps")
