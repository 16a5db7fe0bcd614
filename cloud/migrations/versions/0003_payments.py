"""Self-service payment and reconciliation: payment_orders, payment_notifications,
reconciliation_runs, reconciliation_cases (cloud/models/payments.py).

Revision ID: 0003_payments
Revises: 0002_office_access
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_payments"
down_revision = "0002_office_access"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("out_trade_no", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("trade_no", sa.String(64), nullable=True),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("amount_fen", BigId, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", BigId, nullable=False),
        sa.Column("sale_id", BigId, nullable=True),
        sa.Column("refunded_fen", BigId, nullable=False),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("paid_ts", BigId, nullable=True),
        sa.Column("attempted_ts", BigId, nullable=True),
        sa.Column("credited_ts", BigId, nullable=True),
        sa.Column("closed_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_payment_orders_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payment_orders_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["sales.id"], name=op.f("fk_payment_orders_sale_id_sales")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
        sa.UniqueConstraint("out_trade_no", name=op.f("uq_payment_orders_out_trade_no")),
        sa.UniqueConstraint(
            "provider", "trade_no", name=op.f("uq_payment_orders_provider_trade_no")
        ),
    )
    for column in ("provider", "meter_id", "account_id", "state", "created_ts", "paid_ts"):
        op.create_index(op.f(f"ix_payment_orders_{column}"), "payment_orders", [column])
    op.create_table(
        "payment_notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("out_trade_no", sa.String(32), nullable=True),
        sa.Column("received_ts", BigId, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_notifications")),
    )
    op.create_index(
        op.f("ix_payment_notifications_out_trade_no"), "payment_notifications", ["out_trade_no"]
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("bill_date", sa.String(10), nullable=False),
        sa.Column("run_ts", BigId, nullable=False),
        sa.Column("bill_rows", BigId, nullable=False),
        sa.Column("bill_paid_fen", BigId, nullable=False),
        sa.Column("bill_refunded_fen", BigId, nullable=False),
        sa.Column("orders", BigId, nullable=False),
        sa.Column("cases", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint(
            "provider", "bill_date", name=op.f("uq_reconciliation_runs_provider_bill_date")
        ),
    )
    op.create_table(
        "reconciliation_cases",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("out_trade_no", sa.String(32), nullable=False),
        sa.Column("bill_amount_fen", BigId, nullable=True),
        sa.Column("local_amount_fen", BigId, nullable=True),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(500), nullable=False),
        sa.Column("resolved_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.id"],
            name=op.f("fk_reconciliation_cases_run_id_reconciliation_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_cases")),
    )
    op.create_index(op.f("ix_reconciliation_cases_run_id"), "reconciliation_cases", ["run_id"])
    op.create_index(
        op.f("ix_reconciliation_cases_out_trade_no"), "reconciliation_cases", ["out_trade_no"]
    )


def downgrade() -> None:
    op.drop_table("reconciliation_cases")
    op.drop_table("reconciliation_runs")
    op.drop_table("payment_notifications")
    op.drop_table("payment_orders")
