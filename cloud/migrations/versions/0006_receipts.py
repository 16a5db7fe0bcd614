"""Receipts (小票 / 收据) of money documents: what the counter knew when the document was made
(balance before and after, tendered and change, the reason of a refund or reversal) and how
often it was printed (a print after the first is a reprint, 补打). One row per document
(kind + record id); the document number itself is the record's ``receipt_no``.

Revision ID: 0006_receipts
Revises: 0005_pending_credit_index
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_receipts"
down_revision = "0005_pending_credit_index"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("meter_id", sa.String(64), nullable=True),
        sa.Column("balance_before_micro_yuan", sa.BigInteger(), nullable=True),
        sa.Column("balance_after_micro_yuan", sa.BigInteger(), nullable=True),
        sa.Column("purchase_count", sa.BigInteger(), nullable=True),
        sa.Column("tendered_micro_yuan", sa.BigInteger(), nullable=True),
        sa.Column("change_micro_yuan", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.Column("prints", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_printed_ts", sa.BigInteger(), nullable=True),
        sa.Column("operator_id", sa.BigInteger(), nullable=True),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_receipts_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("kind", "record_id", name=op.f("uq_receipts_kind_record_id")),
    )


def downgrade() -> None:
    op.drop_table("receipts")
