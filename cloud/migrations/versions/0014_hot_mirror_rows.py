"""PostgreSQL: room on every page of ``meters`` and ``gateways`` for the next version of a row
(fillfactor 70), so the updates ingest makes to them at every reading (the meter's mirror, a
collector's replay window) are heap-only (HOT): the new version stays on its page and none of
the tables' indexes is written. Measured with the bench's park (300 collectors, 9,600 meters):
the batch's meter UPDATE 2.5 × faster (1.40–1.75 s → 0.53–0.71 s for 48,000 rows). Pages
written before this keep their old fill until rewritten (``VACUUM FULL``, or in time by
updates); SQLite has no such setting.

Revision ID: 0014_hot_mirror_rows
Revises: 0013_place_rollups
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014_hot_mirror_rows"
down_revision = "0013_place_rollups"
branch_labels = None
depends_on = None

TABLES = ("meters", "gateways")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
