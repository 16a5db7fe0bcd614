"""Daily totals per building (place_rollups): the sum of a day's meter rollups of each building
of a site (building_id 0: meters in no building), written by the rollup job beside the meter
rollups, so a site's or a building's year of energy is a few thousand rows to read instead of a
row per meter per day (the report centre, issue 11: p99 ≤ 500 ms for a yearly analysis of 1,000
meters). Filled here from the rollups that exist, by the building each meter is in now.

Revision ID: 0013_place_rollups
Revises: 0012_order_refunded_ts
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_place_rollups"
down_revision = "0012_order_refunded_ts"
branch_labels = None
depends_on = None

BANDS = ("sharp", "peak", "flat", "valley", "deep_valley", "single")
SUMS = (
    "energy_wh",
    "charge_micro_yuan",
    *(f"{b}_{u}" for b in BANDS for u in ("wh", "micro_yuan")),
)


def upgrade() -> None:
    op.create_table(
        "place_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("meters", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("readings", sa.BigInteger(), nullable=False, server_default="0"),
        *(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in SUMS),
        sa.Column(
            "updated_ts", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_place_rollups")),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_place_rollups_site_id_sites")
        ),
        sa.UniqueConstraint(
            "site_id", "building_id", "day", name=op.f("uq_place_rollups_site_id_building_id_day")
        ),
    )
    op.create_index("ix_place_rollups_day", "place_rollups", ["day"])
    sums = ", ".join(f"SUM(r.{name})" for name in SUMS)
    names = ", ".join(SUMS)
    op.execute(
        f"""
        INSERT INTO place_rollups (site_id, building_id, day, meters, readings, {names}, updated_ts)
        SELECT g.site_id, COALESCE(f.building_id, 0), r.day, COUNT(*), SUM(r.readings), {sums}, 0
        FROM daily_rollups r
        JOIN meters m ON m.id = r.meter_id
        JOIN gateways g ON g.id = m.gateway_id
        LEFT JOIN units u ON u.id = m.unit_id
        LEFT JOIN floors f ON f.id = u.floor_id
        GROUP BY g.site_id, COALESCE(f.building_id, 0), r.day
        """
    )


def downgrade() -> None:
    op.drop_index("ix_place_rollups_day", table_name="place_rollups")
    op.drop_table("place_rollups")
