"""SMS end to end, each part run as the user runs it: ``gridvend sim`` meters → ``gridvend edge
run`` (the engine raises the alarm levels) → Mosquitto → ``gridvend cloud bridge`` (alarms and
events in the database) → ``gridvend cloud notify`` → the simulated GSM modem on a pty.

A meter runs down through alarm 1, alarm 2 and arrears: exactly three texts reach the modem, in
Chinese, naming the unit and the balance (the trip at zero credit rides on the arrears text);
a top-up sends exactly one more, with the amount and the new balance."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.park import Park
from tests.e2e.park import A, Api, start_park, wait_for
from tests.notify.modem_sim import SimModem
from tests.support.services import Mosquitto

PHONE = "+8613800138000"
LOAD_W = 150_000  # 150 kW at speed 4 and 10 yuan/kWh: about 1.7 yuan a simulated second


@pytest.fixture
def running(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Park, Api, SimModem]]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    with SimModem() as modem:
        park, api = start_park(tmp_path, url, mosquitto.url)
        try:
            cfg = tmp_path / "notify.toml"
            cfg.write_text(
                f'poll_s = 0.2\nscan_s = 0.5\nhealth_s = 1\n[events]\nsign = "园区电费"\n'
                f'[channels.modem]\nkind = "modem"\nport = "{modem.path}"\n',
                encoding="utf-8",
            )
            park.children.start(
                "notify", ["cloud", "notify", "--config", str(cfg), "--database", url]
            )
            yield park, api, modem
        finally:
            park.stop()


def _texts(modem: SimModem) -> list[str]:
    return [text for to, text in modem.messages() if to == PHONE]


def test_a_meter_running_down_texts_three_times_and_a_top_up_once_more(
    running: tuple[Park, Api, SimModem],
) -> None:
    park, api, modem = running
    account = api.post(
        "/accounts",
        {"customer": {"name": "一号影棚", "phone": PHONE},
         "meters": [{"meter": A, "transfer_in_micro_yuan": 60_000_000}]},
    )  # fmt: skip
    assert account["meters"]
    wait_for("the account open on the collector",
             lambda: api.get(f"/meters/{A}")["state"] == "opened", 60, park)  # fmt: skip
    park.set_load(A, LOAD_W)
    wait_for("three texts", lambda: len(_texts(modem)) >= 3, 120, park)
    park.set_load(A, 0)
    wait_for("the meter in arrears", lambda: api.get(f"/meters/{A}")["state"] == "arrears",
             60, park)  # fmt: skip
    time.sleep(3)  # anything else the run-down would text has had time to come
    texts = _texts(modem)
    assert len(texts) == 3, texts
    for text, level in zip(texts, ("一级报警", "二级报警", "欠费"), strict=True):
        assert text.startswith("【园区电费】")
        assert "单元U1" in text
        assert level in text
        assert re.search(r"余额-?\d+\.\d\d元", text), text
    # In fen, as the texts print yuan with two decimals (never a float).
    fen = [int(re.search(r"余额(-?\d+\.\d\d)元", t).group(1).replace(".", "")) for t in texts]
    assert fen[0] <= 5000  # at or below alarm 1 (50 yuan)
    assert fen[1] <= 2000  # alarm 2 (20 yuan)
    assert fen[2] <= 0  # arrears

    sale = api.post(f"/meters/{A}/sales", {"amount_micro_yuan": 100_000_000, "method": "cash"},
                    key="e2e-notify-topup")  # fmt: skip
    applied = wait_for(
        "the top-up applied by the collector",
        lambda: (lambda r: r if r["status"] not in ("pending", "sent") else None)(
            api.get(f"/sales/{sale['id']}")
        ),
        60,
        park,
    )
    assert applied["status"] == "applied"
    wait_for("the top-up text", lambda: len(_texts(modem)) >= 4, 60, park)
    time.sleep(3)  # the restore after the top-up must not text again
    texts = _texts(modem)
    assert len(texts) == 4, texts
    assert "充值100.00元已到账" in texts[3]
    assert "单元U1" in texts[3]
    assert modem.duplicates() == 0
