"""What each kind of message says, in zh-CN and English, and how it is filled in.

A site may word any kind its own way (``NotifyTemplate`` rows, edited in the office); otherwise
the built-in text below is used. Placeholders are ``{name}`` fields of the message's parameters
(every value a string, already formatted: money as yuan with two decimals). Cloud SMS providers
do not take our text: they send their approved template (``templates`` in the channel's
settings) with the same parameters, so the modem and the provider say the same thing.

``KINDS`` says which kinds are urgent: only a non-urgent kind (the credit runway reminder)
waits out quiet hours; a trip, an arrears warning or a login code never does.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import InvalidError
from cloud.models import NotifyTemplate, now_ts

LANGS = ("zh_CN", "en")


@dataclass(frozen=True)
class Kind:
    urgent: bool
    params: tuple[str, ...]
    zh: str
    en: str
    max_age_s: int = 86400  # a message older than this when it could go is dropped (failed)


KINDS: dict[str, Kind] = {
    "alarm1": Kind(
        True,
        ("sign", "unit", "balance"),
        "【{sign}】您好，单元{unit}电表余额{balance}元，已低于一级报警值，请及时充值。",
        "[{sign}] Unit {unit}: the meter balance is {balance} yuan, below alarm level 1. "
        "Please top up.",
    ),
    "alarm2": Kind(
        True,
        ("sign", "unit", "balance"),
        "【{sign}】单元{unit}电表余额{balance}元，已低于二级报警值，余额用尽将自动断电，请尽快充值。",
        "[{sign}] Unit {unit}: the meter balance is {balance} yuan, below alarm level 2. "
        "Power goes off when it runs out; please top up soon.",
    ),
    "arrears": Kind(
        True,
        ("sign", "unit", "balance"),
        "【{sign}】单元{unit}电表已欠费，余额{balance}元，已停止或即将停止供电，请立即充值。",
        "[{sign}] Unit {unit}: the meter is in arrears ({balance} yuan); power is off or "
        "about to go off. Please top up now.",
    ),
    "tripped": Kind(
        True,
        ("sign", "unit", "balance"),
        "【{sign}】单元{unit}因余额不足已断电，当前余额{balance}元，充值后自动恢复供电。",
        "[{sign}] Unit {unit}: power is off for lack of credit (balance {balance} yuan). "
        "It comes back on after a top-up.",
    ),
    "restored": Kind(
        True,
        ("sign", "unit", "balance"),
        "【{sign}】单元{unit}已恢复供电，当前余额{balance}元。",
        "[{sign}] Unit {unit}: power is back on; the balance is {balance} yuan.",
    ),
    "topup": Kind(
        True,
        ("sign", "unit", "amount", "balance"),
        "【{sign}】单元{unit}充值{amount}元已到账，当前余额{balance}元。",
        "[{sign}] Unit {unit}: your top-up of {amount} yuan has arrived; "
        "the balance is {balance} yuan.",
    ),
    "runway": Kind(
        False,
        ("sign", "unit", "days", "balance"),
        "【{sign}】单元{unit}电表余额{balance}元，按近期用电约可再用{days}天，请留意充值。",
        "[{sign}] Unit {unit}: the balance of {balance} yuan lasts about {days} more days "
        "at recent use. Please plan a top-up.",
    ),
    "gateway_lost": Kind(
        True,
        ("sign", "site", "gateway"),
        "【{sign}】{site}采集器{gateway}已失去联系，请检查网络和电源。",
        "[{sign}] {site}: collector {gateway} has lost contact. "
        "Please check its network and power.",
    ),
    "login_code": Kind(
        True,
        ("sign", "code"),
        "【{sign}】您的登录验证码为{code}，5分钟内有效，请勿告诉他人。",
        "[{sign}] Your sign-in code is {code}. It is valid for 5 minutes; do not share it.",
        max_age_s=300,
    ),
    "channel_down": Kind(
        True,
        ("sign", "channel", "reason"),
        "【{sign}】短信通道{channel}故障：{reason}。已切换到备用通道。",
        "[{sign}] SMS channel {channel} is down: {reason}. Using the fallback.",
    ),
}


def yuan(micro_yuan: int) -> str:
    """Money as yuan with two decimals, rounded half away from zero on the exact integer (no
    float): 12_345_000 → "12.35", -3_200_000 → "-3.20"."""
    sign = "-" if micro_yuan < 0 else ""
    cents = (abs(micro_yuan) + 5_000) // 10_000
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def builtin(kind: str, lang: str) -> str:
    spec = KINDS[kind]
    return spec.en if lang == "en" else spec.zh


def text_for(session: Session, kind: str, lang: str, site_id: str | None) -> str:
    """The wording in force: the site's own, else every site's, else the built-in."""
    rows = {
        r.site_id: r.text
        for r in session.scalars(
            select(NotifyTemplate).where(
                NotifyTemplate.kind == kind,
                NotifyTemplate.lang == lang,
                NotifyTemplate.site_id.in_([site_id or "", ""]),
            )
        )
    }
    return rows.get(site_id or "") or rows.get("") or builtin(kind, lang)


def render(
    session: Session, kind: str, lang: str, site_id: str | None, params: Mapping[str, str]
) -> str:
    lang = lang if lang in LANGS else "zh_CN"
    return text_for(session, kind, lang, site_id).format_map(dict(params))


def save(
    session: Session,
    site_id: str,
    kind: str,
    lang: str,
    text: str,
    by: str | None = None,
    now: int | None = None,
) -> NotifyTemplate:
    """A site's wording of ``kind`` (``site_id`` "" for every site). The text may use only the
    kind's own placeholders; an empty text removes the site's wording (back to the built-in)."""
    if kind not in KINDS:
        raise InvalidError(f"unknown message kind {kind!r}", "kind")
    if lang not in LANGS:
        raise InvalidError(f"language must be one of {', '.join(LANGS)}", "lang")
    text = text.strip()
    if len(text) > 1000:
        raise InvalidError("a template is at most 1000 characters", "text")
    try:
        unknown = sorted(fields(text) - set(KINDS[kind].params))
    except ValueError as exc:
        raise InvalidError(f"the template does not parse: {exc}", "text") from None
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in KINDS[kind].params)
        raise InvalidError(f"unknown placeholder {{{unknown[0]}}}; use {allowed}", "text")
    row = session.scalars(
        select(NotifyTemplate).where(
            NotifyTemplate.site_id == site_id,
            NotifyTemplate.kind == kind,
            NotifyTemplate.lang == lang,
        )
    ).first()
    stamp = now if now is not None else now_ts()
    if row is None:
        row = NotifyTemplate(site_id=site_id, kind=kind, lang=lang, text=text)
        session.add(row)
    row.text, row.updated_ts, row.updated_by = text, stamp, by
    if not text:
        session.delete(row)
    session.flush()
    return row
