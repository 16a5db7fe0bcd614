"""Daily bill files (对账单) of the three providers, parsed into ``BillRow`` for reconciliation.

* **Alipay** ``trade`` bill: a ZIP of GBK CSV files; the one named ``…业务明细.csv`` (not
  ``…业务明细(汇总).csv``) has ``#`` comment lines around a header
  ``支付宝交易号,商户订单号,业务类型,…,完成时间,…,订单金额（元）,…,退款批次号/请求号,…`` and
  cells padded with spaces or tabs; ``业务类型`` is ``交易`` or ``退款`` (refund amounts may be
  printed negative).
* **WeChat Pay** trade bill (``bill_type=ALL``): UTF-8 CSV; a header, then one line per trade
  whose every cell starts with a backtick (so cells split on ``,```), then a summary header
  ``总交易单数,…`` and its backticked line. ``交易状态`` ``SUCCESS`` is a payment, ``REFUND``
  a refund (``退款金额``). The summary's count must equal the lines read.
* **sandbox**: what ``cloud.payments.sandbox`` writes, the same shape in UTF-8 with English
  headers.

Every amount is parsed exactly (``fen_from_yuan_text``); a bad line is an ``InvalidError``
naming the line number and the column.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence

from cloud.errors import InvalidError
from cloud.payments.amounts import fen_from_yuan_text, yuan_text
from cloud.payments.provider import BillRow

SANDBOX_HEADER = ("trade_no", "out_trade_no", "kind", "amount_yuan", "at", "refund_no")


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) when it is; else GB18030 (a superset of GBK)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise InvalidError("the bill is neither UTF-8 nor GBK text", "bill") from exc


def _fen(text: str, line: int, column: str) -> int:
    """Exact fen from a bill cell; a leading minus (refund lines) is dropped."""
    value = text.strip()
    if value.startswith("-"):
        value = value[1:]
    try:
        return fen_from_yuan_text(value, column)
    except InvalidError as exc:
        raise InvalidError(f"bill line {line}, {column}: {exc.message}", column) from exc


def _index(header: Sequence[str], names: Iterable[str], line: int) -> dict[str, int]:
    cleaned = [cell.strip() for cell in header]
    out = {}
    for name in names:
        if name not in cleaned:
            raise InvalidError(f"bill line {line}: the header has no column {name}", name)
        out[name] = cleaned.index(name)
    return out


def _cell(row: Sequence[str], at: int, line: int, column: str) -> str:
    if at >= len(row):
        raise InvalidError(f"bill line {line}: no {column} (only {len(row)} columns)", column)
    return row[at].strip()


def _csv_rows(text: str) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InvalidError(f"the bill is not valid CSV: {exc}", "bill") from exc


# --- Alipay -----------------------------------------------------------------------------------


def _zip_member_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:  # the name is UTF-8
        return info.filename
    try:  # zipfile read the name as cp437; Alipay writes GBK names
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _alipay_detail_csv(data: bytes) -> bytes:
    if data[:2] != b"PK":
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = _zip_member_name(info)
                if name.endswith(".csv") and "明细" in name and "汇总" not in name:
                    return archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidError(f"the Alipay bill is not a readable ZIP: {exc}", "bill") from exc
    raise InvalidError("the Alipay bill archive has no 业务明细 CSV", "bill")


ALIPAY_COLUMNS = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）")


def parse_alipay_bill(data: bytes) -> list[BillRow]:
    """Alipay's trade bill (the ZIP as downloaded, or its detail CSV)."""
    text = _decode(_alipay_detail_csv(data))
    rows: list[BillRow] = []
    columns: dict[str, int] | None = None
    refund_at: int | None = None
    for line, cells in enumerate(_csv_rows(text), start=1):
        if not cells or not "".join(cells).strip():
            continue
        first = cells[0].strip()
        if first.startswith("#"):
            if columns is not None:
                break  # "#-----业务明细列表结束-----": the details are over
            continue
        if columns is None:
            if first != "支付宝交易号":
                raise InvalidError(f"bill line {line}: expected the 支付宝交易号 header", "bill")
            columns = _index(cells, ALIPAY_COLUMNS, line)
            stripped = [c.strip() for c in cells]
            refund_at = next(
                (i for i, c in enumerate(stripped) if c.startswith("退款批次号")), None
            )
            continue
        kind_text = _cell(cells, columns["业务类型"], line, "业务类型")
        kind = {"交易": "payment", "退款": "refund"}.get(kind_text)
        if kind is None:
            raise InvalidError(
                f"bill line {line}: 业务类型 {kind_text!r} is not 交易 or 退款", "业务类型"
            )
        rows.append(
            BillRow(
                provider="alipay",
                out_trade_no=_cell(cells, columns["商户订单号"], line, "商户订单号"),
                trade_no=_cell(cells, columns["支付宝交易号"], line, "支付宝交易号"),
                kind=kind,
                amount_fen=_fen(
                    _cell(cells, columns["订单金额（元）"], line, "订单金额（元）"),
                    line,
                    "订单金额（元）",
                ),
                at=_cell(cells, columns["完成时间"], line, "完成时间"),
                refund_no=_cell(cells, refund_at, line, "退款批次号/请求号")
                if refund_at is not None and kind == "refund"
                else "",
            )
        )
    if columns is None:
        raise InvalidError("the Alipay bill has no 支付宝交易号 header", "bill")
    return rows


# --- WeChat Pay -------------------------------------------------------------------------------

WECHAT_COLUMNS = ("交易时间", "微信订单号", "商户订单号", "交易状态", "商户退款单号", "退款金额")


def _wechat_cells(line_text: str, line: int) -> list[str]:
    if not line_text.startswith("`"):
        raise InvalidError(f"bill line {line}: a trade line starts with a backtick", "bill")
    return line_text[1:].split(",`")


def parse_wechat_bill(data: bytes) -> list[BillRow]:
    """WeChat Pay's trade bill, decompressed."""
    lines = _decode(data).splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    columns = _index(header, WECHAT_COLUMNS, 1)
    stripped = [c.strip() for c in header]
    # Newer bills have 订单金额 (the order's amount) beside 应结订单金额 (after vouchers).
    amount_name = "订单金额" if "订单金额" in stripped else "应结订单金额"
    amount_at = _index(header, (amount_name,), 1)[amount_name]
    rows: list[BillRow] = []
    summary_count: int | None = None
    for line, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        if text.startswith("总交易单数"):
            if line < len(lines):
                cells = _wechat_cells(lines[line], line + 1)
                try:
                    summary_count = int(cells[0].strip())
                except ValueError as exc:
                    raise InvalidError(
                        f"bill line {line + 1}: 总交易单数 is not a number", "总交易单数"
                    ) from exc
            break
        cells = _wechat_cells(text, line)
        state = _cell(cells, columns["交易状态"], line, "交易状态")
        if state == "SUCCESS":
            kind, amount, refund_no = "payment", _cell(cells, amount_at, line, amount_name), ""
        elif state == "REFUND":
            kind = "refund"
            amount = _cell(cells, columns["退款金额"], line, "退款金额")
            refund_no = _cell(cells, columns["商户退款单号"], line, "商户退款单号")
        else:
            raise InvalidError(
                f"bill line {line}: 交易状态 {state!r} is not SUCCESS or REFUND", "交易状态"
            )
        rows.append(
            BillRow(
                provider="wechat",
                out_trade_no=_cell(cells, columns["商户订单号"], line, "商户订单号"),
                trade_no=_cell(cells, columns["微信订单号"], line, "微信订单号"),
                kind=kind,
                amount_fen=_fen(amount, line, "amount"),
                at=_cell(cells, columns["交易时间"], line, "交易时间"),
                refund_no=refund_no,
            )
        )
    if summary_count is not None and summary_count != len(rows):
        raise InvalidError(
            f"the bill's 总交易单数 says {summary_count} trades, its lines hold {len(rows)}",
            "总交易单数",
        )
    return rows


# --- sandbox ----------------------------------------------------------------------------------


def parse_sandbox_bill(data: bytes) -> list[BillRow]:
    rows: list[BillRow] = []
    header_seen = False
    for line, cells in enumerate(_csv_rows(_decode(data)), start=1):
        if not cells or cells[0].startswith("#"):
            continue
        if not header_seen:
            if tuple(cells) != SANDBOX_HEADER:
                raise InvalidError(
                    f"bill line {line}: expected the header {','.join(SANDBOX_HEADER)}", "bill"
                )
            header_seen = True
            continue
        if len(cells) != len(SANDBOX_HEADER):
            raise InvalidError(
                f"bill line {line}: {len(cells)} columns, expected {len(SANDBOX_HEADER)}", "bill"
            )
        trade_no, out_trade_no, kind, amount, at, refund_no = cells
        if kind not in ("payment", "refund"):
            raise InvalidError(f"bill line {line}: kind {kind!r} is not payment or refund", "kind")
        rows.append(
            BillRow(
                "sandbox",
                out_trade_no,
                trade_no,
                kind,
                _fen(amount, line, "amount_yuan"),
                at,
                refund_no,
            )
        )
    if not header_seen:
        raise InvalidError("the sandbox bill has no header", "bill")
    return rows


def write_sandbox_bill(rows: Iterable[BillRow], title: str) -> bytes:

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    out.write(f"# {title}\n")
    writer.writerow(SANDBOX_HEADER)
    for row in rows:
        writer.writerow(
            [
                row.trade_no,
                row.out_trade_no,
                row.kind,
                yuan_text(row.amount_fen),
                row.at,
                row.refund_no,
            ]
        )
    return out.getvalue().encode()
