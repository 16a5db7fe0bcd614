"""Initial schema: places, devices, money, telemetry, commands, people, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# 64-bit ids and integers (money in micro-yuan, energy in Wh, epoch seconds): BIGINT on
# PostgreSQL, INTEGER (64-bit, and the rowid alias that autoincrements) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "archive_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("cutoff_ts", BigId, nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("rows", BigId, nullable=False),
        sa.Column("charges_micro_yuan", BigId, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_runs")),
    )
    op.create_table(
        "customers",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("id_number", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=True),
        sa.Column("ts", BigId, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("received_ts", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("gateway_id", "event_id", name=op.f("uq_events_gateway_id_event_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_ts"), ["ts"], unique=False)

    op.create_table(
        "permissions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint("name", name=op.f("uq_permissions_name")),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", BigId, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("received_ts", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_gateway_id_seq", ["gateway_id", "seq"], unique=False)

    op.create_table(
        "roles",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_ts", BigId, nullable=False),
        sa.Column("closed_ts", BigId, nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_accounts_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_accounts_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("number", name=op.f("uq_accounts_number")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounts_site_id"), ["site_id"], unique=False)

    op.create_table(
        "buildings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_buildings_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_buildings_site_id_name")),
    )
    with op.batch_alter_table("buildings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_buildings_site_id"), ["site_id"], unique=False)

    op.create_table(
        "operators",
        sa.Column("id", BigId, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role_id", BigId, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("last_login_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_operators_role_id_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("username", name=op.f("uq_operators_username")),
    )
    op.create_table(
        "role_permissions",
        sa.Column("role_id", BigId, nullable=False),
        sa.Column("permission_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["permission_id"],
            ["permissions.id"],
            name=op.f("fk_role_permissions_permission_id_permissions"),
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["roles.id"], name=op.f("fk_role_permissions_role_id_roles")
        ),
        sa.PrimaryKeyConstraint("role_id", "permission_id", name=op.f("pk_role_permissions")),
    )
    op.create_table(
        "site_defaults",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("overload_power_w", BigId, nullable=True),
        sa.Column("report_interval_s", BigId, nullable=False),
        sa.Column("history_interval_s", BigId, nullable=False),
        sa.Column("alarm1_micro_yuan", BigId, nullable=True),
        sa.Column("alarm2_micro_yuan", BigId, nullable=True),
        sa.Column("price_micro_yuan_per_kwh", BigId, nullable=True),
        sa.Column("hoarding_cap_micro_yuan", BigId, nullable=True),
        sa.Column("alarm_sms_number", sa.String(length=32), nullable=True),
        sa.Column("meter_lost_after_s", BigId, nullable=False),
        sa.Column("gateway_lost_after_s", BigId, nullable=False),
        sa.Column("archive_after_days", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_site_defaults_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_defaults")),
    )
    op.create_table(
        "tariffs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_tariffs_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, nullable=False),
        sa.Column("operator_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("last_used_ts", BigId, nullable=True),
        sa.Column("expires_ts", BigId, nullable=True),
        sa.Column("revoked_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_api_tokens_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_tokens_operator_id"), ["operator_id"], unique=False
        )

    op.create_table(
        "audit_log",
        sa.Column("id", BigId, nullable=False),
        sa.Column("ts", BigId, nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_audit_log_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_ts"), ["ts"], unique=False)

    op.create_table(
        "command_batches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("op", sa.String(length=32), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("count", BigId, nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_command_batches_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_batches")),
    )
    op.create_table(
        "floors",
        sa.Column("id", BigId, nullable=False),
        sa.Column("building_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"], ["buildings.id"], name=op.f("fk_floors_building_id_buildings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_floors")),
        sa.UniqueConstraint("building_id", "name", name=op.f("uq_floors_building_id_name")),
    )
    with op.batch_alter_table("floors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_floors_building_id"), ["building_id"], unique=False)

    op.create_table(
        "tariff_versions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("tariff_id", sa.String(length=64), nullable=False),
        sa.Column("version", BigId, nullable=False),
        sa.Column("effective_from_ts", BigId, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_tariff_versions_tariff_id_tariffs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariff_versions")),
        sa.UniqueConstraint(
            "tariff_id", "version", name=op.f("uq_tariff_versions_tariff_id_version")
        ),
    )
    with op.batch_alter_table("tariff_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tariff_versions_tariff_id"), ["tariff_id"], unique=False
        )

    op.create_table(
        "gateways",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("floor_id", BigId, nullable=True),
        sa.Column("key_id", BigId, nullable=False),
        sa.Column("key_hex", sa.String(length=64), nullable=False),
        sa.Column("prev_key_id", BigId, nullable=True),
        sa.Column("prev_key_hex", sa.String(length=64), nullable=True),
        sa.Column("mqtt_username", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("lost_contact", sa.Boolean(), nullable=False),
        sa.Column("status_ts", BigId, nullable=True),
        sa.Column("last_heartbeat_ts", BigId, nullable=True),
        sa.Column("last_hello_ts", BigId, nullable=True),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.Column("config_hash", sa.String(length=128), nullable=True),
        sa.Column("backlog", BigId, nullable=True),
        sa.Column("uptime_s", BigId, nullable=True),
        sa.Column("buses_health", sa.JSON(), nullable=True),
        sa.Column("down_seq_next", BigId, nullable=False),
        sa.Column("down_seq_reserved", BigId, nullable=False),
        sa.Column("up_window", sa.JSON(), nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["floor_id"], ["floors.id"], name=op.f("fk_gateways_floor_id_floors")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_gateways_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateways_site_id"), ["site_id"], unique=False)

    op.create_table(
        "units",
        sa.Column("id", BigId, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("floor_id", BigId, nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["floor_id"], ["floors.id"], name=op.f("fk_units_floor_id_floors")),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_units_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
        sa.UniqueConstraint("site_id", "number", name=op.f("uq_units_site_id_number")),
    )
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_units_floor_id"), ["floor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_units_site_id"), ["site_id"], unique=False)

    op.create_table(
        "buses",
        sa.Column("id", BigId, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_buses_gateway_id_gateways")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buses")),
        sa.UniqueConstraint("gateway_id", "name", name=op.f("uq_buses_gateway_id_name")),
    )
    with op.batch_alter_table("buses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_buses_gateway_id"), ["gateway_id"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("id", BigId, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("received_ts", BigId, nullable=False),
        sa.Column("messages", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_inbox_gateway_id_gateways")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("gateway_id", "seq", name=op.f("uq_inbox_gateway_id_seq")),
    )
    op.create_table(
        "meters",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("bus_id", BigId, nullable=False),
        sa.Column("address", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit_id", BigId, nullable=True),
        sa.Column("ct_ratio", BigId, nullable=False),
        sa.Column("pt_ratio", BigId, nullable=False),
        sa.Column("prepaid", sa.Boolean(), nullable=False),
        sa.Column("tariff_id", sa.String(length=64), nullable=True),
        sa.Column("price_override_micro_yuan_per_kwh", BigId, nullable=True),
        sa.Column("alarm1_micro_yuan", BigId, nullable=True),
        sa.Column("alarm2_micro_yuan", BigId, nullable=True),
        sa.Column("hoarding_cap_micro_yuan", BigId, nullable=True),
        sa.Column("overload_power_w", BigId, nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("display_state", sa.String(length=16), nullable=False),
        sa.Column("relay", sa.String(length=8), nullable=False),
        sa.Column("lost_contact", sa.Boolean(), nullable=False),
        sa.Column("account_id", BigId, nullable=True),
        sa.Column("balance_micro_yuan", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credits_micro_yuan", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunds_micro_yuan", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("charges_micro_yuan", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "archived_charges_micro_yuan", sa.BigInteger(), server_default="0", nullable=False
        ),
        sa.Column("purchase_count", BigId, nullable=False),
        sa.Column("last_applied_purchase_no", BigId, nullable=False),
        sa.Column("edge_balance_micro_yuan", BigId, nullable=True),
        sa.Column("edge_credits_micro_yuan", BigId, nullable=True),
        sa.Column("edge_refunds_micro_yuan", BigId, nullable=True),
        sa.Column("edge_charges_micro_yuan", BigId, nullable=True),
        sa.Column("last_reading_id", BigId, nullable=True),
        sa.Column("last_reading_ts", BigId, nullable=True),
        sa.Column("energy_wh", BigId, nullable=True),
        sa.Column("power_w", BigId, nullable=True),
        sa.Column("last_seen_ts", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_meters_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["bus_id"], ["buses.id"], name=op.f("fk_meters_bus_id_buses")),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_meters_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_meters_tariff_id_tariffs")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_meters_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("bus_id", "address", name=op.f("uq_meters_bus_id_address")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meters_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_bus_id"), ["bus_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_gateway_id"), ["gateway_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_meters_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "account_meters",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("added_ts", BigId, nullable=False),
        sa.Column("removed_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_meters_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_account_meters_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_meters")),
        sa.UniqueConstraint(
            "account_id", "meter_id", name=op.f("uq_account_meters_account_id_meter_id")
        ),
    )
    with op.batch_alter_table("account_meters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_meters_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_account_meters_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "alarms",
        sa.Column("id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=True),
        sa.Column("gateway_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("raised_ts", BigId, nullable=False),
        sa.Column("cleared_ts", BigId, nullable=True),
        sa.Column("cleared_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_alarms_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_alarms_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index("ix_alarms_active_kind", ["active", "kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_gateway_id"), ["gateway_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "commands",
        sa.Column("id", BigId, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=True),
        sa.Column("op", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ref_kind", sa.String(length=16), nullable=True),
        sa.Column("ref_id", BigId, nullable=True),
        sa.Column("batch_id", BigId, nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("sent_ts", BigId, nullable=True),
        sa.Column("last_sent_ts", BigId, nullable=True),
        sa.Column("send_count", BigId, nullable=False),
        sa.Column("result_ts", BigId, nullable=True),
        sa.Column("result_status", sa.String(length=16), nullable=True),
        sa.Column("result_reason", sa.String(length=500), nullable=True),
        sa.Column("result_balance_micro_yuan", BigId, nullable=True),
        sa.Column("verified_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["command_batches.id"], name=op.f("fk_commands_batch_id_command_batches")
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_commands_gateway_id_gateways")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_commands_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_commands_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commands_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_commands_gateway_id_status", ["gateway_id", "status"], unique=False
        )
        batch_op.create_index("ix_commands_meter_id_status", ["meter_id", "status"], unique=False)
        batch_op.create_index("ix_commands_ref", ["ref_kind", "ref_id"], unique=False)

    op.create_table(
        "daily_rollups",
        sa.Column("id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("energy_wh", BigId, nullable=False),
        sa.Column("charge_micro_yuan", BigId, nullable=False),
        sa.Column("readings", BigId, nullable=False),
        sa.Column("max_power_w", BigId, nullable=True),
        sa.Column("first_energy_wh", BigId, nullable=True),
        sa.Column("last_energy_wh", BigId, nullable=True),
        sa.Column("updated_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_daily_rollups_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_rollups")),
        sa.UniqueConstraint("meter_id", "day", name=op.f("uq_daily_rollups_meter_id_day")),
    )
    with op.batch_alter_table("daily_rollups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_daily_rollups_day"), ["day"], unique=False)

    op.create_table(
        "purchase_sequences",
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("last_no", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_purchase_sequences_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_purchase_sequences")),
    )
    op.create_table(
        "readings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("reading_id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("ts", BigId, nullable=False),
        sa.Column("energy_wh", BigId, nullable=True),
        sa.Column("power_w", BigId, nullable=True),
        sa.Column("relay", sa.String(length=8), nullable=True),
        sa.Column("band_energy_wh", sa.JSON(), nullable=True),
        sa.Column("voltages_dv", sa.JSON(), nullable=True),
        sa.Column("currents_ma", sa.JSON(), nullable=True),
        sa.Column("charge_micro_yuan", BigId, nullable=False),
        sa.Column("balance_micro_yuan", BigId, nullable=True),
        sa.Column("credits_micro_yuan", BigId, nullable=True),
        sa.Column("refunds_micro_yuan", BigId, nullable=True),
        sa.Column("charges_micro_yuan", BigId, nullable=True),
        sa.Column("received_ts", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_readings_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint(
            "gateway_id", "reading_id", name=op.f("uq_readings_gateway_id_reading_id")
        ),
    )
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.create_index("ix_readings_meter_id_ts", ["meter_id", "ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_readings_ts"), ["ts"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", BigId, nullable=True),
        sa.Column("amount_micro_yuan", BigId, nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("receipt_no", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("command_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("resolved_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_refunds_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_refunds_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_refunds_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_refunds_idempotency_key")),
        sa.UniqueConstraint("receipt_no", name=op.f("uq_refunds_receipt_no")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_created_ts"), ["created_ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_status"), ["status"], unique=False)

    op.create_table(
        "sales",
        sa.Column("id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", BigId, nullable=True),
        sa.Column("amount_micro_yuan", BigId, nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("purchase_no", BigId, nullable=False),
        sa.Column("receipt_no", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("command_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("resolved_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sales_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_sales_meter_id_meters")),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_sales_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_sales_idempotency_key")),
        sa.UniqueConstraint("meter_id", "purchase_no", name=op.f("uq_sales_meter_id_purchase_no")),
        sa.UniqueConstraint("receipt_no", name=op.f("uq_sales_receipt_no")),
    )
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sales_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sales_created_ts"), ["created_ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_sales_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sales_status"), ["status"], unique=False)

    op.create_table(
        "settlements",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("balance_micro_yuan", BigId, nullable=True),
        sa.Column("refund_due_micro_yuan", BigId, nullable=True),
        sa.Column("debt_owed_micro_yuan", BigId, nullable=True),
        sa.Column("edge_balance_micro_yuan", BigId, nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("command_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("resolved_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_settlements_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_settlements_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_settlements_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlements_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "transfers_in",
        sa.Column("id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", BigId, nullable=True),
        sa.Column("amount_micro_yuan", BigId, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("command_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("resolved_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_transfers_in_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_transfers_in_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_transfers_in_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers_in")),
    )
    with op.batch_alter_table("transfers_in", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfers_in_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_transfers_in_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "reversals",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sale_id", BigId, nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("amount_micro_yuan", BigId, nullable=False),
        sa.Column("receipt_no", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("operator_id", BigId, nullable=True),
        sa.Column("command_id", BigId, nullable=True),
        sa.Column("created_ts", BigId, nullable=False),
        sa.Column("resolved_ts", BigId, nullable=True),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_reversals_meter_id_meters")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_reversals_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(["sale_id"], ["sales.id"], name=op.f("fk_reversals_sale_id_sales")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reversals")),
        sa.UniqueConstraint("receipt_no", name=op.f("uq_reversals_receipt_no")),
    )
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reversals_created_ts"), ["created_ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_reversals_meter_id"), ["meter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reversals_sale_id"), ["sale_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reversals_status"), ["status"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reversals_status"))
        batch_op.drop_index(batch_op.f("ix_reversals_sale_id"))
        batch_op.drop_index(batch_op.f("ix_reversals_meter_id"))
        batch_op.drop_index(batch_op.f("ix_reversals_created_ts"))

    op.drop_table("reversals")
    with op.batch_alter_table("transfers_in", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfers_in_meter_id"))
        batch_op.drop_index(batch_op.f("ix_transfers_in_account_id"))

    op.drop_table("transfers_in")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlements_meter_id"))
        batch_op.drop_index(batch_op.f("ix_settlements_account_id"))

    op.drop_table("settlements")
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sales_status"))
        batch_op.drop_index(batch_op.f("ix_sales_meter_id"))
        batch_op.drop_index(batch_op.f("ix_sales_created_ts"))
        batch_op.drop_index(batch_op.f("ix_sales_account_id"))

    op.drop_table("sales")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_status"))
        batch_op.drop_index(batch_op.f("ix_refunds_meter_id"))
        batch_op.drop_index(batch_op.f("ix_refunds_created_ts"))
        batch_op.drop_index(batch_op.f("ix_refunds_account_id"))

    op.drop_table("refunds")
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_readings_ts"))
        batch_op.drop_index("ix_readings_meter_id_ts")

    op.drop_table("readings")
    op.drop_table("purchase_sequences")
    with op.batch_alter_table("daily_rollups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_daily_rollups_day"))

    op.drop_table("daily_rollups")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index("ix_commands_ref")
        batch_op.drop_index("ix_commands_meter_id_status")
        batch_op.drop_index("ix_commands_gateway_id_status")
        batch_op.drop_index(batch_op.f("ix_commands_batch_id"))

    op.drop_table("commands")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarms_meter_id"))
        batch_op.drop_index(batch_op.f("ix_alarms_gateway_id"))
        batch_op.drop_index("ix_alarms_active_kind")

    op.drop_table("alarms")
    with op.batch_alter_table("account_meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_meters_meter_id"))
        batch_op.drop_index(batch_op.f("ix_account_meters_account_id"))

    op.drop_table("account_meters")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meters_unit_id"))
        batch_op.drop_index(batch_op.f("ix_meters_gateway_id"))
        batch_op.drop_index(batch_op.f("ix_meters_bus_id"))
        batch_op.drop_index(batch_op.f("ix_meters_account_id"))

    op.drop_table("meters")
    op.drop_table("inbox")
    with op.batch_alter_table("buses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_buses_gateway_id"))

    op.drop_table("buses")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_units_site_id"))
        batch_op.drop_index(batch_op.f("ix_units_floor_id"))

    op.drop_table("units")
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateways_site_id"))

    op.drop_table("gateways")
    with op.batch_alter_table("tariff_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tariff_versions_tariff_id"))

    op.drop_table("tariff_versions")
    with op.batch_alter_table("floors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_floors_building_id"))

    op.drop_table("floors")
    op.drop_table("command_batches")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_ts"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_operator_id"))

    op.drop_table("api_tokens")
    op.drop_table("tariffs")
    op.drop_table("site_defaults")
    op.drop_table("role_permissions")
    op.drop_table("operators")
    with op.batch_alter_table("buildings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_buildings_site_id"))

    op.drop_table("buildings")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_site_id"))
        batch_op.drop_index(batch_op.f("ix_accounts_customer_id"))

    op.drop_table("accounts")
    op.drop_table("sites")
    op.drop_table("roles")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_gateway_id_seq")

    op.drop_table("quarantine")
    op.drop_table("permissions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_ts"))
        batch_op.drop_index(batch_op.f("ix_events_meter_id"))

    op.drop_table("events")
    op.drop_table("customers")
    op.drop_table("archive_runs")
