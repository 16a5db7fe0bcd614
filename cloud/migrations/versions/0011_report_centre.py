"""The report centre (issue 11): a daily rollup's energy and charges split by time-of-use band
(sharp, peak, flat, valley, deep valley, and ``single`` for energy rated at one price or not
rated at all), with the time of the day's last reading (the next day's first interval starts
there); an alarm's acknowledgement (处理: who, when, the note) while it stays active until its
cause clears; an index for the alarm history's date filter.

Revision ID: 0011_report_centre
Revises: 0010_meter_swaps
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_report_centre"
down_revision = "0010_meter_swaps"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BANDS = ("sharp", "peak", "flat", "valley", "deep_valley", "single")


def upgrade() -> None:
    with op.batch_alter_table("daily_rollups") as t:
        t.add_column(sa.Column("last_reading_ts", BigId, nullable=True))
        for band in BANDS:  # as cloud.models.base.money(): BIGINT, not null, 0
            t.add_column(
                sa.Column(f"{band}_wh", sa.BigInteger(), nullable=False, server_default="0")
            )
            t.add_column(
                sa.Column(f"{band}_micro_yuan", sa.BigInteger(), nullable=False, server_default="0")
            )
    with op.batch_alter_table("alarms") as t:
        t.add_column(sa.Column("ack_ts", BigId, nullable=True))
        t.add_column(sa.Column("ack_by", sa.String(64), nullable=True))
        t.add_column(sa.Column("ack_note", sa.String(500), nullable=True))
    op.create_index("ix_alarms_raised_ts", "alarms", ["raised_ts"])


def downgrade() -> None:
    op.drop_index("ix_alarms_raised_ts", table_name="alarms")
    with op.batch_alter_table("alarms") as t:
        t.drop_column("ack_note")
        t.drop_column("ack_by")
        t.drop_column("ack_ts")
    with op.batch_alter_table("daily_rollups") as t:
        for band in reversed(BANDS):
            t.drop_column(f"{band}_micro_yuan")
            t.drop_column(f"{band}_wh")
        t.drop_column("last_reading_ts")
