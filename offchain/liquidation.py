"""Liquidation, insurance fund and loss socialisation: the integer reference of the chain.

Implements ``docs/fixed-point.md`` §8 exactly (the ``Liquidator`` contract is tested against it).
Semantics: docs/design.md §6. One liquidation of account A (equity ``E``, maintenance ``M``, initial
``I = div_ceil(M * k, WAD)``) by a liquidator L:

1. fraction ``f`` (WAD): ``WAD`` when ``E <= 0``, else
   ``f = min(WAD, div_ceil((I - E) * WAD, I - div_ceil(p * M, WAD)))`` — the smallest f with
   ``E - p f M >= k (1 - f) M`` (scan risk, pad and short-option minimum are positively
   homogeneous, so taking f of every position leaves ``(1 - f) M``). A caller's ``max_fraction``
   caps it but may not go below ``min(f, min_fraction)`` (no dust griefing); when the remaining MM
   ``M - div_ceil(f * M, WAD)`` would be below ``min_remaining_mm`` the whole account is taken.
2. sizes taken ``t_j = sign(q_j) * div_ceil(|q_j| * f, WAD)`` (away from zero), moved A -> L;
   L pays A ``X = div_ceil(sum_j t_j * mark_j, WAD)`` (negative: A pays L; rounded for A).
   Linked collateral whose spot leg is in A's book goes with them in the same proportion
   (``min(balance, div_ceil(balance * f, WAD))`` units, all of it at ``f = WAD``), paid at the
   sale price of step 5, so a liquidation never cuts a hedge away from the collateral it hedges.
3. penalty ``min(div_ceil(p * div_ceil(f * M, WAD), WAD), max(E', 0))`` with ``E'`` A's equity
   after step 2; ``div_floor(penalty * share, WAD)`` to L, the rest to the insurance fund.
4. post-condition of a partial (f < WAD) liquidation: A ends at or above IM (capped: its health
   ``E - M`` does not fall); if integer rounding ever broke it, it is redone with ``f = WAD``.
5. full liquidation with negative cash: A's remaining collateral is sold to L, asset by asset in
   vault order, at the oracle price less ``d = min(discount, haircut)``: ``x = min(balance,
   div_ceil(need * WAD**2, scale * price * (WAD - d)))`` units for
   ``pay = x * scale * price // WAD * (WAD - d) // WAD``.
6. bad debt ``D = -cash`` when cash is still negative and A holds no valued collateral: the
   insurance fund pays ``min(D, max(fund, 0), div_floor(fund_share * D, WAD))``; the remainder
   ``R`` is socialised over the open interest opposite to A's former positions (see
   ``socialise``). When none is eligible the fund pays all of ``D``.

Worked example (numbers from ``tests/test_liquidation_ref.py``): A holds 1 long BTC future at mark
60,000 on the CME grid, PSR 16%, and has equity E = 9,000 USD: M = 9,600.38 (the 16% move plus
the encoding's rounding), I = 12,000.47. With p = 10%,
``f = (12,000.47 - 9,000) / (12,000.47 - 960.04) = 0.271771``: L takes 0.271771 BTC and pays A
16,306.27 USD, A pays a 260.91 USD penalty and ends with E = 8,739.09 = its new IM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from offchain.fixed_point import WAD, div_ceil, div_floor
from offchain.margin import (
    AccountInt,
    MarketInt,
    account_margin_int,
    basis_int,
    equity_int,
    perp_basis_shift,
)

__all__ = [
    "LONG",
    "SHORT",
    "LiquidationError",
    "LiquidationParams",
    "LiquidationResult",
    "LossLedger",
    "liquidation_fraction",
    "choose_fraction",
    "taken_sizes",
    "position_cash",
    "penalty_amount",
    "split_penalty",
    "sale_units",
    "sale_pay",
    "linked_taken",
    "socialise",
    "pending_charge",
    "liquidate",
]

#: Side codes of the loss indices: a long position is charged from the long index.
LONG, SHORT = 0, 1

MAX_PENALTY_RATE = WAD // 2
MAX_DISCOUNT = WAD // 2
MAX_MIN_REMAINING_MM = 10**24


class LiquidationError(ValueError):
    """The chain reverts with ``str(err)`` (its reason string) where the model raises this."""


def _check(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    return value


@dataclass(frozen=True)
class LiquidationParams:
    """Admin parameters (WAD), with the contract's bounds and defaults.

    Attributes:
        im_factor: IM / MM, in [1, 3] (default 1.25; the engine's value).
        penalty_rate: penalty per unit of MM taken over, in [0, 0.5] (default 0.1).
        liquidator_share: liquidator's share of the penalty, in [0, 1] (default 0.5).
        min_fraction: smallest fraction a caller may cap to, in [0, 1] (default 0.1).
        min_remaining_mm: USD; a remaining MM below it takes the whole account (default 100).
        collateral_discount: discount on collateral sold, in [0, 0.5], capped by each asset's
            haircut (default 0.05).
        fund_share: the largest share of a bad debt the insurance fund pays while opposite
            open interest can bear the rest, in [0, 1] (default 1: the fund pays first).
    """

    im_factor: int = 125 * WAD // 100
    penalty_rate: int = WAD // 10
    liquidator_share: int = WAD // 2
    min_fraction: int = WAD // 10
    min_remaining_mm: int = 100 * WAD
    collateral_discount: int = 5 * WAD // 100
    fund_share: int = WAD

    def __post_init__(self) -> None:
        _check("im_factor", self.im_factor, WAD, 3 * WAD)
        _check("penalty_rate", self.penalty_rate, 0, MAX_PENALTY_RATE)
        _check("liquidator_share", self.liquidator_share, 0, WAD)
        _check("min_fraction", self.min_fraction, 0, WAD)
        _check("min_remaining_mm", self.min_remaining_mm, 0, MAX_MIN_REMAINING_MM)
        _check("collateral_discount", self.collateral_discount, 0, MAX_DISCOUNT)
        _check("fund_share", self.fund_share, 0, WAD)


@dataclass(frozen=True)
class LossLedger:
    """Socialisation state: insurance fund cash (WAD, the fund's engine cash, negative while it
    advances socialised losses), open interest per instrument (WAD, sum of longs), loss indices
    per instrument ``(long, short)`` (WAD USD per contract) and the bad-debt totals."""

    fund: int = 0
    open_interest: Mapping[int, int] = field(default_factory=dict)
    index: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    bad_debt: int = 0
    fund_payouts: int = 0
    socialised: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "open_interest", MappingProxyType(dict(self.open_interest)))
        object.__setattr__(self, "index", MappingProxyType(dict(self.index)))


@dataclass(frozen=True)
class LiquidationResult:
    """Everything one liquidation moves (WAD unless noted)."""

    fraction: int
    taken: Mapping[int, int]
    position_cash: int
    penalty: int
    penalty_to_liquidator: int
    penalty_to_fund: int
    collateral_sold: Mapping[int, int]  # asset -> token units
    collateral_paid: int
    bad_debt: int
    fund_payout: int
    socialised: int
    index_deltas: Mapping[int, tuple[int, int]]  # instrument -> (side, delta)
    account: AccountInt
    liquidator: AccountInt
    ledger: LossLedger
    # the socialised share of the liquidator's netted opposite size, paid at once (§8.8)
    liquidator_charge: int = 0


def liquidation_fraction(equity: int, mm: int, im: int, penalty_rate: int) -> int:
    """The smallest ``f`` (WAD, rounded up, at most ``WAD``) restoring ``equity >= IM``.

    ``f = div_ceil((I - E) * WAD, I - div_ceil(p * M, WAD))``; ``WAD`` when ``E <= 0``.

    >>> liquidation_fraction(9_000 * WAD, 9_600 * WAD, 12_000 * WAD, WAD // 10)
    271739130434782609
    """
    if equity <= 0:
        return WAD
    if not equity < mm <= im:
        raise ValueError("liquidation_fraction needs 0 < equity < MM <= IM")
    den = im - div_ceil(penalty_rate * mm, WAD)
    return min(WAD, div_ceil((im - equity) * WAD, den))


def choose_fraction(
    equity: int, mm: int, im: int, params: LiquidationParams, max_fraction: int
) -> tuple[int, bool]:
    """``(f, capped)``: the closed form, capped by ``max_fraction`` (not below
    ``min(f, min_fraction)``), raised to ``WAD`` when the remaining MM would be dust.

    Raises:
        LiquidationError: ``liquidation: bad fraction`` (cap outside (0, WAD]) or
            ``liquidation: fraction too small``.
    """
    if not 0 < max_fraction <= WAD:
        raise LiquidationError("liquidation: bad fraction")
    f = liquidation_fraction(equity, mm, im, params.penalty_rate)
    capped = False
    if max_fraction < f:
        if max_fraction < min(f, params.min_fraction):
            raise LiquidationError("liquidation: fraction too small")
        f = max_fraction
        capped = True
    if mm - div_ceil(f * mm, WAD) < params.min_remaining_mm:
        return WAD, False
    return f, capped


def taken_sizes(positions: Mapping[int, int], f: int) -> dict[int, int]:
    """``t_j = sign(q_j) * div_ceil(|q_j| * f, WAD)`` in position order (zero sizes skipped)."""
    out = {}
    for j, q in positions.items():
        if q == 0:
            continue
        t = div_ceil(abs(q) * f, WAD)
        out[j] = t if q > 0 else -t
    return out


def position_cash(taken: Mapping[int, int], market: MarketInt) -> int:
    """Cash L pays A for the positions taken: ``div_ceil(sum_j t_j * mark_j, WAD)``."""
    return div_ceil(sum(t * market.instruments[j].mark for j, t in taken.items()), WAD)


def penalty_amount(f: int, mm: int, equity_after: int, penalty_rate: int) -> int:
    """``min(div_ceil(p * div_ceil(f * M, WAD), WAD), max(E', 0))``."""
    raw = div_ceil(penalty_rate * div_ceil(f * mm, WAD), WAD)
    return min(raw, max(equity_after, 0))


def split_penalty(penalty: int, share: int) -> tuple[int, int]:
    """``(to_liquidator, to_fund) = (div_floor(pen * share, WAD), pen - that)``."""
    to_liq = div_floor(penalty * share, WAD)
    return to_liq, penalty - to_liq


def _scale(decimals: int) -> int:
    return 10 ** (18 - decimals)


def sale_pay(units: int, scale: int, price: int, discount: int) -> int:
    """Cash L pays for ``units`` of collateral:
    ``units * scale * price // WAD * (WAD - d) // WAD``."""
    return units * scale * price // WAD * (WAD - discount) // WAD


def sale_units(need: int, balance: int, scale: int, price: int, discount: int) -> int:
    """Units sold to cover ``need`` (WAD): ``min(balance, div_ceil(need * WAD**2,
    scale * price * (WAD - d)))``; 0 when the price is 0."""
    den = scale * price * (WAD - discount)
    if den == 0 or need <= 0:
        return 0
    return min(balance, div_ceil(need * WAD * WAD, den))


def socialise(
    remainder: int,
    taken: Mapping[int, int],
    market: MarketInt,
    open_interest: Mapping[int, int],
) -> dict[int, tuple[int, int, int]]:
    """Spread ``remainder`` over the open interest opposite to the positions taken.

    Eligible instruments: those taken with open interest ``open_interest[j]`` > 0 (the caller
    passes the open interest after the transfer plus the liquidator's netted opposite size), in
    position order. Weights ``w_j = |t_j| * mark_j // WAD`` (``|t_j|`` when they all vanish); shares
    ``R_j = R * w_j // W`` except the last eligible one, which takes the rest, so ``sum R_j = R``.
    Index increment ``delta_j = div_ceil(R_j * WAD, OI_j)`` on the side opposite to A's (A long:
    shorts pay). Returns ``{j: (side, delta_j, R_j)}``; empty when nothing is eligible.
    """
    eligible = [j for j, t in taken.items() if t != 0 and open_interest.get(j, 0) > 0]
    if remainder <= 0 or not eligible:
        return {}
    weights = [abs(taken[j]) * market.instruments[j].mark // WAD for j in eligible]
    if sum(weights) == 0:
        weights = [abs(taken[j]) for j in eligible]
    total = sum(weights)
    out = {}
    given = 0
    for n, j in enumerate(eligible):
        share = remainder - given if n == len(eligible) - 1 else remainder * weights[n] // total
        given += share
        side = SHORT if taken[j] > 0 else LONG
        out[j] = (side, div_ceil(share * WAD, open_interest[j]), share)
    return out


def netted_opposite(t: int, q_liquidator: int) -> int:
    """The part of the liquidator's size ``q_liquidator``, opposite to the size ``t`` it takes
    over, that the takeover closes: ``min(|t|, |q|)`` when the signs differ, else 0. Socialisation
    counts it as opposite open interest and charges it at once (§8.8), so a counterparty that
    liquidates bears the same loss as when a third party does."""
    return min(abs(t), abs(q_liquidator)) if t * q_liquidator < 0 else 0


def pending_charge(
    positions: Mapping[int, int],
    index: Mapping[int, tuple[int, int]],
    snapshots: Mapping[int, tuple[int, int]],
) -> int:
    """Socialised loss owed by a holder: ``sum_j div_ceil(|q_j| * (idx_side - snap_side), WAD)``
    with side = long for ``q > 0``, short for ``q < 0``. Zero for an account without positions."""
    total = 0
    for j, q in positions.items():
        if q == 0:
            continue
        side = LONG if q > 0 else SHORT
        idx = index.get(j, (0, 0))[side]
        snap = snapshots.get(j, (0, 0))[side]
        total += div_ceil(abs(q) * (idx - snap), WAD)
    return total


def _apply_positions(positions: Mapping[int, int], delta: Mapping[int, int], sign: int) -> dict:
    out = dict(positions)
    for j, t in delta.items():
        q = out.get(j, 0) + sign * t
        if q == 0:
            out.pop(j, None)
        else:
            out[j] = q
    return out


def linked_taken(account: AccountInt, market: MarketInt, f: int) -> dict[int, int]:
    """Units of linked collateral taken with the positions at fraction ``f`` (§8.2): for every
    asset whose spot leg is in the account's book (linked, priced, held, a non-zero position on
    its underlying), ``min(balance, div_ceil(balance * f, WAD))``; in vault order."""
    held = {market.instruments[j].underlying for j, q in account.positions.items() if q != 0}
    out = {}
    for i in sorted(account.collateral):
        balance, col = account.collateral[i], market.collaterals[i]
        if col.underlying in held and col.price != 0 and balance != 0:
            out[i] = min(balance, div_ceil(balance * f, WAD))
    return out


def _sale_pay_of(i: int, units: int, market: MarketInt, params: LiquidationParams) -> int:
    col = market.collaterals[i]
    d = min(params.collateral_discount, col.haircut)
    return sale_pay(units, _scale(col.decimals), col.price, d)


def _value_of_collateral(collateral: Mapping[int, int], market: MarketInt) -> int:
    total = 0
    for i, amount in collateral.items():
        col = market.collaterals[i]
        total += sale_pay(amount, _scale(col.decimals), col.price, col.haircut)
    return total


def liquidate(
    account: AccountInt,
    liquidator: AccountInt,
    market: MarketInt,
    params: LiquidationParams,
    ledger: LossLedger,
    max_fraction: int = WAD,
    same: bool = False,
    fresh: bool = True,
) -> LiquidationResult:
    """One liquidation, exactly as ``Liquidator.liquidate`` (pending socialisation charges
    already realised on both accounts).

    Args:
        account: A.
        liquidator: L.
        market: oracle state.
        params: parameters.
        ledger: insurance fund, open interest, loss indices, bad-debt totals.
        max_fraction: the caller's cap (WAD, in (0, WAD]).
        same: L is A (self-liquidation).
        fresh: the oracle data of A's positions is fresh.

    Raises:
        LiquidationError: with the contract's reason string.
    """
    if same:
        raise LiquidationError("liquidation: self")
    if not fresh:
        raise LiquidationError("liquidation: stale oracle")
    st = account_margin_int(account, market, params.im_factor)
    eq, mm, im = st.equity, st.maintenance_margin, st.initial_margin
    if eq >= mm:
        raise LiquidationError("liquidation: healthy")
    f, capped = choose_fraction(eq, mm, im, params, max_fraction)
    # the chain judges cash net of the basis, which moving positions leaves as it is: a moved
    # perp's funding stays with its giver through the bases (docs/fixed-point.md §10)
    off = div_ceil(basis_int(account, market), WAD)
    while True:
        taken = taken_sizes(account.positions, f)
        a_basis = account.vm_basis + sum(perp_basis_shift(market, j, -t) for j, t in taken.items())
        x = position_cash(taken, market)
        a_pos = _apply_positions(account.positions, taken, -1)
        took = linked_taken(account, market, f)
        linked_paid = sum(_sale_pay_of(i, units, market, params) for i, units in took.items())
        a_coll = {i: n - took.get(i, 0) for i, n in account.collateral.items()}
        a_coll = {i: n for i, n in a_coll.items() if n}
        eq_after = equity_int(
            AccountInt(account.cash + x + linked_paid, a_pos, a_coll, a_basis), market
        )
        pen = penalty_amount(f, mm, eq_after, params.penalty_rate)
        a_cash = account.cash + x + linked_paid - pen
        if f == WAD:
            break
        after = account_margin_int(
            AccountInt(a_cash, a_pos, a_coll, a_basis), market, params.im_factor
        )
        if capped and after.health >= eq - mm:
            break
        if not capped and after.equity >= after.initial_margin:
            break
        f = WAD
    to_liq, to_fund = split_penalty(pen, params.liquidator_share)
    # linked collateral taken with the positions, then the sale (full liquidation, negative cash)
    l_coll = dict(liquidator.collateral)
    for i, units in took.items():
        l_coll[i] = l_coll.get(i, 0) + units
    sold: dict[int, int] = dict(took)
    paid = linked_paid
    if f == WAD:
        for i in sorted(a_coll):
            if a_cash - off >= 0:
                break
            col = market.collaterals[i]
            d = min(params.collateral_discount, col.haircut)
            units = sale_units(off - a_cash, a_coll[i], _scale(col.decimals), col.price, d)
            if units == 0:
                continue
            pay = sale_pay(units, _scale(col.decimals), col.price, d)
            a_coll[i] -= units
            if a_coll[i] == 0:
                del a_coll[i]
            l_coll[i] = l_coll.get(i, 0) + units
            sold[i] = sold.get(i, 0) + units
            paid += pay
            a_cash += pay
    l_pos = _apply_positions(liquidator.positions, taken, +1)
    l_cash = liquidator.cash - x + to_liq - paid
    l_basis = liquidator.vm_basis + sum(perp_basis_shift(market, j, t) for j, t in taken.items())
    new_l = AccountInt(l_cash, l_pos, l_coll, l_basis)
    lst = account_margin_int(new_l, market, params.im_factor)
    if lst.equity < lst.initial_margin:
        raise LiquidationError("liquidation: liquidator below IM")
    # open interest after the transfer
    oi = dict(ledger.open_interest)
    for j, t in taken.items():
        qa, ql = account.positions.get(j, 0), liquidator.positions.get(j, 0)
        before = max(qa, 0) + max(ql, 0)
        after = max(qa - t, 0) + max(ql + t, 0)
        oi[j] = oi.get(j, 0) - before + after
    fund = ledger.fund + to_fund
    bad = payout = social = 0
    deltas: dict[int, tuple[int, int]] = {}
    index = dict(ledger.index)
    charge = 0
    if f == WAD and a_cash - off < 0 and _value_of_collateral(a_coll, market) == 0:
        # collateral without a fresh price (price 0 here) may still cover the debt
        if any(units and market.collaterals[i].price == 0 for i, units in a_coll.items()):
            raise LiquidationError("liquidation: stale collateral")
        bad = off - a_cash
        payout = min(bad, max(fund, 0), div_floor(params.fund_share * bad, WAD))
        rest = bad - payout
        # the liquidator's opposite size closed by the takeover still bears its share
        netted = {j: netted_opposite(t, liquidator.positions.get(j, 0)) for j, t in taken.items()}
        base = {j: oi.get(j, 0) + netted[j] for j in taken}
        spread = socialise(rest, taken, market, base)
        if spread:
            social = rest
            for j, (side, delta, _share) in spread.items():
                deltas[j] = (side, delta)
                cur = list(index.get(j, (0, 0)))
                cur[side] += delta
                index[j] = (cur[0], cur[1])
                charge += div_ceil(netted[j] * delta, WAD)
        else:
            payout = bad
        if charge:
            if lst.equity - charge < lst.initial_margin:
                raise LiquidationError("liquidation: liquidator below IM")
            new_l = AccountInt(
                new_l.cash - charge, new_l.positions, new_l.collateral, new_l.vm_basis
            )
            fund += charge
        fund -= bad
        a_cash = off
    new_ledger = LossLedger(
        fund,
        oi,
        index,
        ledger.bad_debt + bad,
        ledger.fund_payouts + payout,
        ledger.socialised + social,
    )
    return LiquidationResult(
        fraction=f,
        taken=MappingProxyType(taken),
        position_cash=x,
        penalty=pen,
        penalty_to_liquidator=to_liq,
        penalty_to_fund=to_fund,
        collateral_sold=MappingProxyType(sold),
        collateral_paid=paid,
        bad_debt=bad,
        fund_payout=payout,
        socialised=social,
        index_deltas=MappingProxyType(deltas),
        account=AccountInt(a_cash, a_pos, a_coll, a_basis),
        liquidator=new_l,
        ledger=new_ledger,
        liquidator_charge=charge,
    )
