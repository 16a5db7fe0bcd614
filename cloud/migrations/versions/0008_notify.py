"""Notifications (issue 13): the durable outbox of texts (queued → sending → sent → delivered |
failed, with attempts, the channel, the provider's id and the error), the references delivery
reports are matched on, per-site zh-CN/English templates, tenants' notification numbers, the
notifier's scan positions, and each channel's last health for the office.

Revision ID: 0008_notify
Revises: 0007_tenant_logins
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_notify"
down_revision = "0007_tenant_logins"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notify_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("site_id", sa.String(64), nullable=True),
        sa.Column("meter_id", sa.String(64), nullable=True),
        sa.Column("customer_id", BigId, nullable=True),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False, server_default="zh_CN"),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("attempts", BigId, nullable=False, server_default="0"),
        sa.Column("channel_attempts", BigId, nullable=False, server_default="0"),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("concat_ref", BigId, nullable=True),
        sa.Column("parts", BigId, nullable=False, server_default="0"),
        sa.Column("done_parts", sa.JSON(), nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("resends", BigId, nullable=False, server_default="0"),
        sa.Column("source_ts", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("next_attempt_ts", BigId, nullable=False),
        sa.Column("sending_ts", BigId, nullable=True),
        sa.Column("sent_ts", BigId, nullable=True),
        sa.Column("delivered_ts", BigId, nullable=True),
        sa.Column("finished_ts", BigId, nullable=True),
        sa.Column("updated_ts", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_notify_outbox_key")),
    )
    op.create_index(
        op.f("ix_notify_outbox_state_next_attempt_ts"),
        "notify_outbox",
        ["state", "next_attempt_ts"],
    )
    op.create_index(
        op.f("ix_notify_outbox_recipient_sent_ts"), "notify_outbox", ["recipient", "sent_ts"]
    )
    op.create_index(op.f("ix_notify_outbox_meter_id"), "notify_outbox", ["meter_id"])
    op.create_index(op.f("ix_notify_outbox_customer_id"), "notify_outbox", ["customer_id"])
    op.create_index(op.f("ix_notify_outbox_created_ts"), "notify_outbox", ["created_ts"])
    op.create_table(
        "notify_refs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(200), nullable=False),
        sa.Column("seq", BigId, nullable=False, server_default="1"),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("report_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["notify_outbox.id"],
            name=op.f("fk_notify_refs_message_id_notify_outbox"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_refs")),
    )
    op.create_index(op.f("ix_notify_refs_channel_ref"), "notify_refs", ["channel", "ref"])
    op.create_index(op.f("ix_notify_refs_message_id"), "notify_refs", ["message_id"])
    op.create_table(
        "notify_templates",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("updated_ts", BigId, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_templates")),
        sa.UniqueConstraint(
            "site_id", "kind", "lang", name=op.f("uq_notify_templates_site_id_kind_lang")
        ),
    )
    op.create_table(
        "notify_recipients",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False, server_default="zh_CN"),
        sa.Column("kinds", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_notify_recipients_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_recipients")),
        sa.UniqueConstraint(
            "customer_id", "phone", name=op.f("uq_notify_recipients_customer_id_phone")
        ),
    )
    op.create_table(
        "notify_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", BigId, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notify_cursors")),
    )
    op.create_table(
        "notify_channels",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("updated_ts", BigId, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notify_channels")),
    )


def downgrade() -> None:
    op.drop_table("notify_channels")
    op.drop_table("notify_cursors")
    op.drop_table("notify_recipients")
    op.drop_table("notify_templates")
    op.drop_table("notify_refs")
    op.drop_table("notify_outbox")
