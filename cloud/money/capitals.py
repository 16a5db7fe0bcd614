"""An amount in Chinese capitals (大写金额), as receipts and slips print it.

The rules are those of the People's Bank's payment-settlement rules for filling in bills
(《支付结算办法》, 附一 正确填写票据和结算凭证的基本规定), as every receipt in China follows them:

- digits 零壹贰叁肆伍陆柒捌玖, units 拾佰仟 within a group of four, 万 亿 between groups; 元角分;
  ``人民币`` in front, no gap;
- an amount that ends at 元 ends with 整; one that ends at 角 or 分 has no 整;
- zeros inside the number are written, several in a row as one 零 (1005.07 → 壹仟零伍元零柒分,
  100100 → 壹拾万零壹佰元整); a 零 between 元 and 角 is not written (1000.50 → 壹仟元伍角),
  one between 元 and 分 is (10.05 → 壹拾元零伍分); 10 is 壹拾 (never a bare 拾);
- the amount is rounded half up to the fen first.

A refund, a reversal or a settlement refund is printed as the positive amount under its
document type; a negative amount here is a programming error (``ValueError``).

The digits are not user-interface text (they are the legal form of the amount, the same in an
English page), so they live here and not in the translation catalog.
"""

from __future__ import annotations

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿", "万亿")
MICRO_PER_FEN = 10_000


def to_fen(micro_yuan: int) -> int:
    """Integer micro-yuan → fen, rounded half up."""
    if micro_yuan < 0:
        raise ValueError(f"an amount in capitals is never negative, got {micro_yuan}")
    return (micro_yuan + MICRO_PER_FEN // 2) // MICRO_PER_FEN


def _group(value: int) -> str:
    """One group of four digits (1 … 9999), zeros inside it as one 零, trailing zeros left out."""
    out, zero = "", False
    for power in (3, 2, 1, 0):
        digit = value // 10**power % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += DIGITS[0]
            zero = False
        out += DIGITS[digit] + _UNITS[power]
    return out


def _yuan(value: int) -> str:
    """The whole yuan (≥ 1): groups of four from the top, a 零 where a group starts below its
    thousands or whole groups are empty."""
    groups = []
    while value:
        groups.append(value % 10_000)
        value //= 10_000
    if len(groups) > len(_GROUPS):
        raise ValueError("an amount of 10,000 万亿 yuan or more has no capitals here")
    out, gap = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            gap = bool(out)
            continue
        if out and (gap or group < 1000):
            out += DIGITS[0]
        out += _group(group) + _GROUPS[index]
        gap = False
    return out


def capitals(micro_yuan: int, prefix: str = "人民币") -> str:
    """``100_500_000`` (100.50 yuan) → ``人民币壹佰元伍角``; 0 → ``人民币零元整``."""
    fen = to_fen(int(micro_yuan))
    whole, rest = divmod(fen, 100)
    jiao, fen_digit = divmod(rest, 10)
    if whole == 0 and rest == 0:
        return f"{prefix}零元整"
    text = f"{_yuan(whole)}元" if whole else ""
    if rest == 0:
        return f"{prefix}{text}整"
    if jiao:
        text += f"{DIGITS[jiao]}角"
    elif whole:
        text += DIGITS[0]
    if fen_digit:
        text += f"{DIGITS[fen_digit]}分"
    return prefix + text
