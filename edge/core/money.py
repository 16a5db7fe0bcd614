"""Exact money: charges with a carried remainder, and integer splits that sum exactly.

Prices are micro-yuan per kWh and energy is Wh, so ``wh * price`` is in units of 1/1000
micro-yuan. A charge is ``(sum(wh * price) + carry) // 1000`` and the remainder is carried per
meter, so the sum of every charge ever made equals the exact product, to the micro-yuan
(architecture.md, "Money, energy, time").
"""

from edge.core.compat import Any

# wh * (micro-yuan per kWh) / 1000 = micro-yuan
WH_PER_KWH = 1000


def charge(pieces: list[dict[str, Any]], carry: int) -> tuple[int, int]:
    """Charge for rated pieces (``wh``, ``price``) with the meter's carry.

    Returns ``(amount_micro_yuan, new_carry)``; ``0 <= new_carry < 1000``.
    """
    total = carry
    for piece in pieces:
        total += piece["wh"] * piece["price"]
    return total // WH_PER_KWH, total % WH_PER_KWH


def split_by_weights(total: int, weights: list[int]) -> list[int]:
    """Split the non-negative integer ``total`` in proportion to non-negative integer weights.

    Largest remainder (Hamilton): each part is ``total * w // sum(w)``, and the units left over go
    one each to the parts with the largest remainders, earliest first on ties. The parts always
    sum to ``total`` exactly and the result is deterministic. All-zero weights give everything to
    the last part.
    """
    n = len(weights)
    if n == 0:
        raise ValueError("split_by_weights needs at least one weight")
    weight_sum = 0
    for w in weights:
        if w < 0:
            raise ValueError("split_by_weights: weights must be >= 0, got %d" % w)
        weight_sum += w
    if weight_sum == 0:
        parts = [0] * n
        parts[n - 1] = total
        return parts
    parts = []
    remainders = []
    given = 0
    for i in range(n):
        q, r = divmod(total * weights[i], weight_sum)
        parts.append(q)
        remainders.append((-r, i))
        given += q
    left = total - given
    if left:
        remainders.sort()
        for k in range(left):
            parts[remainders[k][1]] += 1
    return parts
