"""The three bill formats parse to exact rows; a bad line names its line and column; any
input either parses or raises InvalidError (never anything else)."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.errors import InvalidError
from cloud.payments.bills import (
    parse_alipay_bill,
    parse_sandbox_bill,
    parse_wechat_bill,
    write_sandbox_bill,
)
from cloud.payments.provider import BillRow

ALIPAY_DETAIL = """#支付宝业务明细查询
#账号：[20881011064993640156]
#起始日期：[2026年03月01日 00:00:00]   终止日期：[2026年03月02日 00:00:00]
#-----------------------------------------业务明细列表----------------------------------------
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注
2026030122001424330501234567	,GV20260301000001	,交易	,电费充值 A-101	,2026-03-01 12:00:05	,2026-03-01 12:00:09	,	,	,	,	,138****0000	,12.30	,12.30	,0.00	,0.00	,0.00	,0.00	,0.00	,	,0.00	,0.00	,	,-0.07	,0.00	,
2026030122001424330501234568	,GV20260301000002	,交易	,电费充值 B-202	,2026-03-01 13:00:05	,2026-03-01 13:00:09	,	,	,	,	,139****0000	,200.00	,200.00	,0.00	,0.00	,0.00	,0.00	,0.00	,	,0.00	,0.00	,	,-1.20	,0.00	,
2026030122001424330501234568	,GV20260301000002	,退款	,电费充值 B-202	,2026-03-01 13:00:05	,2026-03-01 18:30:00	,	,	,	,	,139****0000	,-50.00	,-50.00	,0.00	,0.00	,0.00	,0.00	,0.00	,	,0.00	,0.00	,GV20260301000002-R1	,0.30	,0.00	,
#-----------------------------------------业务明细列表结束------------------------------------
#交易合计：2笔，商家实收共212.30元，商家优惠共0.00元，服务费共-1.27元
#退款合计：1笔，商家实收退款共-50.00元，商家优惠退款共0.00元，服务费退款共0.30元
#导出时间：[2026年03月02日 08:31:22]
"""


def alipay_zip(detail: str = ALIPAY_DETAIL) -> bytes:
    """Alipay's ZIP: GBK member names without the UTF-8 flag, a summary member beside."""
    out = io.BytesIO()
    names = []
    with zipfile.ZipFile(out, "w") as archive:
        for n, (name, text) in enumerate(
            (
                ("20881011064993640156_20260301_业务明细(汇总).csv", "#汇总\n"),
                ("20881011064993640156_20260301_业务明细.csv", detail),
            )
        ):
            raw = name.encode("gbk")
            placeholder = (str(n) * (len(raw) - 4)).encode() + b".csv"  # ASCII: no UTF-8 flag
            names.append((placeholder, raw))
            archive.writestr(placeholder.decode(), text.encode("gbk"))
    data = out.getvalue()
    for placeholder, raw in names:  # put the GBK bytes where the name is, as Alipay's zip has
        data = data.replace(placeholder, raw)
    return data


def test_alipay_zip_with_gbk_names_comments_and_padding_parses_exactly() -> None:
    rows = parse_alipay_bill(alipay_zip())
    assert [(r.out_trade_no, r.kind, r.amount_fen, r.at) for r in rows] == [
        ("GV20260301000001", "payment", 1230, "2026-03-01 12:00:09"),
        ("GV20260301000002", "payment", 20000, "2026-03-01 13:00:09"),
        ("GV20260301000002", "refund", 5000, "2026-03-01 18:30:00"),
    ]
    assert rows[2].refund_no == "GV20260301000002-R1"
    assert rows[0].refund_no == ""
    assert rows[0].trade_no == "2026030122001424330501234567"


def test_alipay_detail_csv_in_utf8_parses_too() -> None:
    assert len(parse_alipay_bill(ALIPAY_DETAIL.encode())) == 3


def test_alipay_bad_amount_names_the_line() -> None:
    bad = ALIPAY_DETAIL.replace(",12.30	,12.30", ",12.3x	,12.30")
    with pytest.raises(InvalidError, match="bill line 6, 订单金额"):
        parse_alipay_bill(bad.encode("gbk"))


def test_alipay_unknown_business_type_is_refused() -> None:
    with pytest.raises(InvalidError, match="业务类型"):
        parse_alipay_bill(
            ALIPAY_DETAIL.replace(",交易	,电费充值 A", ",其他	,电费充值 A").encode()
        )


WECHAT = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n"
    "`2026-03-01 12:00:09,`wxd678efh567hg6787,`1900000109,`0,`,`4200000925202603012997714292,`GV1,`oUpF8u,`MWEB,`SUCCESS,`OTHERS,`CNY,`50.00,`0.00,`0,`0,`0.00,`0.00,`,`,`电费充值, A-101,`,`0.30000,`0.60%,`50.00,`0.00,`\n"
    "`2026-03-01 18:00:00,`wxd678efh567hg6787,`1900000109,`0,`,`4200000925202603012997714293,`GV2,`oUpF8u,`MWEB,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50000000012026030100001,`GV2-R1,`20.00,`0.00,`ORIGINAL,`SUCCESS,`电费充值,`,`-0.12000,`0.60%,`0.00,`20.00,`\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
    "`2,`50.00,`20.00,`0.00,`0.18000,`50.00,`20.00\n"
)


def test_wechat_backticked_bill_with_a_comma_in_a_product_name_parses_exactly() -> None:
    rows = parse_wechat_bill(("\ufeff" + WECHAT).encode())
    assert [(r.out_trade_no, r.kind, r.amount_fen, r.refund_no) for r in rows] == [
        ("GV1", "payment", 5000, ""),
        ("GV2", "refund", 2000, "GV2-R1"),
    ]


def test_wechat_summary_count_must_match_the_lines() -> None:
    with pytest.raises(InvalidError, match="总交易单数 says 3"):
        parse_wechat_bill(WECHAT.replace("`2,`50.00", "`3,`50.00").encode())


def test_wechat_line_without_backticks_names_its_line() -> None:
    with pytest.raises(InvalidError, match="bill line 2"):
        parse_wechat_bill(WECHAT.replace("`2026-03-01 12:00:09,`", "2026-03-01 12:00:09,").encode())


def test_an_empty_wechat_bill_has_no_rows() -> None:
    header = WECHAT.splitlines()[0]
    assert parse_wechat_bill((header + "\n总交易单数,应结订单总金额\n`0,`0.00\n").encode()) == []


def test_sandbox_bill_round_trips() -> None:
    rows = [
        BillRow("sandbox", "GV1", "SB1", "payment", 5000, "2026-03-01 12:00:00"),
        BillRow("sandbox", "GV1", "SB1", "refund", 1, "2026-03-01 13:00:00", "GV1-R1"),
    ]
    assert parse_sandbox_bill(write_sandbox_bill(rows, "t")) == rows


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_invalid_error(data: bytes) -> None:
    for parse in (parse_alipay_bill, parse_wechat_bill, parse_sandbox_bill):
        try:
            parse(data)
        except InvalidError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="`,.0123456789SUCESFNDR交易退款\n-#", max_size=300))
def test_bill_like_text_parses_or_raises_invalid_error(text: str) -> None:
    for parse in (parse_alipay_bill, parse_wechat_bill, parse_sandbox_bill):
        try:
            parse(
                WECHAT.splitlines()[0].encode() + b"\n" + text.encode()
                if parse is parse_wechat_bill
                else text.encode()
            )
        except InvalidError:
            pass
