# pragma version 0.4.3
"""
@title Margin decisions over an account's inputs: equity, MM, IM, freshness and the trade /
       withdrawal rules, shared by MarginEngine (which enforces them), MarginViews (which
       previews them) and the Liquidator, so a preview can never disagree with the engine.
@custom:contract-name margin
@notice A `Book` is an account's positions plus one RiskOracle snapshot for them; `Inputs`
        adds the account's cash, its collateral one asset at a time and the pending
        socialised-loss charge, as the engine's assembler (`assembler._inputs`) builds them;
        `AccountState` is what MarginEngine.account_state returns.
        Rules:
        new risk needs fresh data, no pause and equity >= IM afterwards; a trade that strictly
        lowers MM without lowering equity by more than 1 wei of rounding (same snapshot) is
        always allowed.
@custom:security Stateless. `fresh` is false when any used timestamp is zero (never posted) or
                 older than max_age; an empty book is fresh.
"""


from . import fixed_point as fp
from . import portfolio


# Outcomes of the trade / withdrawal rules (MarginViews returns them as `code`).
ALLOWED: constant(uint256) = 0
DENIED_PAUSED: constant(uint256) = 1
DENIED_STALE: constant(uint256) = 2
DENIED_MARGIN: constant(uint256) = 3
DENIED_LIMIT: constant(uint256) = 4
DENIED_COUNT: constant(uint256) = 5
DENIED_BALANCE: constant(uint256) = 6


struct Book:
    ids: DynArray[uint256, fp.MAX_POSITIONS]
    sizes: DynArray[int256, fp.MAX_POSITIONS]
    unds: DynArray[uint256, fp.MAX_POSITIONS]
    iw: DynArray[uint256[3], fp.MAX_POSITIONS]
    uw: DynArray[uint256[3], fp.MAX_POSITIONS]
    collateral: int256
    min_timestamp: uint256
    max_age: uint256
    # spot legs of linked collateral, the first ones (layout in portfolio.vy, docs/fixed-point.md
    # §5.1); an unused leg is zero (underlying 0 is never listed)
    legs: uint256[4][fp.MAX_LINKED]


struct Holding:
    # one collateral asset of an account
    asset: address
    balance: uint256
    # price used: the posted one, or zero under the stale-at-zero rule
    price: uint256
    scale: uint256
    haircut: uint256
    # when the price was posted (0: never)
    stamp: uint256


struct Inputs:
    book: Book
    # engine cash net of the basis (div_ceil(basis, WAD)), before the pending charge is paid
    cash: int256
    # variation-margin basis plus the perps' funding, vm_basis + sum_perp q * F (WAD**2,
    # docs/fixed-point.md §10); `cash` is net of div_ceil(basis, WAD)
    basis: int256
    # socialised loss owed (Liquidator.pending_charge); zero when not asked for
    pending_charge: uint256
    # held collateral in vault order, then assets asked for at balance 0
    holdings: DynArray[Holding, fp.MAX_ASSETS]


struct AccountState:
    # cash - pending charge + collateral + position value + settled cash (WAD)
    equity: int256
    initial_margin: int256
    maintenance_margin: int256
    pending_charge: uint256
    # every price used is posted and within max_age (an empty account is fresh)
    fresh: bool


@pure
@internal
def _underlyings(ids: DynArray[uint256, fp.MAX_POSITIONS]) -> DynArray[uint256, fp.MAX_POSITIONS]:
    out: DynArray[uint256, fp.MAX_POSITIONS] = []
    last: uint256 = 0
    for i: uint256 in ids:
        # inline fp.id_underlying; consecutive positions often share the underlying
        u: uint256 = (i >> fp.ID_UNDERLYING_SHIFT) & fp.MASK16
        if u != last and u not in out:
            out.append(u)
        last = u
    return out


@view
@internal
def _state(book: Book, cash: int256) -> (int256, int256, bool):
    """
    @dev (equity, MM, fresh) of a book with the given cash.
    """
    r: portfolio.Risk = portfolio._risk(book.ids, book.sizes, book.iw, book.unds, book.uw, book.legs)
    eq: int256 = cash + r.settled_cash + book.collateral + r.position_value
    ts: uint256 = min(r.min_timestamp, book.min_timestamp)
    fresh: bool = ts == max_value(uint256) or (ts != 0 and ts + book.max_age >= block.timestamp)
    return eq, r.maintenance_margin, fresh


@pure
@internal
def _im(mm: int256, im_factor: uint256) -> int256:
    return fp.div_ceil(mm * convert(im_factor, int256), fp.SWAD)


@view
@internal
def _trade_outcome(
    book: Book,
    instrument: uint256,
    dq: int256,
    cash: int256,
    dcash: int256,
    limit: uint256,
    count: uint256,
    paused: bool,
    im_factor: uint256,
) -> (int256, int256, uint256, int256):
    """
    @dev (equity, MM, code, new size) after adding `dq` of `instrument` (present in the book)
         and `dcash` to an account holding `count` positions.
    """
    b: Book = book
    idx: uint256 = 0
    for j: uint256 in range(len(b.ids), bound=fp.MAX_POSITIONS):
        if b.ids[j] == instrument:
            idx = j
            break
    q_old: int256 = b.sizes[idx]
    q_new: int256 = q_old + dq
    assert q_new <= fp.MAX_SIZE and q_new >= -fp.MAX_SIZE, "engine: size out of bounds"
    if abs(q_new) > abs(q_old) and convert(abs(q_new), uint256) > limit:
        return 0, 0, DENIED_LIMIT, q_new
    if q_old == 0 and count == fp.MAX_POSITIONS:
        return 0, 0, DENIED_COUNT, q_new
    b.sizes[idx] = q_new
    eq_after: int256 = 0
    mm_after: int256 = 0
    fresh: bool = False
    eq_after, mm_after, fresh = self._state(b, cash + dcash)
    if not paused and fresh and eq_after >= self._im(mm_after, im_factor):
        return eq_after, mm_after, ALLOWED, q_new
    # risk-reducing path: strictly lower MM, equity not lower (same snapshot) but for 1 wei:
    # a buyer closing at exactly the mark pays ceil(q * p) and gains floor in value.
    b.sizes[idx] = q_old
    eq_before: int256 = 0
    mm_before: int256 = 0
    fresh_before: bool = False
    # the refusal's reason is the book after the trade: opening a stale instrument is "stale"
    eq_before, mm_before, fresh_before = self._state(b, cash)
    if mm_after < mm_before and eq_after >= eq_before - 1:
        return eq_after, mm_after, ALLOWED, q_new
    if paused:
        return eq_after, mm_after, DENIED_PAUSED, q_new
    if not fresh:
        return eq_after, mm_after, DENIED_STALE, q_new
    return eq_after, mm_after, DENIED_MARGIN, q_new


@view
@internal
def _withdraw_outcome(book: Book, cash: int256, paused: bool, im_factor: uint256) -> (int256, int256, int256, uint256):
    """
    @dev (equity, IM, MM, code) of a book after a withdrawal (`book` and `cash` already reduced).
         No positions and no debt: always allowed.
    """
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = self._state(book, cash)
    im: int256 = self._im(mm, im_factor)
    if len(book.ids) == 0 and cash >= 0:
        return eq, im, mm, ALLOWED
    if paused:
        return eq, im, mm, DENIED_PAUSED
    if not fresh:
        return eq, im, mm, DENIED_STALE
    if eq < im:
        return eq, im, mm, DENIED_MARGIN
    return eq, im, mm, ALLOWED


@pure
@internal
def _raise(code: uint256):
    if code == DENIED_PAUSED:
        raise "engine: paused"
    if code == DENIED_STALE:
        raise "engine: stale oracle"
    if code == DENIED_MARGIN:
        raise "engine: below initial margin"
    if code == DENIED_LIMIT:
        raise "engine: position limit"
    if code == DENIED_COUNT:
        raise "engine: too many positions"
