# pragma version 0.4.3
"""
@title Liquidation math shared by Liquidator (which enforces it) and LiquidationViews (which
       previews it), so a preview can never disagree with a liquidation
@custom:contract-name liquidation
@notice docs/fixed-point.md §8: the fraction f (closed form, caller cap, anti-dust), the sizes
        taken (rounded away from zero) with f of the linked collateral whose leg is in the
        book, the cash at mark, the penalty (capped by the equity),
        the post-condition with its fallback to a full liquidation, the collateral sale at a
        discount and the bad debt; and the socialised-loss charge of one position.
@custom:security Stateless. An account arrives as the engine assembles it
                 (`MarginEngine.margin_inputs` with the stale-at-zero rule: a collateral price
                 that is stale or never posted counts as zero instead of blocking the
                 liquidation), so the margin seen here is the engine's.
"""


from . import fixed_point as fp
from . import margin


MASK128: constant(uint256) = 2**128 - 1
# Loss-index word: long index << 128 | short index (WAD USD per contract each).
LONG: constant(uint256) = 0
SHORT: constant(uint256) = 1
# Preview status codes (NOT_AN_ACCOUNT: a system contract, `Liquidator.is_system_account`).
OK: constant(uint256) = 0
HEALTHY: constant(uint256) = 1
STALE: constant(uint256) = 2
BELOW_MINIMUM: constant(uint256) = 3
BAD_CAP: constant(uint256) = 4
UNPRICED: constant(uint256) = 5
NOT_AN_ACCOUNT: constant(uint256) = 6


struct Params:
    penalty_rate: uint256
    liquidator_share: uint256
    min_fraction: uint256
    min_remaining_mm: uint256
    collateral_discount: uint256


struct Plan:
    fraction: uint256
    ids: DynArray[uint256, fp.MAX_POSITIONS]
    taken: DynArray[int256, fp.MAX_POSITIONS]
    marks: DynArray[uint256, fp.MAX_POSITIONS]
    position_cash: int256
    penalty: uint256
    to_liquidator: uint256
    to_fund: uint256
    sold: DynArray[uint256, fp.MAX_ASSETS]
    sale_cash: DynArray[uint256, fp.MAX_ASSETS]
    paid: uint256
    cash_after: int256
    bad_debt: uint256
    # bit j: p.ids[j] has a settlement price (its holders settle and leave: not socialised over)
    settled_mask: uint256
    # bad debt would be written off while collateral without a fresh price is held: refused
    unpriced: bool


@pure
@internal
def _fraction(eq: int256, mm: int256, im: int256, max_fraction: uint256, prm: Params) -> (uint256, uint256, bool):
    """
    @dev (code, f, capped): f = WAD when eq <= 0, else min(WAD, div_ceil((IM - E) * WAD, IM -
         div_ceil(p * MM, WAD))); capped by max_fraction (not below min(f, min_fraction));
         WAD when the remaining MM would be below min_remaining_mm. Codes: BAD_CAP for a cap
         outside (0, WAD], BELOW_MINIMUM for a cap below the minimum.
    """
    if max_fraction == 0 or max_fraction > fp.WAD:
        return BAD_CAP, 0, False
    f: uint256 = fp.WAD
    if eq > 0:
        # 0 < eq < mm <= im, and p <= 0.5 so im - div_ceil(p * mm, WAD) >= mm / 2 > 0.
        den: int256 = im - fp.div_ceil(mm * convert(prm.penalty_rate, int256), fp.SWAD)
        f = min(fp.WAD, convert(fp.div_ceil((im - eq) * fp.SWAD, den), uint256))
    capped: bool = False
    if max_fraction < f:
        if max_fraction < min(f, prm.min_fraction):
            return BELOW_MINIMUM, 0, False
        f = max_fraction
        capped = True
    taken: int256 = fp.div_ceil(convert(f, int256) * mm, fp.SWAD)
    if mm - taken < convert(prm.min_remaining_mm, int256):
        return OK, fp.WAD, False
    return OK, f, capped


@view
@internal
def _plan(a: margin.Inputs, f0: uint256, capped: bool, eq: int256, mm: int256, k: uint256, prm: Params) -> Plan:
    """
    @dev Sizes taken, cash at mark, penalty, post-condition (at or above IM; capped: health not
         lower; else f = WAD), collateral sale and bad debt of a liquidation at fraction f0
         (docs/fixed-point.md §8). `eq`, `mm`: the account's state before.
    """
    p: Plan = empty(Plan)
    f: uint256 = f0
    b: margin.Book = a.book
    # units of each holding taken with the positions (§8.2)
    took: uint256[fp.MAX_ASSETS] = empty(uint256[fp.MAX_ASSETS])
    for attempt: uint256 in range(2):
        p = empty(Plan)
        p.fraction = f
        b = a.book
        value: int256 = 0
        settled: int256 = 0
        for j: uint256 in range(len(b.ids), bound=fp.MAX_POSITIONS):
            q: int256 = b.sizes[j]
            if q == 0:
                continue
            # |q| <= MAX_SIZE < 2**100 and f <= WAD: no overflow.
            t: int256 = fp.div_ceil(abs(q) * convert(f, int256), fp.SWAD)
            if q < 0:
                t = -t
            w0: uint256 = b.iw[j][0]
            mark: uint256 = w0 >> fp.MARK_SHIFT
            p.ids.append(b.ids[j])
            p.taken.append(t)
            p.marks.append(mark)
            b.sizes[j] = q - t
            # |t| < 2**100, mark < 2**96.
            if (w0 >> fp.E_SHIFT) & 255 == fp.E_SETTLED:
                settled += fp.div_ceil(t * convert(mark, int256), fp.SWAD)
                p.settled_mask |= 1 << (len(p.ids) - 1)
            else:
                value += t * convert(mark, int256)
        p.position_cash = fp.div_ceil(value, fp.SWAD) + settled
        # linked collateral goes with the positions, f of it (§8.2): the leg and the
        # collateral value of the remaining book shrink with it
        for i: uint256 in range(fp.MAX_LINKED):
            head: uint256 = b.legs[i][0]
            if head == 0:
                break
            n: uint256 = (head >> 16) & 255
            h: margin.Holding = a.holdings[n]
            # f <= WAD: at most the balance; balance * scale < 2**129 (deposit cap)
            x: uint256 = unsafe_mul(h.balance, f)
            x = unsafe_add(unsafe_div(x, fp.WAD), convert(x % fp.WAD != 0, uint256))
            took[n] = x
            p.paid += self._pay(x, h, prm)
            x = unsafe_sub(h.balance, x)
            b.collateral += fp.collateral_value(x, h.scale, h.haircut, h.price) - fp.collateral_value(
                h.balance, h.scale, h.haircut, h.price
            )
            b.legs[i][0] = (head & fp.MASK32) | (unsafe_mul(x, h.scale) << 32)
        eq_t: int256 = 0
        mm_t: int256 = 0
        fresh: bool = False
        eq_t, mm_t, fresh = margin._state(b, a.cash + p.position_cash + convert(p.paid, int256))
        taken_mm: int256 = fp.div_ceil(convert(f, int256) * mm, fp.SWAD)
        raw: int256 = fp.div_ceil(convert(prm.penalty_rate, int256) * taken_mm, fp.SWAD)
        p.penalty = convert(min(raw, max(eq_t, 0)), uint256)
        if f == fp.WAD:
            break
        eq_p: int256 = eq_t - convert(p.penalty, int256)
        if capped and eq_p - mm_t >= eq - mm:
            break
        if not capped and eq_p >= margin._im(mm_t, k):
            break
        f = fp.WAD
    p.to_liquidator = p.penalty * prm.liquidator_share // fp.WAD
    p.to_fund = p.penalty - p.to_liquidator
    cash: int256 = a.cash + p.position_cash + convert(p.paid, int256) - convert(p.penalty, int256)
    full: bool = p.fraction == fp.WAD
    left: int256 = 0
    unpriced: bool = False
    n: uint256 = 0
    for h: margin.Holding in a.holdings:
        units: uint256 = took[n]
        pay: uint256 = self._pay(units, h, prm)
        if cash < 0 and full:
            d: uint256 = min(prm.collateral_discount, h.haircut)
            den: uint256 = h.scale * h.price * (fp.WAD - d)
            if den != 0:
                need: uint256 = convert(-cash, uint256) * fp.WAD * fp.WAD
                x: uint256 = min(h.balance - units, need // den + convert(need % den != 0, uint256))
                units += x
                x = self._pay(x, h, prm)
                cash += convert(x, int256)
                p.paid += x
                pay += x
        p.sold.append(units)
        p.sale_cash.append(pay)
        left += fp.collateral_value(h.balance - units, h.scale, h.haircut, h.price)
        unpriced = unpriced or (h.price == 0 and h.balance != units)
        n += 1
    if cash < 0 and left == 0 and full:
        # no bad debt while collateral without a fresh price is held: it may cover the debt
        if unpriced:
            p.unpriced = True
        else:
            p.bad_debt = convert(-cash, uint256)
    p.cash_after = cash
    return p


@pure
@internal
def _pay(units: uint256, h: margin.Holding, prm: Params) -> uint256:
    # what the liquidator pays for `units` of a holding: price less min(discount, haircut)
    # units * scale < 2**129 (deposit cap), price < 2**96, discount and haircut <= WAD
    return unsafe_div(unsafe_mul(unsafe_div(unsafe_mul(unsafe_mul(units, h.scale), h.price), fp.WAD), fp.WAD - min(prm.collateral_discount, h.haircut)), fp.WAD)


@pure
@internal
def _owed(q: int256, word: uint256, snap: uint256) -> uint256:
    if q == 0 or word == snap:
        return 0
    sh: uint256 = 0
    if q > 0:
        sh = 128
    # indices only grow; |q| < 2**100 and the difference < 2**128.
    diff: uint256 = ((word >> sh) & MASK128) - ((snap >> sh) & MASK128)
    x: uint256 = convert(abs(q), uint256) * diff
    return x // fp.WAD + convert(x % fp.WAD != 0, uint256)
