# pragma version 0.4.3
"""
@title MarginViews: previews, freshness and worst scenarios of MarginEngine accounts
@custom:contract-name MarginViews
@notice Read-only companion of MarginEngine (as Curve's stableswap-ng keeps `get_dy` views in a
        separate contract), so the engine keeps room under the 24,576-byte limit. It rebuilds
        an account's book from the engine's getters and one RiskOracle snapshot, then runs the
        SAME module code (`margin`, `portfolio`) the engine enforces, so a preview and the
        engine cannot disagree. Outcome codes: 0 allowed, 1 paused, 2 stale oracle, 3 below
        initial margin, 4 position limit, 5 too many positions, 6 insufficient balance.
        The previews and `health` deduct the socialised-loss charge the engine realises before
        a trade or a withdrawal (Liquidator.pending_charge); `margin_status` mirrors
        MarginEngine.margin_state, which does not.
@custom:security Holds no state and no funds. Calls only views of the engine and the oracle.
"""


from .interfaces import IMarginEngine
from .interfaces import IRiskOracle
from .modules import fixed_point as fp
from .modules import portfolio
from .modules import margin


interface IEngineLiquidator:
    def liquidator() -> address: view
    def socialising() -> bool: view


interface ILiquidatorCharge:
    def pending_charge(account: address) -> uint256: view


engine: public(immutable(IMarginEngine))
oracle: public(immutable(IRiskOracle))


@deploy
def __init__(engine_: IMarginEngine):
    """
    @param engine_ The MarginEngine.
    """
    engine = engine_
    oracle = IRiskOracle(staticcall engine_.oracle())


@view
@external
def margin_status(account: address) -> (int256, int256, int256, bool):
    """
    @notice (equity, IM, MM, fresh): MarginEngine.margin_state plus whether every price used is
            within max_age (new-risk actions need fresh data).
    @param account The account.
    """
    book: margin.Book = self._book(account, 0, empty(address), 0)
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = margin._state(book, staticcall engine.cash(account))
    return eq, margin._im(mm, staticcall engine.im_factor()), mm, fresh


@view
@external
def health(account: address) -> int256:
    """
    @notice equity - MM (WAD), the pending socialised-loss charge deducted; below zero the
            account is liquidatable.
    @param account The account.
    """
    book: margin.Book = self._book(account, 0, empty(address), 0)
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = margin._state(book, staticcall engine.cash(account) - self._pending(account))
    return eq - mm


@view
@external
def worst_scenarios(account: address) -> DynArray[portfolio.UnderlyingRisk, fp.MAX_POSITIONS]:
    """
    @notice Per underlying held: the worst scenario (smallest index attaining it), its loss,
            the precision pad, the short-option minimum and the resulting risk (WAD), so a
            person or a liquidator can see why the margin is what it is.
    @param account The account.
    """
    book: margin.Book = self._book(account, 0, empty(address), 0)
    return portfolio._details(book.ids, book.sizes, book.iw, book.unds, book.uw)


@view
@external
def trade_preview(
    account: address, instrument: uint256, size: int256, price: uint256
) -> (int256, int256, int256, bool, uint256):
    """
    @notice (equity, IM, MM, allowed, code) of `account` after trading `size` (> 0 buys,
            < 0 sells) at `price`, by the engine's own rule (pending socialised charge
            deducted). Not covered: the open-interest cap
            (it depends on the counterparty too) and the venue authorisation.
    @param account The account.
    @param instrument The instrument.
    @param size Signed WAD contracts.
    @param price WAD per contract.
    """
    assert size != 0 and size <= fp.MAX_SIZE and size >= -fp.MAX_SIZE, "engine: bad size"
    assert price <= fp.MAX_PRICE, "engine: bad price"
    assert block.timestamp < fp.id_expiry(instrument), "engine: instrument expired"
    # |size| <= 1e30 and price < 2**96.
    amount: int256 = fp.div_ceil(unsafe_mul(abs(size), convert(price, int256)), fp.SWAD)
    dcash: int256 = amount
    if size > 0:
        dcash = -amount
    eq: int256 = 0
    mm: int256 = 0
    code: uint256 = margin.OK
    q_new: int256 = 0
    eq, mm, code, q_new = margin._trade_outcome(
        self._book(account, instrument, empty(address), 0),
        instrument,
        size,
        staticcall engine.cash(account) - self._pending(account),
        dcash,
        staticcall engine.position_limit(instrument),
        staticcall engine.position_count(account),
        staticcall engine.paused(),
        staticcall engine.im_factor(),
    )
    return eq, margin._im(mm, staticcall engine.im_factor()), mm, code == margin.OK, code


@view
@external
def withdraw_preview(account: address, asset: address, amount: uint256) -> (int256, int256, int256, bool, uint256):
    """
    @notice (equity, IM, MM, allowed, code) of `account` after withdrawing `amount` token
            units of `asset`, by the engine's own rule (pending socialised charge deducted).
    @param account The account.
    @param asset The settlement stablecoin or a listed collateral asset.
    @param amount Token units.
    """
    assert amount != 0, "vault: zero amount"
    cash: int256 = staticcall engine.cash(account) - self._pending(account)
    if asset == staticcall engine.cash_token():
        cash -= convert(amount * staticcall engine.cash_scale(), int256)
        if cash < 0:
            return 0, 0, 0, False, margin.E_BALANCE
    else:
        assert staticcall engine.asset_index(asset) != 0, "vault: unknown asset"
        if staticcall engine.collateral(asset, account) < amount:
            return 0, 0, 0, False, margin.E_BALANCE
    book: margin.Book = self._book(account, 0, asset, amount)
    eq: int256 = 0
    im: int256 = 0
    mm: int256 = 0
    code: uint256 = margin.OK
    eq, im, mm, code = margin._withdraw_outcome(
        book, cash, staticcall engine.paused(), staticcall engine.im_factor()
    )
    return eq, im, mm, code == margin.OK, code


@view
@internal
def _pending(account: address) -> int256:
    """
    @dev The socialised-loss charge the engine's `_touch` realises first (nothing before the
         first socialisation).
    """
    e: IEngineLiquidator = IEngineLiquidator(engine.address)
    if not staticcall e.socialising():
        return 0
    charge: uint256 = staticcall ILiquidatorCharge(staticcall e.liquidator()).pending_charge(account)
    return convert(charge, int256)


@view
@internal
def _book(account: address, extra: uint256, minus_asset: address, minus: uint256) -> margin.Book:
    """
    @dev The engine's `_book`, from its getters: positions (plus `extra` at size 0), their
         underlyings, held collateral (after taking `minus` off `minus_asset`; an asset left at
         zero is no longer held) and one oracle snapshot.
    """
    book: margin.Book = empty(margin.Book)
    book.ids, book.sizes = staticcall engine.positions_of(account)
    if extra != 0 and extra not in book.ids:
        assert len(book.ids) < fp.MAX_POSITIONS, "engine: too many positions"
        book.ids.append(extra)
        book.sizes.append(0)
    book.unds = margin._underlyings(book.ids)
    held: DynArray[address, fp.MAX_ASSETS] = []
    amounts: DynArray[uint256, fp.MAX_ASSETS] = []
    mask: uint256 = staticcall engine.asset_mask(account)
    for i: uint256 in range(fp.MAX_ASSETS):
        if mask & (1 << i) == 0:
            continue
        a: address = staticcall engine.assets(i)
        bal: uint256 = staticcall engine.collateral(a, account)
        if a == minus_asset:
            bal -= minus
            if bal == 0:
                continue
        held.append(a)
        amounts.append(bal)
    book.min_timestamp = max_value(uint256)
    if len(book.ids) == 0 and len(held) == 0:
        return book
    aw: DynArray[uint256, fp.MAX_ASSETS] = []
    book.iw, book.uw, aw, book.max_age = staticcall oracle.snapshot(book.ids, book.unds, held)
    for k: uint256 in range(len(held), bound=fp.MAX_ASSETS):
        a: address = held[k]
        book.collateral += fp.collateral_value(
            amounts[k], staticcall engine.asset_scale(a), staticcall engine.asset_haircut(a), aw[k] & fp.MASK96
        )
        book.min_timestamp = min(book.min_timestamp, aw[k] >> 96)
    return book
