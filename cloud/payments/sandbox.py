"""The sandbox provider: the demo's default, so the whole top-up flow runs offline.

It is a real provider in miniature, with both sides in one module:

* ``SandboxBank`` is the provider's side. It keeps its trades in an append-only JSON-lines
  journal (``trades.jsonl``, ``flock``-ed, so the web server, the bridge and a test can share
  one), and owns an RSA-2048 key (``sandbox_key.pem``, made on first use). ``pay`` marks a
  trade paid and returns the *signed* notification, exactly what a provider would POST to the
  notify URL: a form, signed SHA256withRSA over the sorted ``k=v&`` string of every field
  but ``sign`` and ``sign_type`` (Alipay's RSA2 rule). Not delivering it is how a test plays
  a lost notification. ``write_bill`` writes the day's bill file.
* ``SandboxProvider`` is our side: it verifies those notifications with the bank's *public*
  key only, as it would a real provider's, and reads the bank's bill files.

The local pay page (``/pay/sandbox/<out_trade_no>`` on the tenant site) calls ``pay`` and
delivers the notification through the same notify endpoint as Alipay and WeChat use.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cloud.errors import InvalidError, NotFoundError
from cloud.payments import alipay_codec, bills
from cloud.payments.amounts import fen_from_yuan_text, yuan_text
from cloud.payments.errors import (
    NotificationMalformedError,
    NotificationMismatchError,
    ProviderError,
)
from cloud.payments.provider import (
    CLOSED,
    NOT_FOUND,
    PAID,
    PENDING,
    REFUNDED,
    BillRow,
    NotificationRequest,
    OrderAmount,
    PayAction,
    PayRequest,
    Reply,
    TradeEvent,
    check_order,
)
from cloud.payments.signing import sign_sha256_rsa, verify_sha256_rsa

BEIJING = ZoneInfo("Asia/Shanghai")
APP_ID = "gridvend-sandbox"
_STATUS = {
    PAID: "TRADE_SUCCESS",
    CLOSED: "TRADE_CLOSED",
    PENDING: "WAIT_BUYER_PAY",
    REFUNDED: "TRADE_SUCCESS",
}


def _local(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class SandboxBank:
    """The sandbox's provider side (see the module docstring)."""

    def __init__(
        self, directory: str | os.PathLike[str], clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self._journal = self.directory / "trades.jsonl"
        self._key: rsa.RSAPrivateKey | None = None

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        """Loaded (or made) on first use, so an app that never pays never makes a key."""
        if self._key is None:
            self._key = self._load_or_make_key()
        return self._key

    def _load_or_make_key(self) -> rsa.RSAPrivateKey:
        path = self.directory / "sandbox_key.pem"
        with self._locked():
            if not path.exists():
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(pem)
                os.chmod(tmp, 0o600)
                tmp.replace(path)
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        return loaded

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, entry: dict[str, Any]) -> None:
        with open(self._journal, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def trades(self) -> dict[str, dict[str, Any]]:
        """Every trade's current state, folded from the journal."""
        state: dict[str, dict[str, Any]] = {}
        if not self._journal.exists():
            return state
        for text in self._journal.read_text(encoding="utf-8").splitlines():
            entry = json.loads(text)
            trade = state.setdefault(entry["out_trade_no"], {"refunds": []})
            if entry["op"] == "refund":
                trade["refunds"].append(entry)
            else:
                trade.update({k: v for k, v in entry.items() if k != "op"})
        return state

    def open_trade(self, request: PayRequest) -> None:
        with self._locked():
            existing = self.trades().get(request.out_trade_no)
            if existing is not None:
                if existing["amount_fen"] != request.amount_fen:
                    raise InvalidError(
                        f"trade {request.out_trade_no} exists with another amount", "out_trade_no"
                    )
                return
            self._append(
                {
                    "op": "open",
                    "out_trade_no": request.out_trade_no,
                    "amount_fen": request.amount_fen,
                    "subject": request.subject,
                    "notify_url": request.notify_url,
                    "return_url": request.return_url,
                    "state": PENDING,
                    "created_at": self.clock(),
                }
            )

    def trade(self, out_trade_no: str) -> dict[str, Any]:
        trade = self.trades().get(out_trade_no)
        if trade is None or "amount_fen" not in trade:
            raise NotFoundError(f"the sandbox has no trade {out_trade_no}", "out_trade_no")
        return trade

    def pay(self, out_trade_no: str) -> NotificationRequest:
        """The buyer pays: the trade becomes paid (once) and the signed notification comes
        back for delivery. Paying a paid trade returns the same notification again (as a
        provider's resend would)."""
        with self._locked():
            trade = self.trade(out_trade_no)
            if trade["state"] == CLOSED:
                raise InvalidError(f"trade {out_trade_no} is closed", "out_trade_no")
            if trade["state"] == PENDING:
                paid_at = self.clock()
                day = dt.datetime.fromtimestamp(paid_at, BEIJING)
                trade_no = f"SB{day:%Y%m%d}{secrets.randbelow(10**12):012d}"
                self._append(
                    {
                        "op": "pay",
                        "out_trade_no": out_trade_no,
                        "state": PAID,
                        "trade_no": trade_no,
                        "paid_at": paid_at,
                    }
                )
                trade.update(state=PAID, trade_no=trade_no, paid_at=paid_at)
        return self.notification(trade)

    def close(self, out_trade_no: str) -> None:
        with self._locked():
            if self.trade(out_trade_no)["state"] == PENDING:
                self._append({"op": "close", "out_trade_no": out_trade_no, "state": CLOSED})

    def refund(self, out_trade_no: str, amount_fen: int, out_request_no: str) -> None:
        with self._locked():
            trade = self.trade(out_trade_no)
            if trade["state"] not in (PAID, REFUNDED):
                raise InvalidError(f"trade {out_trade_no} is not paid", "out_trade_no")
            if any(r["out_request_no"] == out_request_no for r in trade["refunds"]):
                return  # a repeated request: refunded once
            refunded = sum(r["amount_fen"] for r in trade["refunds"])
            if refunded + amount_fen > trade["amount_fen"]:
                raise InvalidError(f"refunds would exceed trade {out_trade_no}", "amount_fen")
            self._append(
                {
                    "op": "refund",
                    "out_trade_no": out_trade_no,
                    "amount_fen": amount_fen,
                    "out_request_no": out_request_no,
                    "at": self.clock(),
                }
            )

    def notification(self, trade: dict[str, Any]) -> NotificationRequest:
        fields = {
            "notify_time": _local(self.clock()),
            "notify_type": "trade_status_sync",
            "notify_id": f"{trade['out_trade_no']}-{trade['state']}",
            "app_id": APP_ID,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": trade.get("trade_no", ""),
            "out_trade_no": trade["out_trade_no"],
            "trade_status": _STATUS[trade["state"]],
            "total_amount": yuan_text(trade["amount_fen"]),
            "subject": trade.get("subject", ""),
            "gmt_payment": _local(trade["paid_at"]) if trade.get("paid_at") else "",
        }
        fields["sign"] = sign_sha256_rsa(
            self.private_key, alipay_codec.notification_sign_content(fields).encode()
        )
        fields["sign_type"] = "RSA2"
        return NotificationRequest(
            {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
            urlencode(fields).encode(),
        )

    def bill_rows(self, day: dt.date) -> list[BillRow]:
        rows = []
        for trade in self.trades().values():
            if (
                trade.get("paid_at")
                and dt.datetime.fromtimestamp(trade["paid_at"], BEIJING).date() == day
            ):
                rows.append(
                    BillRow(
                        "sandbox",
                        trade["out_trade_no"],
                        trade["trade_no"],
                        "payment",
                        trade["amount_fen"],
                        _local(trade["paid_at"]),
                    )
                )
            for refund in trade["refunds"]:
                if dt.datetime.fromtimestamp(refund["at"], BEIJING).date() == day:
                    rows.append(
                        BillRow(
                            "sandbox",
                            trade["out_trade_no"],
                            trade["trade_no"],
                            "refund",
                            refund["amount_fen"],
                            _local(refund["at"]),
                            refund["out_request_no"],
                        )
                    )
        return sorted(rows, key=lambda r: (r.at, r.out_trade_no, r.kind))

    def write_bill(self, day: dt.date) -> Path:
        """The day's bill file (Beijing day), as the provider would publish it next morning."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"bill_{day.isoformat()}.csv"
        data = bills.write_sandbox_bill(
            self.bill_rows(day), f"gridvend sandbox bill {day.isoformat()}"
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path


class SandboxProvider:
    """Our side of the sandbox: verifies with the bank's public key, like any provider."""

    name = "sandbox"

    def __init__(self, bank: SandboxBank, pay_page: str = "/pay/sandbox/{out_trade_no}") -> None:
        self.bank = bank
        self.pay_page = pay_page

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.bank.public_key

    def create(self, request: PayRequest) -> PayAction:
        self.bank.open_trade(request)
        return PayAction("redirect", self.pay_page.format(out_trade_no=request.out_trade_no))

    def verify_notification(
        self, request: NotificationRequest, order_amount_fen: OrderAmount
    ) -> TradeEvent:
        form = alipay_codec.parse_form(request.body)
        verify_sha256_rsa(
            self.public_key,
            alipay_codec.notification_sign_content(form).encode(),
            form.get("sign", ""),
        )
        for field in ("app_id", "out_trade_no", "trade_no", "trade_status", "total_amount"):
            if field not in form:
                raise NotificationMalformedError(f"the notification has no {field}", field)
        if form["app_id"] != APP_ID:
            raise NotificationMismatchError(
                f"app_id {form['app_id']!r} is not the sandbox's", "app_id"
            )
        state = {v: k for k, v in _STATUS.items() if k != REFUNDED}.get(form["trade_status"])
        if state is None:
            raise NotificationMalformedError(
                f"trade_status {form['trade_status']!r} is unknown", "trade_status"
            )
        try:
            amount = fen_from_yuan_text(form["total_amount"])
        except InvalidError as exc:
            raise NotificationMalformedError(exc.message, exc.field) from exc
        paid_at = (
            dt.datetime.strptime(form["gmt_payment"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
            if form.get("gmt_payment")
            else None
        )
        event = TradeEvent(
            self.name,
            form["out_trade_no"],
            form["trade_no"],
            amount,
            state,
            paid_at,
            raw=dict(form),
        )
        return check_order(event, order_amount_fen)

    def reply_ok(self) -> Reply:
        return Reply(200, b"success")

    def reply_rejected(self, error: Exception) -> Reply:
        return Reply(400, b"failure")

    def query(self, out_trade_no: str) -> TradeEvent:
        trade = self.bank.trades().get(out_trade_no)
        if trade is None or "amount_fen" not in trade:
            return TradeEvent(self.name, out_trade_no, "", 0, NOT_FOUND)
        state = REFUNDED if trade["refunds"] else trade["state"]
        paid_at = (
            dt.datetime.fromtimestamp(trade["paid_at"], BEIJING) if trade.get("paid_at") else None
        )
        return TradeEvent(
            self.name,
            out_trade_no,
            trade.get("trade_no", ""),
            trade["amount_fen"],
            state,
            paid_at,
            raw=trade,
        )

    def close(self, out_trade_no: str) -> None:
        self.bank.close(out_trade_no)

    def refund(self, out_trade_no: str, amount_fen: int, out_request_no: str) -> None:
        self.bank.refund(out_trade_no, amount_fen, out_request_no)

    def bill(self, day: dt.date) -> list[BillRow]:
        path = self.bank.directory / f"bill_{day.isoformat()}.csv"
        if not path.exists():
            raise ProviderError(f"the sandbox has not published its bill for {day} yet")
        return bills.parse_sandbox_bill(path.read_bytes())
