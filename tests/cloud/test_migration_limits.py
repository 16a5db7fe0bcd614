"""Migration 0004_input_limits (issue 9): the per-sale maximum and a default hoarding cap for
existing sites (the out-of-the-box values), and each meter's applied settings rebuilt from the
settings commands its collector had applied; the schema matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from cloud.db import Database
from cloud.models import Base, Meter, SiteDefaults
from cloud.park.defaults import HOARDING_CAP_MICRO_YUAN, MAX_SALE_MICRO_YUAN


def test_the_new_columns_match_the_models(db):
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if "max_sale" in repr(d) or "applied_settings" in repr(d)]
    assert mine == []


def test_an_existing_site_gets_the_limits_and_meters_their_applied_settings(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        database.upgrade("0003_payments")
        with database.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sites (id, name, timezone, created_ts) VALUES ('s', 'S', 'UTC', 0)"
                )
            )
            conn.execute(text("INSERT INTO site_defaults (site_id, report_interval_s, history_interval_s, "
                              "meter_lost_after_s, gateway_lost_after_s, archive_after_days) "
                              "VALUES ('s', 30, 1800, 900, 120, 90)"))  # fmt: skip
            conn.execute(text("INSERT INTO gateways (id, site_id, name, key_id, key_hex, mqtt_username, "
                              "online, lost_contact, down_seq_next, down_seq_reserved, created_ts) "
                              "VALUES ('g', 's', '', 1, :k, 'g', 0, 0, 1, 1, 0)"), {"k": "11" * 32})  # fmt: skip
            conn.execute(text("INSERT INTO buses (id, gateway_id, name) VALUES (1, 'g', 'b')"))
            conn.execute(text(
                "INSERT INTO meters (id, gateway_id, bus_id, address, model, name, ct_ratio, pt_ratio, "
                "prepaid, settings, mode, display_state, relay, lost_contact, balance_micro_yuan, "
                "credits_micro_yuan, refunds_micro_yuan, charges_micro_yuan, "
                "archived_charges_micro_yuan, purchase_count, last_applied_purchase_no, created_ts) "
                "VALUES ('m', 'g', 1, '1', 'acrel-ddsy1352', '', 1, 1, 1, '{}', 'prepaid', "
                "'opened', 'closed', 0, 0, 0, 0, 0, 0, 0, 0, 0)"
            ))  # fmt: skip
            for n, (args, status) in enumerate(
                [
                    ('{"alarm1_micro_yuan": 80000000, "overload_power_w": 9000}', "verified"),
                    ('{"alarm1_micro_yuan": -5}', "rejected"),  # refused: never applied
                    ('{"overload_power_w": null}', "applied"),  # null removed it
                ],
                start=1,
            ):
                conn.execute(
                    text(
                        "INSERT INTO commands (id, gateway_id, meter_id, op, action, args, status, "
                        "send_count, created_ts) VALUES (:n, 'g', 'm', 'settings', "
                        "'dispatch_settings', :args, :status, 1, 0)"
                    ),
                    {"n": n, "args": args, "status": status},
                )
        database.upgrade()
        with database.session() as s:
            d = s.get(SiteDefaults, "s")
            assert d.max_sale_micro_yuan == MAX_SALE_MICRO_YUAN
            assert d.hoarding_cap_micro_yuan == HOARDING_CAP_MICRO_YUAN
            assert s.get(Meter, "m").applied_settings == {"alarm1_micro_yuan": 80_000_000}
    finally:
        database.dispose()
