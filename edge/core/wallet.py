"""The wallet: balance and ledger of one meter (F39, B09).

Ledger identity, kept by every function here: ``balance == credits - refunds - charges``, where
``credits`` counts purchases, transfers-in and settlement credits, and ``refunds`` counts refunds,
reversals and settlement refunds (architecture.md, "Where the truth lives").

Purchase numbers. A credit carries the meter's purchase number ``n`` and is applied only when
``n == last_purchase_no + 1``. A later ``n`` is held (at most ``MAX_HELD``, no more than
``MAX_GAP`` ahead) and the missing numbers are asked for with ``request_purchase``; when the gap
fills, the held credits are applied in number order. An ``n`` at or below the last is a duplicate
and returns the original result. A credit that is refused (hoarding cap, account not open)
still *uses up* its number, so later purchases are not held forever behind it; the cloud sees
``rejected`` and gives the money back.

Bounded state: the results of the last ``PURCHASE_HISTORY`` purchases are kept (for duplicates
and reversals): ``[n, amount, status, reason, balance_after, reversed]``; held credits are
``[n, amount]`` sorted by ``n``.
"""

from edge.core.compat import Any

PURCHASE_HISTORY = 64
MAX_HELD = 32
MAX_GAP = 64

APPLIED = "applied"
REJECTED = "rejected"
DUPLICATE = "duplicate"
HELD = "held"


def _result(
    actions: list[dict[str, Any]],
    op: str,
    status: str,
    reason: str | None,
    balance: int,
    purchase_no: int | None = None,
    original: str | None = None,
) -> None:
    result = {
        "type": "result",
        "op": op,
        "status": status,
        "reason": reason,
        "balance_micro_yuan": balance,
        "purchase_no": purchase_no,
    }
    if original is not None:
        # A duplicate says what became of the purchase the first time (protocol.md "result").
        result["original_status"] = original
    actions.append(result)


def _ledger(
    actions: list[dict[str, Any]], kind: str, amount: int, purchase_no: int | None = None
) -> None:
    actions.append(
        {"type": "ledger", "kind": kind, "amount_micro_yuan": amount, "purchase_no": purchase_no}
    )


def _account_refusal(state: dict[str, Any]) -> str | None:
    account = state["account"]
    if account == "opened":
        return None
    if account == "closed":
        return "the account is closed; open it again before selling or refunding"
    return "the account is not opened; open it first"


def _record(state: dict[str, Any], n: int, amount: int, status: str, reason: str | None) -> None:
    purchases = state["purchases"]
    purchases.append([n, amount, status, reason, state["balance_micro_yuan"], False])
    if len(purchases) > PURCHASE_HISTORY:
        del purchases[0]
    state["last_purchase_no"] = n


def _apply_credit(
    state: dict[str, Any], n: int, amount: int, cap: int | None, actions: list[dict[str, Any]]
) -> None:
    reason = _account_refusal(state)
    if reason is None and cap is not None and state["balance_micro_yuan"] + amount > cap:
        reason = "hoarding cap: the balance %d + %d would exceed the cap %d micro-yuan" % (
            state["balance_micro_yuan"],
            amount,
            cap,
        )
    if reason is not None:
        _record(state, n, amount, REJECTED, reason)
        _result(actions, "credit", REJECTED, reason, state["balance_micro_yuan"], n)
        return
    state["balance_micro_yuan"] += amount
    state["credits_micro_yuan"] += amount
    _record(state, n, amount, APPLIED, None)
    _ledger(actions, "credit", amount, n)
    _result(actions, "credit", APPLIED, None, state["balance_micro_yuan"], n)


def _find(state: dict[str, Any], n: int) -> Any:
    for rec in state["purchases"]:
        if rec[0] == n:
            return rec
    return None


def credit(
    state: dict[str, Any], n: int, amount: int, cap: int | None, actions: list[dict[str, Any]]
) -> None:
    """Apply, hold or answer as duplicate the credit numbered ``n``."""
    last = state["last_purchase_no"]
    if n <= last:
        rec = _find(state, n)
        if rec is None:
            reason = "purchase %d is a duplicate, older than the %d purchases kept" % (
                n,
                PURCHASE_HISTORY,
            )
            _result(actions, "credit", DUPLICATE, reason, state["balance_micro_yuan"], n)
        else:
            reason = "purchase %d was already %s" % (n, rec[2])
            if rec[3]:
                reason += ": " + rec[3]
            _result(actions, "credit", DUPLICATE, reason, rec[4], n, rec[2])
        return
    if n == last + 1:
        _apply_credit(state, n, amount, cap, actions)
        held = state["held"]
        while held and held[0][0] == state["last_purchase_no"] + 1:
            h = held.pop(0)
            _apply_credit(state, h[0], h[1], cap, actions)
        return
    held = state["held"]
    known = False
    for h in held:
        if h[0] == n:
            known = True
    if not known:
        if n - last > MAX_GAP or len(held) >= MAX_HELD:
            reason = "purchase %d is too far ahead of the last applied %d; send %d first" % (
                n,
                last,
                last + 1,
            )
            _result(actions, "credit", REJECTED, reason, state["balance_micro_yuan"], n)
            return
        held.append([n, amount])
        held.sort()
    numbers = [h[0] for h in held]
    for missing in range(last + 1, n):
        if missing not in numbers:
            actions.append({"type": "request_purchase", "purchase_no": missing})
    reason = "waiting for purchase %d" % (last + 1)
    _result(actions, "credit", HELD, reason, state["balance_micro_yuan"], n)


def refund(state: dict[str, Any], amount: int, actions: list[dict[str, Any]]) -> None:
    """Pay ``amount`` back, only if the balance stays >= 0."""
    reason = _account_refusal(state)
    balance = state["balance_micro_yuan"]
    if reason is None and balance - amount < 0:
        reason = "refund of %d would make the balance %d negative" % (amount, balance)
    if reason is not None:
        _result(actions, "refund", REJECTED, reason, balance)
        return
    state["balance_micro_yuan"] = balance - amount
    state["refunds_micro_yuan"] += amount
    _ledger(actions, "refund", amount)
    _result(actions, "refund", APPLIED, None, state["balance_micro_yuan"])


def reversal(state: dict[str, Any], n: int, actions: list[dict[str, Any]]) -> None:
    """Take back purchase ``n`` (冲正), only if it was applied and the balance stays >= 0."""
    balance = state["balance_micro_yuan"]
    rec = _find(state, n)
    reason = _account_refusal(state)
    if reason is None:
        if rec is None and n > state["last_purchase_no"]:
            reason = "purchase %d has not been applied yet; nothing to reverse" % n
        elif rec is None:
            reason = "purchase %d is older than the %d purchases kept" % (n, PURCHASE_HISTORY)
        elif rec[2] != APPLIED:
            reason = "purchase %d was %s; nothing to reverse" % (n, rec[2])
        elif rec[5]:
            msg = "purchase %d was already reversed" % n
            _result(actions, "reversal", DUPLICATE, msg, balance, n)
            return
        elif balance - rec[1] < 0:
            reason = "reversing purchase %d (%d) would make the balance %d negative" % (
                n,
                rec[1],
                balance,
            )
    if reason is not None:
        _result(actions, "reversal", REJECTED, reason, balance, n)
        return
    amount = rec[1]
    rec[5] = True
    state["balance_micro_yuan"] = balance - amount
    state["refunds_micro_yuan"] += amount
    _ledger(actions, "reversal", amount, n)
    _result(actions, "reversal", APPLIED, None, state["balance_micro_yuan"], n)


def transfer_in(state: dict[str, Any], amount: int, actions: list[dict[str, Any]]) -> None:
    """Opening balance moved from an old meter (not subject to the hoarding cap: it is not a
    sale, the money was paid long ago)."""
    reason = _account_refusal(state)
    if reason is not None:
        _result(actions, "transfer_in", REJECTED, reason, state["balance_micro_yuan"])
        return
    state["balance_micro_yuan"] += amount
    state["credits_micro_yuan"] += amount
    _ledger(actions, "transfer_in", amount)
    _result(actions, "transfer_in", APPLIED, None, state["balance_micro_yuan"])


def charge(state: dict[str, Any], amount: int) -> None:
    """Take a consumption charge (may drive the balance negative: the relay policy decides)."""
    state["balance_micro_yuan"] -= amount
    state["charges_micro_yuan"] += amount


def settle(state: dict[str, Any], actions: list[dict[str, Any]]) -> None:
    """Account close: bring the balance to zero, paying credit back or writing a debt off."""
    balance = state["balance_micro_yuan"]
    if balance > 0:
        state["refunds_micro_yuan"] += balance
        _ledger(actions, "settlement_refund", balance)
    elif balance < 0:
        state["credits_micro_yuan"] -= balance
        _ledger(actions, "settlement_credit", -balance)
    state["balance_micro_yuan"] = 0
