"""The services' refusals a person meets on the office screens are shown in the page's language:
each one raised for real here must match its pattern in ``forms.SERVICE_MESSAGES`` (a change
of wording in a service fails this test instead of showing English on a Chinese page)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask_babel import force_locale
from sqlalchemy import select

from cloud.access import auth, operators
from cloud.audit import Actor
from cloud.control import commands
from cloud.errors import ServiceError
from cloud.models import Building, Floor, Meter, Operator, Tariff, Unit
from cloud.money import accounts, sales, settlement, swap
from cloud.park import places
from cloud.park.imports import importer
from cloud.park.imports.importer import ImportRejected
from cloud.web.office.forms import translate
from tests.web.support import make_app, make_database

ACTOR = Actor("test")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("messages")
    db, _park = make_database(tmp)
    app = make_app(db, tmp)
    yield {"db": db, "app": app}
    db.dispose()


def _refusal(db: Any, action: Callable[[Any], object]) -> str:
    with db.session() as s:
        try:
            action(s)
        except ServiceError as exc:
            s.rollback()
            return exc.message
    raise AssertionError("the service did not refuse")


def _ids(s: Any) -> dict[str, int]:
    a = s.scalars(select(Building).where(Building.name == "A")).one()
    floor = s.scalars(select(Floor).where(Floor.building_id == a.id)).first()
    unit = s.scalars(select(Unit).where(Unit.number == "A-101")).one()
    admin = s.scalars(select(Operator).where(Operator.username == "admin")).one()
    return {"a": a.id, "floor": floor.id, "unit": unit.id, "admin": admin.id, "role": admin.role_id}


CASES: dict[str, Callable[[Any], object]] = {
    "operator exists": lambda s: operators.create(
        s, ACTOR, username="admin", password="x" * 10, role="viewer"
    ),
    "bad username": lambda s: operators.create(
        s, ACTOR, username="a", password="x" * 10, role="viewer"
    ),
    "space in username": lambda s: operators.create(
        s, ACTOR, username="a b", password="x" * 10, role="viewer"
    ),
    "role exists": lambda s: operators.create_role(
        s, ACTOR, name="admin", description="", permissions=["meters.read"]
    ),
    "built-in role": lambda s: operators.update_role(s, _ids(s)["role"], ACTOR, description="x"),
    "own login": lambda s: operators.update(
        s, _ids(s)["admin"], Actor("me", _ids(s)["admin"]), active=False
    ),
    "wrong password": lambda s: operators.change_password(
        s, s.get(Operator, _ids(s)["admin"]), "nope", "new-password-1"
    ),
    "building exists": lambda s: places.create_building(s, "studio", "A", ACTOR),
    "floor exists": lambda s: places.create_floor(s, _ids(s)["a"], "1", ACTOR),
    "unit exists": lambda s: places.create_unit(s, _ids(s)["floor"], "A-101", "", ACTOR),
    "building has meters": lambda s: places.delete_building(s, _ids(s)["a"], ACTOR),
    "unit has meters": lambda s: places.delete_unit(s, _ids(s)["unit"], ACTOR),
    "role held": lambda s: operators.delete_role(s, _custom_role_held(s), ACTOR),
    # 客户管理 and the board (accounts, closing, meter swaps, commands)
    "swap: not the account's": lambda s: swap.start(s, _account(s, "m-101"), "m-102", "m-103", ACTOR),
    "swap: the same meter": lambda s: swap.start(s, _account(s, "m-101"), "m-101", "m-101", ACTOR),
    "swap: new meter taken": lambda s: swap.start(
        s, _account(s, "m-101"), "m-101", _taken(s, "m-201"), ACTOR
    ),
    "swap: plain meter": lambda s: swap.start(s, _account(s, "m-101"), "m-101", "m-p1", ACTOR),
    "swap: below the last reading": lambda s: swap.start(
        s, _account(s, "m-101", energy_wh=5_000), "m-101", "m-102", ACTOR,
        final_energy_wh=100, price_micro_yuan_per_kwh=1,
    ),
    "swap: no price": lambda s: swap.start(
        s, _account(s, "m-101"), "m-101", "m-102", ACTOR, final_energy_wh=100
    ),
    "swap: money in flight": lambda s: swap.start(
        s, _account(s, "m-101", sold=True), "m-101", "m-102", ACTOR
    ),
    "swap: being settled": lambda s: swap.start(
        s, _closing(s, _account(s, "m-101")), "m-101", "m-102", ACTOR
    ),
    "swap retry: nothing to retry": lambda s: swap.retry(
        s, swap.start(s, _account(s, "m-101"), "m-101", "m-102", ACTOR).id, ACTOR
    ),
    "close: money in flight": lambda s: settlement.close_account(
        s, _account(s, "m-101", sold=True), ACTOR
    ),
    "add meter: plain": lambda s: accounts.add_meter(s, _account(s, "m-101"), "m-p1", ACTOR),
    "add meter: closing account": lambda s: accounts.add_meter(
        s, _closing(s, _account(s, "m-101")), "m-102", ACTOR
    ),
    "batch: plain meter": lambda s: commands.batch(s, "trip", {}, {"meters": ["m-p1"]}, ACTOR),
    "batch: thresholds out of order": lambda s: commands.batch(
        s, "dispatch_settings", {"alarm1_micro_yuan": 1, "alarm2_micro_yuan": 5_000_000},
        {"meters": ["m-101"]}, ACTOR,
    ),
    "batch: tariff without versions": lambda s: commands.batch(
        s, "dispatch_tariff", {"tariff_id": _empty_tariff(s)}, {"meters": ["m-101"]}, ACTOR
    ),
    "first purchase over the per-sale limit": lambda s: sales.sell(
        s, _sold_to(s, "m-101"), 12_000_000_000, "cash", ACTOR
    ),
    "first purchase over the hoarding cap": lambda s: sales.sell(
        s, _capped(s, "m-101"), 200_000_000, "cash", ACTOR
    ),
}  # fmt: skip


def _account(s: Any, meter: str, *, energy_wh: int | None = None, sold: bool = False) -> int:
    account = accounts.open_account(s, {"name": "Refused"}, [meter], ACTOR)
    if energy_wh is not None:
        s.get(Meter, meter).energy_wh = energy_wh
    if sold:
        sales.sell(s, meter, 1_000_000, "cash", ACTOR)
    return account.id


def _taken(s: Any, meter: str) -> str:
    accounts.open_account(s, {"name": "Other"}, [meter], ACTOR)
    return meter


def _closing(s: Any, account_id: int) -> int:
    settlement.close_account(s, account_id, ACTOR)
    return account_id


def _empty_tariff(s: Any) -> str:
    s.add(Tariff(id="empty-1", name="no versions"))
    s.flush()
    return "empty-1"


def _sold_to(s: Any, meter: str) -> str:
    _account(s, meter)
    return meter


def _capped(s: Any, meter: str) -> str:
    _account(s, meter)
    s.get(Meter, meter).hoarding_cap_micro_yuan = 100_000_000
    return meter


def _custom_role_held(s: Any) -> int:
    role = operators.create_role(s, ACTOR, name="held", description="", permissions=["sales.read"])
    auth.create_operator(s, "holder", "holder-pass-1", "held", ACTOR)
    return role.id


@pytest.mark.parametrize("case", list(CASES))
def test_a_service_refusal_is_shown_in_chinese(env: dict[str, Any], case: str) -> None:
    message = _refusal(env["db"], CASES[case])
    with env["app"].test_request_context(), force_locale("zh_CN"):
        shown = translate(message)
    assert shown != message, f"no translation pattern matches {message!r}"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in shown)


def test_every_refusal_of_a_bad_meter_sheet_is_shown_in_chinese(
    env: dict[str, Any], tmp_path: Path
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "meters"
    ws.append(
        [
            "meter_id",
            "gateway_id",
            "bus",
            "address",
            "model",
            "unit_no",
            "ct_ratio",
            "prepaid",
            "alarm1_yuan",
            "tariff_id",
            "hoarding_cap_yuan",
        ]
    )
    for row in (
        ["x-1", "gw-9", "bus1", "5", "acrel-dtsy1352"],  # no such collector
        ["x-2", "gw-1", "bus1", "6", "acrel-dtsy1352", "Z-9"],  # no such unit
        ["x-3", "gw-1", "bus1", "7", "acrel-dtsy1352", None, "abc", "maybe", "1.234", "nope"],
        ["x-4", "gw-1", "bus1", "8", "nosuch-model"],
        ["x-5", "gw-1", "bus1", None, "acrel-dtsy1352"],  # address required
        ["x-6", "gw-1", "bus1", "101", "acrel-dtsy1352"],  # m-101's address
        ["x-6", "gw-1", "bus1", "9", "acrel-dtsy1352"],  # the same id again
        ["x-7", "gw-1", "bus1", "10", "acrel-dtsy1352", None, "0", None, None, None, "-1"],
    ):
        ws.append(row)
    path = tmp_path / "bad.xlsx"
    wb.save(path)
    with env["db"].session() as s, pytest.raises(ImportRejected) as caught:
        importer.check(s, [path])
    assert len(caught.value.errors) >= 10
    with env["app"].test_request_context(), force_locale("zh_CN"):
        english = [e.message for e in caught.value.errors if translate(e.message) == e.message]
    assert english == []
