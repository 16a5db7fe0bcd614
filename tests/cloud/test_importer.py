"""Importing the park (F11, F43): CSV, XLSX and the provisioning record; a bad row is reported
by row number and column and nothing at all is imported."""

from __future__ import annotations

import json

import openpyxl
import pytest

from cloud.audit import Actor
from cloud.models import Building, Gateway, Meter, Site, Unit
from cloud.park.imports import importer
from provisioning.gateway import provision_gateway

ACTOR = Actor("test")
KEY = "ab" * 32

SITES = "site_id,name,timezone\npark,Film Park,Asia/Shanghai\n"
COLLECTORS = (
    f"gateway_id,site_id,key_hex,key_id,name\ngw-a,park,{KEY},1,Floor 1\ngw-b,park,{KEY},2,\n"
)
UNITS = "site_id,building,floor,unit_no,name\npark,A,1,A-101,Studio 1\npark,A,2,A-201,Studio 2\n"
METERS = (
    "meter_id,gateway_id,bus,address,model,unit_no,ct_ratio,prepaid,alarm1_yuan,hoarding_cap_yuan\n"
    "m1,gw-a,bus1,1,acrel-dtsy1352,A-101,40,yes,50,2000.5\n"
    "m2,gw-a,bus1,2,acrel-dtsy1352,A-201,,,,\n"
    "p1,gw-b,bus2,3,acrel-adl400,,,no,,\n"
)


def _files(tmp_path, **tables):
    paths = []
    for name, text in tables.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _counts(s):
    return tuple(s.query(m).count() for m in (Site, Gateway, Unit, Meter))


def test_csv_files_import_in_dependency_order(db, tmp_path):
    # Given in the "wrong" order: meters first.
    paths = _files(tmp_path, meters=METERS, units=UNITS, collectors=COLLECTORS, sites=SITES)
    with db.session() as s:
        summary = importer.import_files(s, paths, ACTOR)
    assert summary.counts == {"sites": 1, "collectors": 2, "units": 2, "meters": 3}
    with db.session() as s:
        assert _counts(s) == (1, 2, 2, 3)
        m1 = s.get(Meter, "m1")
        assert (m1.ct_ratio, m1.prepaid, m1.alarm1_micro_yuan) == (40, True, 50_000_000)
        assert m1.hoarding_cap_micro_yuan == 2_000_500_000
        assert s.get(Unit, m1.unit_id).number == "A-101"
        assert s.get(Meter, "p1").prepaid is False
        assert s.get(Gateway, "gw-b").key_id == 2
        assert s.query(Building).one().name == "A"


def test_reimport_updates_rows(db, tmp_path):
    paths = _files(tmp_path, sites=SITES, collectors=COLLECTORS, units=UNITS, meters=METERS)
    with db.session() as s:
        importer.import_files(s, paths, ACTOR)
    (tmp_path / "meters.csv").write_text(
        METERS.replace("m2,gw-a,bus1,2,acrel-dtsy1352,A-201", "m2,gw-a,bus1,9,acrel-dtsy1352,A-101")
    )
    with db.session() as s:
        importer.import_files(s, [tmp_path / "meters.csv"], ACTOR)
    with db.session() as s:
        assert s.get(Meter, "m2").address == "9"
        assert _counts(s) == (1, 2, 2, 3)


@pytest.mark.parametrize(
    ("table", "bad", "row", "column", "words"),
    [
        (
            "collectors",
            COLLECTORS.replace(f"gw-b,park,{KEY}", "gw-b,park,12zz"),
            3,
            "key_hex",
            "hexadecimal",
        ),
        ("meters", METERS.replace("m2,gw-a", "m2,gw-x"), 3, "gateway_id", "gw-x"),
        ("meters", METERS.replace("p1,gw-b,bus2,3", "p1,gw-a,bus1,1"), 4, "address", "m1"),
        (
            "meters",
            METERS.replace(",50,2000.5", ",50.1234567,2000.5"),
            2,
            "alarm1_yuan",
            "6 decimal places",
        ),
        ("meters", METERS.replace("40,yes", "forty,yes"), 2, "ct_ratio", "whole number"),
        ("meters", METERS.replace("40,yes", "40,maybe"), 2, "prepaid", "yes or no"),
        ("meters", METERS.replace("A-201,,,,", "Z-999,,,,"), 3, "unit_no", "Z-999"),
        (
            "meters",
            METERS.replace("m2,gw-a,bus1,2,acrel-dtsy1352", "m2,gw-a,bus1,2,"),
            3,
            "model",
            "required",
        ),
        ("sites", SITES.replace("Asia/Shanghai", "Mars/Olympus"), 2, "timezone", "zone"),
        ("units", UNITS.replace("unit_no,name", "unit_no,colour"), 1, "colour", "unknown column"),
        ("meters", METERS.replace("address,", ""), 1, "address", "required column"),
    ],
)
def test_a_bad_row_is_named_by_row_and_column_and_nothing_is_imported(
    db, tmp_path, table, bad, row, column, words
):
    tables = {"sites": SITES, "collectors": COLLECTORS, "units": UNITS, "meters": METERS}
    tables[table] = bad
    paths = _files(tmp_path, **tables)
    with pytest.raises(importer.ImportRejected) as err, db.session() as s:
        importer.import_files(s, paths, ACTOR)
    found = [e for e in err.value.errors if e.source == f"{table}.csv"]
    assert found, err.value.message
    first = found[0]
    assert (first.row, first.column) == (row, column), str(first)
    assert words in first.message, str(first)
    assert f"{table}.csv row {row}, column {column}:" in err.value.message
    with db.session() as s:
        assert _counts(s) == (0, 0, 0, 0)


def test_every_bad_row_is_reported_at_once(db, tmp_path):
    bad = METERS.replace("m1,gw-a,bus1,1", "m1,gw-z,bus1,1").replace("p1,gw-b", "p1,gw-q")
    paths = _files(tmp_path, sites=SITES, collectors=COLLECTORS, units=UNITS, meters=bad)
    with pytest.raises(importer.ImportRejected) as err, db.session() as s:
        importer.import_files(s, paths, ACTOR)
    assert [(e.row, e.column) for e in err.value.errors] == [(2, "gateway_id"), (4, "gateway_id")]


def test_xlsx_workbook_with_a_sheet_per_table(db, tmp_path):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, text in (
        ("Meters", METERS),
        ("Sites", SITES),
        ("Collectors", COLLECTORS),
        ("Units", UNITS),
    ):
        sheet = book.create_sheet(title)
        for line in text.strip().splitlines():
            cells = list(line.split(","))
            # Numbers as a spreadsheet stores them.
            sheet.append(
                [
                    float(c)
                    if c.replace(".", "", 1).isdigit() and "." in c
                    else (int(c) if c.isdigit() else (c or None))
                    for c in cells
                ]
            )
    path = tmp_path / "park.xlsx"
    book.save(path)
    with db.session() as s:
        summary = importer.import_files(s, [path], ACTOR)
    assert summary.counts == {"sites": 1, "collectors": 2, "units": 2, "meters": 3}
    with db.session() as s:
        m1 = s.get(Meter, "m1")
        assert m1.address == "1"
        assert m1.hoarding_cap_micro_yuan == 2_000_500_000


def test_xlsx_errors_name_the_sheet_row_and_column(db, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "sites"
    sheet.append(["site_id", "name"])
    sheet.append(["ok-site", "Good"])
    sheet.append(["bad site!", "Bad"])
    path = tmp_path / "park.xlsx"
    book.save(path)
    with pytest.raises(importer.ImportRejected) as err, db.session() as s:
        importer.import_files(s, [path], ACTOR)
    assert str(err.value.errors[0]).startswith("park.xlsx:sites row 3, column site_id:")
    with db.session() as s:
        assert _counts(s) == (0, 0, 0, 0)


def test_provisioning_record_imports_the_collector_and_its_meters(db, tmp_path):
    with db.session() as s:
        importer.import_files(s, _files(tmp_path, sites=SITES), ACTOR)
    record = {
        "id": "gw-9",
        "site": "park",
        "key_id": 3,
        "key_hex": KEY,
        "mqtt_username": "gw-9",
        "mqtt_password": "secret",
        "buses": [{"name": "b1", "model": "acrel-dtsy1352"}],
        "meters": [
            {"id": "m-9-1", "bus": "b1", "address": "1"},
            {"id": "m-9-2", "bus": "b1", "address": "2"},
        ],
    }
    path = tmp_path / "gw-9.cloud.json"
    path.write_text(json.dumps(record))
    with db.session() as s:
        summary = importer.import_files(s, [path], ACTOR)
    assert (summary.counts["collectors"], summary.counts["meters"]) == (1, 2)
    with db.session() as s:
        assert s.get(Gateway, "gw-9").key_id == 3
        assert s.get(Meter, "m-9-2").model == "acrel-dtsy1352"


def test_a_fresh_cloud_imports_what_provisioning_wrote_site_included(db, tmp_path):
    # The field engineer's path: `gridvend provision gateway`, then import its record into a
    # cloud that knows nothing yet. The site is made from the record (with its time zone); a
    # site the cloud already has is left as it is (its name is not replaced by the id).

    paths = provision_gateway(
        "studio-park",
        "gw-a",
        tmp_path / "gw-a",
        buses=[{"name": "b1", "url": "tcp://127.0.0.1:5020", "model": "acrel-ddsy1352"}],
        meters=[{"id": "a-1", "bus": "b1", "address": 1}, {"id": "a-2", "bus": "b1", "address": 2}],
        timezone="Asia/Urumqi",
    )
    with db.session() as s:
        summary = importer.import_files(s, [paths["record"]], ACTOR)
    assert (summary.counts["sites"], summary.counts["collectors"], summary.counts["meters"]) == (
        1,
        1,
        2,
    )
    with db.session() as s:
        site = s.get(Site, "studio-park")
        assert site.timezone == "Asia/Urumqi"
        site.name = "Studio Park"
    with db.session() as s:
        again = importer.import_files(s, [paths["record"]], ACTOR)
    assert again.counts["sites"] == 0
    with db.session() as s:
        assert s.get(Site, "studio-park").name == "Studio Park"
        assert s.get(Meter, "a-2").gateway_id == "gw-a"


def test_unreadable_files_are_refused(db, tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "what.csv").write_text("colour,size\nred,1\n")
    with pytest.raises(importer.ImportRejected) as err, db.session() as s:
        importer.import_files(
            s,
            [
                tmp_path / "x.txt",
                tmp_path / "empty.csv",
                tmp_path / "what.csv",
                tmp_path / "missing.csv",
            ],
            ACTOR,
        )
    text = err.value.message
    assert "unknown file type" in text
    assert "empty" in text
    assert "key column" in text
    assert "no such file" in text
