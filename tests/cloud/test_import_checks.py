"""Imports refuse what the collector cannot have (issue 9): a meter id twice (both rows named),
addresses a model's protocol cannot have, an unknown model, a bus the collector does not have,
two models on one bus, a NUL in a name, thresholds a collector would refuse. Every problem is
listed in one pass with its row and column, and nothing is imported while any remains."""

from __future__ import annotations

import json

import openpyxl
import pytest

from cloud.audit import Actor
from cloud.models import Gateway, Meter, Site, Unit
from cloud.park.imports import importer
from edge import drivers
from shared import meter_models

ACTOR = Actor("test")
KEY = "ab" * 32
SITES = "site_id,name\npark,Film Park\n"
COLLECTORS = f"gateway_id,site_id,key_hex\ngw-a,park,{KEY}\ngw-b,park,{KEY}\n"
HEADER = "meter_id,gateway_id,bus,address,model,name\n"


def _files(tmp_path, meters, **more):
    out = []
    for name, text in {"sites": SITES, "collectors": COLLECTORS, **more, "meters": meters}.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def _refused(db, paths):
    with pytest.raises(importer.ImportRejected) as err, db.session() as s:
        importer.import_files(s, paths, ACTOR)
    with db.session() as s:  # nothing at all was imported
        assert (s.query(Site).count(), s.query(Gateway).count(), s.query(Meter).count()) == (
            0,
            0,
            0,
        )
    return [(e.source, e.row, e.column, e.message) for e in err.value.errors], err.value


def test_a_meter_id_twice_is_refused_naming_both_rows(db, tmp_path):
    meters = HEADER + "m1,gw-a,bus1,1,acrel-ddsy1352,\nm2,gw-a,bus1,2,acrel-ddsy1352,\n"
    meters += "m1,gw-a,bus1,3,acrel-ddsy1352,\n"
    errors, _ = _refused(db, _files(tmp_path, meters))
    assert errors == [("meters.csv", 4, "meter_id", "duplicate of row 2")]


@pytest.mark.parametrize(
    ("model", "address", "words"),
    [
        ("acrel-ddsy1352", "0", "1 … 247"),
        ("acrel-ddsy1352", "999", "1 … 247"),
        ("acrel-adl400", "abc", "1 … 247"),
        ("dlt645", "12345", "12 digits"),
        ("dlt645", "00000001234x", "12 digits"),
    ],
)
def test_an_address_the_models_protocol_cannot_have_is_refused(db, tmp_path, model, address, words):
    meters = HEADER + f"m1,gw-a,bus1,{address},{model},\n"
    errors, _ = _refused(db, _files(tmp_path, meters))
    ((source, row, column, message),) = errors
    assert (source, row, column) == ("meters.csv", 2, "address")
    assert words in message
    assert model in message


def test_addresses_are_stored_in_their_canonical_form(db, tmp_path):
    meters = HEADER + "m1,gw-a,bus1,05,acrel-ddsy1352,\nm2,gw-b,bus1,000000012345,dlt645,\n"
    with db.session() as s:
        importer.import_files(s, _files(tmp_path, meters), ACTOR)
    with db.session() as s:
        assert s.get(Meter, "m1").address == "5"
        assert s.get(Meter, "m2").address == "000000012345"


def test_an_unknown_model_and_a_nul_in_a_name_are_refused_with_row_and_column(db, tmp_path):
    meters = HEADER + "m1,gw-a,bus1,1,acme-9000,\nm2,gw-a,bus1,2,acrel-ddsy1352,Stu\x00dio\n"
    errors, _ = _refused(db, _files(tmp_path, meters))
    assert [(row, column) for _, row, column, _ in errors] == [(2, "model"), (3, "name")]
    assert "acme-9000" in errors[0][3]
    assert "control characters" in errors[1][3]


def test_two_meters_on_one_address_name_each_other(db, tmp_path):
    meters = HEADER + "m1,gw-a,bus1,7,acrel-ddsy1352,\nm2,gw-a,bus1,7,acrel-ddsy1352,\n"
    errors, _ = _refused(db, _files(tmp_path, meters))
    ((_, row, column, message),) = errors
    assert (row, column) == (3, "address")
    assert "m1" in message
    assert "row 2" in message


def test_one_bus_takes_one_model(db, tmp_path):
    meters = HEADER + "m1,gw-a,bus1,1,acrel-ddsy1352,\nm2,gw-a,bus1,000000000002,dlt645,\n"
    meters += "m3,gw-a,bus1,3,acrel-dtsy1352,\n"  # an alias of the same driver: fine
    errors, _ = _refused(db, _files(tmp_path, meters))
    assert [(row, column) for _, row, column, _ in errors] == [(3, "model")]


def test_a_bus_the_collector_does_not_have_is_refused(db, tmp_path):
    record = {
        "id": "gw-9",
        "site": "park",
        "key_id": 1,
        "key_hex": KEY,
        "buses": [{"name": "b1", "model": "acrel-ddsy1352"}],
        "meters": [{"id": "m-9-1", "bus": "b1", "address": "1"}],
    }
    path = tmp_path / "gw-9.cloud.json"
    path.write_text(json.dumps(record))
    with db.session() as s:
        importer.import_files(s, [*_files(tmp_path, HEADER)[:1], path], ACTOR)
    sheet = tmp_path / "more.csv"
    sheet.write_text(
        HEADER + "m-9-2,gw-9,b2,2,acrel-ddsy1352,\nm-9-3,gw-9,b1,000000000003,dlt645,\n",
        encoding="utf-8",
    )
    with pytest.raises(importer.ImportRejected) as err, db.session() as s:
        importer.import_files(s, [sheet], ACTOR)
    found = [(e.row, e.column) for e in err.value.errors]
    assert found == [(2, "bus"), (3, "model")]
    assert "has no bus 'b2' (it has b1)" in err.value.errors[0].message
    with db.session() as s:
        assert s.query(Meter).count() == 1


def test_thresholds_a_collector_would_refuse_are_refused(db, tmp_path):
    meters = "meter_id,gateway_id,bus,address,model,alarm1_yuan,alarm2_yuan\n"
    meters += "m1,gw-a,bus1,1,acrel-ddsy1352,10,30\n"
    errors, _ = _refused(db, _files(tmp_path, meters))
    ((_, row, column, message),) = errors
    assert (row, column) == (2, "alarm2_yuan")
    assert "alarm1 >= alarm2" in message


def test_every_problem_of_every_row_is_listed_in_one_pass(db, tmp_path):
    meters = "meter_id,gateway_id,bus,address,model,ct_ratio,alarm1_yuan\n"
    meters += "m1,gw-a,bus1,0,acrel-ddsy1352,forty,1.1234567\n"  # three problems on one row
    meters += "m2,gw-z,bus1,2,acrel-ddsy1352,,\n"
    meters += "bad id!,gw-a,bus1,3,,,\n"
    errors, rejected = _refused(db, _files(tmp_path, meters))
    assert [(row, column) for _, row, column, _ in errors] == [
        (2, "address"),
        (2, "ct_ratio"),
        (2, "alarm1_yuan"),
        (3, "gateway_id"),
        (4, "meter_id"),
        (4, "model"),
    ]
    assert "meters.csv row 4, column meter_id:" in rejected.message


def test_an_xlsx_with_errors_on_rows_2_and_3_reports_both(db, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "meters"
    sheet.append(["meter_id", "gateway_id", "bus", "address", "model"])
    sheet.append(["m1", "gw-a", "bus1", 999, "acrel-ddsy1352"])
    sheet.append(["m2", "gw-a", "bus1", 2, "nope"])
    path = tmp_path / "park.xlsx"
    book.save(path)
    errors, _ = _refused(db, [*_files(tmp_path, HEADER)[:2], path])
    assert [(source, row) for source, row, _, _ in errors] == [
        ("park.xlsx:meters", 2),
        ("park.xlsx:meters", 3),
    ]


def test_the_list_stops_at_a_limit_and_says_so(db, tmp_path):
    rows = "".join(f"m{i},gw-a,bus1,0,acrel-ddsy1352,\n" for i in range(importer.MAX_ERRORS + 20))
    errors, rejected = _refused(db, _files(tmp_path, HEADER + rows))
    assert len(errors) == importer.MAX_ERRORS
    assert "checking stopped after" in rejected.message


def test_a_good_import_reports_its_progress(db, tmp_path):
    meters = HEADER + "".join(f"m{i},gw-a,bus1,{i + 1},acrel-ddsy1352,\n" for i in range(120))
    units = "site_id,building,floor,unit_no\npark,A,1,A-101\n"
    seen = []
    with db.session() as s:
        importer.import_files(
            s,
            _files(tmp_path, meters, units=units),
            ACTOR,
            progress=lambda phase, done, total: seen.append((phase, done, total)),
        )
    assert ("checking meters", 0, 120) in seen
    assert ("writing meters", 0, 120) in seen
    assert seen[-1][0] == "done"
    with db.session() as s:
        assert s.query(Meter).count() == 120
        assert s.query(Unit).count() == 1


def test_the_shared_catalogue_names_the_collectors_drivers_and_their_addresses():
    # The cloud refuses at import what the collector's driver would refuse at start-up.
    assert sorted(meter_models.MODELS) == drivers.models()
    for model in drivers.models():
        driver = drivers.get(model)
        for text in ("1", "05", "247", "0", "248", "abc", "000000012345", "12345", "1e3"):
            try:
                ours = meter_models.canonical_address(model, text)
            except meter_models.AddressError:
                ours = None
            try:
                theirs = str(driver.parse_address(text))
            except Exception:  # the driver's own ConfigError
                theirs = None
            if ours is not None:  # what the cloud accepts, the collector takes, the same way
                assert theirs == ours, (model, text)
