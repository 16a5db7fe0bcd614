"""Bad input never reaches the ledger (issue 9): a per-sale maximum and a default hoarding cap in
the site defaults (sensible values out of the box), and each meter's *applied* settings (what its
collector confirmed) kept apart from the desired ones, so a refused command never looks applied.

Revision ID: 0004_input_limits
Revises: 0003_payments
Create Date: 2026-12-02
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004_input_limits"
down_revision = "0003_payments"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The out-of-the-box limits (cloud/control/settings.py documents them): 10,000 yuan per sale,
# 30,000 yuan on a meter.
MAX_SALE_MICRO_YUAN = 10_000 * 1_000_000
HOARDING_CAP_MICRO_YUAN = 30_000 * 1_000_000


def upgrade() -> None:
    with op.batch_alter_table("site_defaults") as t:
        t.add_column(
            sa.Column(
                "max_sale_micro_yuan",
                BigId,
                nullable=False,
                server_default=str(MAX_SALE_MICRO_YUAN),
            )
        )
    # A site without a cap had none because there was no default, not by choice: a sale of a
    # million yuan went through. A site may still clear it (null) on purpose afterwards.
    op.execute(
        sa.text(
            "UPDATE site_defaults SET hoarding_cap_micro_yuan = :cap "
            "WHERE hoarding_cap_micro_yuan IS NULL"
        ).bindparams(cap=HOARDING_CAP_MICRO_YUAN)
    )
    with op.batch_alter_table("meters") as t:
        t.add_column(sa.Column("applied_settings", sa.JSON(), nullable=True))
    # What each collector confirmed so far: the applied settings commands, in order.
    conn = op.get_bind()
    applied: dict[str, dict[str, object]] = {}
    rows = conn.execute(
        sa.text(
            "SELECT meter_id, args FROM commands WHERE op = 'settings' AND meter_id IS NOT NULL "
            "AND status IN ('applied', 'verified') ORDER BY id"
        )
    )
    for meter_id, args in rows:
        values = json.loads(args) if isinstance(args, str) else (args or {})
        merged = applied.setdefault(meter_id, {})
        for name, value in values.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
    meters = sa.table("meters", sa.column("id", sa.String), sa.column("applied_settings", sa.JSON))
    for meter_id, merged in applied.items():
        conn.execute(meters.update().where(meters.c.id == meter_id).values(applied_settings=merged))


def downgrade() -> None:
    with op.batch_alter_table("meters") as t:
        t.drop_column("applied_settings")
    with op.batch_alter_table("site_defaults") as t:
        t.drop_column("max_sale_micro_yuan")
