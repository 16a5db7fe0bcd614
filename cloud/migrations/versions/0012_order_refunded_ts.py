"""When an order's money was given back (payment_orders.refunded_ts): reconciliation matches our
refund against the bill of the day it was made, not the day the order was paid (a refund made
the next morning is on the next day's bill).

Revision ID: 0012_order_refunded_ts
Revises: 0011_report_centre
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_order_refunded_ts"
down_revision = "0011_report_centre"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch:
        batch.add_column(sa.Column("refunded_ts", BigId, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch:
        batch.drop_column("refunded_ts")
