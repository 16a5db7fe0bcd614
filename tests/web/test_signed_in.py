"""The signed-in operator kept between requests (``cloud.web.office.signed_in``) follows the
API's principal cache: a change made in this process (a role's permissions, disabling, a
building scope, a logout) counts from the next request, and one made where this process cannot
see it (another process writing the database) within the TTL. Through the real sign-in, on a
real SQLite file; the other process is played by a plain ``sqlite3`` connection. And the sale's
confirm step, which checks only a scoped operator's meter before selling, still answers 404 for
a meter that is not there or not theirs; and the menu, kept once drawn, is still each
operator's own."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud.access import auth, operators
from cloud.audit import Actor
from cloud.models import Building, Operator, PurchaseSequence, Role, Sale
from cloud.money import accounts
from cloud.web import create_app
from cloud.web.office import signed_in
from tests.web.support import make_database

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
RECORDS = "/office/sales/records"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("signed_in")
    db, _park = make_database(tmp)
    app = create_app(
        {
            "TESTING": False,
            "DATABASE": db,
            "SECRET_KEY": "test-secret-key-0123456789",
            "OFFICE_COOKIE_SECURE": False,
            "TOKEN_CACHE_S": 1.0,
        }
    )
    try:
        yield {"db": db, "app": app, "file": str(tmp / "office.db")}
    finally:
        db.dispose()


def _operator(office: dict[str, Any], username: str, role: str) -> int:
    with office["db"].session() as s:
        return auth.create_operator(s, username, "a-password-1", role, Actor("test")).id


def _client(office: dict[str, Any], username: str) -> Any:
    client = office["app"].test_client()
    page = client.get("/office/login")
    token = _TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/office/login",
        data={"username": username, "password": "a-password-1", "csrf_token": token},
    )
    assert answer.status_code == 302
    return client


def _signed_out(answer: Any) -> bool:
    return answer.status_code == 302 and "/office/login" in answer.headers["Location"]


def test_a_role_losing_a_permission_is_refused_on_the_next_request(
    office: dict[str, Any],
) -> None:
    with office["db"].session() as s:
        role = operators.create_role(
            s, Actor("test"), name="records", description="", permissions=["sales.read"]
        )
        role_id = role.id
    _operator(office, "li", "records")
    client = _client(office, "li")
    assert client.get(RECORDS).status_code == 200
    assert client.get(RECORDS).status_code == 200  # now from the kept snapshot
    with office["db"].session() as s:
        operators.update_role(s, role_id, Actor("test"), permissions=["meters.read"])
    assert client.get(RECORDS).status_code == 403


def test_disabling_an_operator_ends_their_session_on_the_next_request(
    office: dict[str, Any],
) -> None:
    op_id = _operator(office, "zhao", "cashier")
    client = _client(office, "zhao")
    assert client.get(RECORDS).status_code == 200
    with office["db"].session() as s:
        operators.update(s, op_id, Actor("test"), active=False)
    assert _signed_out(client.get(RECORDS))


def test_a_building_scope_given_counts_on_the_next_request(office: dict[str, Any]) -> None:
    op_id = _operator(office, "qian", "cashier")
    client = _client(office, "qian")
    assert client.get("/office/sales/sell?meter=m-201").status_code == 200  # building B
    with office["db"].session() as s:
        building_a = s.scalars(select(Building.id).where(Building.name == "A")).one()
        operators.update(s, op_id, Actor("test"), buildings=[building_a])
    assert client.get("/office/sales/sell?meter=m-201").status_code == 404
    assert client.get("/office/sales/sell?meter=m-101").status_code == 200


def test_a_change_another_process_made_is_seen_within_the_ttl(office: dict[str, Any]) -> None:
    op_id = _operator(office, "sun", "cashier")
    client = _client(office, "sun")
    assert client.get(RECORDS).status_code == 200
    # Another process ends every session of sun (as its logout would): no ORM event here.
    other = sqlite3.connect(office["file"])
    try:
        other.execute(
            "UPDATE operators SET session_epoch = session_epoch + 1 WHERE id = ?", (op_id,)
        )
        other.commit()
    finally:
        other.close()
    time.sleep(office["app"].config["TOKEN_CACHE_S"] + 0.2)
    assert _signed_out(client.get(RECORDS))


def test_signing_in_keeps_the_other_operators_snapshots(office: dict[str, Any]) -> None:
    """A login writes its operator's bookkeeping (last login), which no snapshot holds: the
    generation stays, so nobody else's next request reads their operator again; a change a
    snapshot holds (the display name) still moves it on."""
    _operator(office, "han", "cashier")
    yang = _operator(office, "yang", "cashier")
    assert _client(office, "han").get(RECORDS).status_code == 200
    before = signed_in.generation()
    _client(office, "yang")
    with office["db"].session() as s:
        assert s.get(Operator, yang).last_login_ts is not None  # the login wrote its row
    assert signed_in.generation() == before
    with office["db"].session() as s:
        s.get(Operator, yang).display_name = "Yang Hua"
    assert signed_in.generation() != before


def test_the_kept_snapshot_is_not_the_database_row(office: dict[str, Any]) -> None:
    """The snapshot holds plain values (shared between threads), the row stays per request."""
    _operator(office, "zhou", "viewer")
    client = _client(office, "zhou")
    assert client.get(RECORDS).status_code == 200
    kept = office["app"].extensions["gridvend.signed_in"]
    with office["db"].session() as s:
        op_id = s.scalars(select(Operator.id).where(Operator.username == "zhou")).one()
        viewer = s.scalars(select(Role).where(Role.name == "viewer")).one()
        permissions = {p.name for p in viewer.permissions}
    snapshot = kept.get(op_id)
    assert snapshot is not None
    assert snapshot.permissions == permissions
    assert not isinstance(snapshot, Operator)


def _confirm(client: Any, meter: str) -> Any:
    token = _TOKEN.search(client.get("/office/sales/sell").text).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "key": "web-confirm-" + meter, "amount": "1.00", "method": "cash"}
    return client.post(f"/office/sales/sell/{meter}", data=form, headers={"HX-Request": "true"})


def test_the_confirm_step_answers_404_for_a_meter_not_there_or_out_of_scope(
    office: dict[str, Any],
) -> None:
    """A whole-park cashier's confirm leaves the meter's existence to the sale itself; a scoped
    one's is checked first. Either way: 404, nothing sold, no purchase number taken."""
    with office["db"].session() as s:
        accounts.open_account(s, {"name": "Confirm tenant"}, ["m-201"], Actor("test"))
    everywhere = _client(office, _cashier(office, "wu", []))
    assert _confirm(everywhere, "m-999").status_code == 404
    with office["db"].session() as s:
        building_a = s.scalars(select(Building.id).where(Building.name == "A")).one()
    scoped = _client(office, _cashier(office, "zheng", [building_a]))
    assert _confirm(scoped, "m-201").status_code == 404  # building B
    with office["db"].session() as s:
        assert s.scalar(select(func.count()).select_from(Sale)) == 0
        assert s.scalar(
            select(PurchaseSequence.last_no).where(PurchaseSequence.meter_id == "m-201")
        ) in (None, 0)
    answer = _confirm(everywhere, "m-201")
    assert answer.status_code == 200
    assert "receipt-preview" in answer.text
    with office["db"].session() as s:
        assert s.scalar(select(func.count()).select_from(Sale)) == 1


def _cashier(office: dict[str, Any], username: str, buildings: list[int]) -> str:
    with office["db"].session() as s:
        operators.create(
            s,
            Actor("test"),
            username=username,
            password="a-password-1",
            role="cashier",
            buildings=buildings,
        )
    return username


def _menu(client: Any, path: str) -> str:
    page = client.get(path).text
    return page[page.index('<nav class="office-menu') : page.index("</nav>")]


def test_the_kept_menu_is_the_roles_the_languages_and_the_pages(office: dict[str, Any]) -> None:
    """The menu is drawn once per language, permissions and page and then kept: each operator
    still sees their role's entries, in their language, with their page marked."""
    cashier = _client(office, _cashier(office, "feng", []))
    _operator(office, "chen", "supervisor")
    supervisor = _client(office, "chen")
    for _twice in range(2):
        mine = _menu(cashier, RECORDS)
        theirs = _menu(supervisor, RECORDS)
        assert "/office/sales/reversal" not in mine
        assert "/office/sales/reversal" in theirs
        assert "售电管理" in mine
        assert re.search(r'aria-current="page"\s+href="/office/sales/records"', mine)
        sell = _menu(cashier, "/office/sales/sell")
        assert re.search(r'aria-current="page"\s+href="/office/sales/sell"', sell)
        assert not re.search(r'aria-current="page"\s+href="/office/sales/records"', sell)
    token = _TOKEN.search(cashier.get(RECORDS).text).group(1)  # type: ignore[union-attr]
    cashier.post("/office/language", data={"lang": "en", "csrf_token": token, "next": RECORDS})
    english = _menu(cashier, RECORDS)
    assert "Sales management" in english
    assert "售电管理" not in english
    assert "售电管理" in _menu(supervisor, RECORDS)


def test_the_csrf_token_signed_once_is_the_sessions_and_no_other(office: dict[str, Any]) -> None:
    """A session's pages show the token signed the first time; it is accepted for that session
    and refused for another (every session has its own raw token)."""
    _operator(office, "wei", "cashier")
    first, second = _client(office, "wei"), _client(office, "wei")
    tokens = {_TOKEN.search(first.get(p).text).group(1) for p in (RECORDS, "/office/")}  # type: ignore[union-attr]
    assert len(tokens) == 1
    (token,) = tokens
    theirs = _TOKEN.search(second.get(RECORDS).text).group(1)  # type: ignore[union-attr]
    assert theirs != token
    form = {"lang": "en", "next": RECORDS}
    assert second.post("/office/language", data={**form, "csrf_token": token}).status_code == 400
    assert first.post("/office/language", data={**form, "csrf_token": token}).status_code == 302


def test_a_csrf_token_verified_before_is_refused_for_another_session(
    office: dict[str, Any],
) -> None:
    """The token's signature is checked once (``office.CSRFProtect``); it is still compared
    with each request's session: refused for another session and after signing in anew."""
    _operator(office, "jiang", "cashier")
    first, second = _client(office, "jiang"), _client(office, "jiang")
    token = _TOKEN.search(first.get(RECORDS).text).group(1)  # type: ignore[union-attr]
    second.get(RECORDS)
    form = {"lang": "en", "next": RECORDS, "csrf_token": token}
    assert first.post("/office/language", data=form).status_code == 302  # verified, kept
    assert first.post("/office/language", data=form).status_code == 302  # kept
    assert second.post("/office/language", data=form).status_code == 400
    page = first.get("/office/login")
    answer = first.post(
        "/office/login",
        data={
            "username": "jiang",
            "password": "a-password-1",
            "csrf_token": _TOKEN.search(page.text).group(1),  # type: ignore[union-attr]
        },
    )
    assert answer.status_code == 302
    first.get(RECORDS)  # the new session's own token
    assert first.post("/office/language", data=form).status_code == 400
