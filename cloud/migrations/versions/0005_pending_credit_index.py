"""The credits still pending on a meter, indexed: a sale checks the hoarding cap against the
mirror balance plus the sum of the meter's pending sales and transfers-in. Without this index
PostgreSQL finds the pending rows through the status index and filters them by meter, so the
sum reads every pending credit of the whole park (thousands while collectors are unreachable,
or while a bridge is down) for every sale; a partial index on the pending rows per meter,
carrying the amount, reads only the meter's own (bench cloud measures both).

Revision ID: 0005_pending_credit_index
Revises: 0004_input_limits
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_pending_credit_index"
down_revision = "0004_input_limits"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    for table in ("sales", "transfers_in"):
        op.create_index(
            f"ix_{table}_pending_meter",
            table,
            ["meter_id", "amount_micro_yuan"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )


def downgrade() -> None:
    for table in ("sales", "transfers_in"):
        op.drop_index(f"ix_{table}_pending_meter", table_name=table)
