# pragma version 0.4.3
"""
@title MarginViews: previews, freshness and worst scenarios of MarginEngine accounts
@custom:contract-name MarginViews
@notice Read-only companion of MarginEngine (as Curve's stableswap-ng keeps `get_dy` views in a
        separate contract), so the engine keeps room under the 24,576-byte limit. It reads an
        account as the engine's own checks assemble it (`MarginEngine.margin_inputs`: book,
        cash, collateral, one oracle snapshot, the pending socialised-loss charge) and runs the
        SAME module code (`margin`, `portfolio`) the engine enforces, so a preview and the
        engine cannot disagree. Outcome codes: 0 allowed, 1 paused, 2 stale oracle, 3 below
        initial margin, 4 position limit, 5 too many positions, 6 insufficient balance. The
        previews deduct the pending charge the engine realises before a trade or a withdrawal.
@custom:security Holds no state and no funds. Calls only views of the engine.
"""


from .interfaces import IMarginEngine
from .modules import fixed_point as fp
from .modules import portfolio
from .modules import margin


engine: public(immutable(IMarginEngine))


@deploy
def __init__(engine_: IMarginEngine):
    """
    @param engine_ The MarginEngine.
    """
    engine = engine_


@view
@external
def health(account: address) -> int256:
    """
    @notice equity - MM (WAD) of `MarginEngine.account_state`, the pending socialised-loss
            charge deducted; below zero (on fresh data) the account is liquidatable.
    @param account The account.
    """
    state: margin.AccountState = staticcall engine.account_state(account)
    return state.equity - state.maintenance_margin


@view
@external
def worst_scenarios(account: address) -> DynArray[portfolio.UnderlyingRisk, fp.MAX_POSITIONS]:
    """
    @notice Per underlying held: the worst scenario (smallest index attaining it), its loss,
            the precision pad, the short-option minimum and the resulting risk (WAD), so a
            person or a liquidator can see why the margin is what it is.
    @param account The account.
    """
    book: margin.Book = (staticcall engine.margin_inputs(account, [], [], False, False)).book
    return portfolio._details(book.ids, book.sizes, book.iw, book.unds, book.uw, book.legs)


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
    inputs: margin.Inputs = staticcall engine.margin_inputs(account, [instrument], [], False, True)
    eq: int256 = 0
    mm: int256 = 0
    code: uint256 = margin.ALLOWED
    q_new: int256 = 0
    eq, mm, code, q_new = margin._trade_outcome(
        inputs.book,
        instrument,
        size,
        inputs.cash - convert(inputs.pending_charge, int256),
        dcash,
        staticcall engine.position_limit(instrument),
        staticcall engine.position_count(account),
        staticcall engine.paused(),
        staticcall engine.im_factor(),
    )
    return eq, margin._im(mm, staticcall engine.im_factor()), mm, code == margin.ALLOWED, code


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
    inputs: margin.Inputs = staticcall engine.margin_inputs(account, [], [], False, True)
    cash: int256 = inputs.cash - convert(inputs.pending_charge, int256)
    if asset == staticcall engine.cash_token():
        scaled: int256 = convert(amount * staticcall engine.cash_scale(), int256)
        cash -= scaled
        # the engine settles the account before it debits the stored cash (MarginEngine._settle)
        stored: int256 = staticcall engine.cash(account) - convert(inputs.pending_charge, int256)
        if amount > convert(max(stored + self._settled_cash(inputs), 0), uint256) // staticcall engine.cash_scale():
            return 0, 0, 0, False, margin.DENIED_BALANCE
    else:
        assert staticcall engine.asset_index(asset) != 0, "vault: unknown asset"
        # the engine debits first, then assembles: an asset left at zero is no longer held
        book: margin.Book = inputs.book
        book.collateral = 0
        book.min_timestamp = max_value(uint256)
        found: bool = False
        for n: uint256 in range(len(inputs.holdings), bound=fp.MAX_ASSETS):
            holding: margin.Holding = inputs.holdings[n]
            left: uint256 = holding.balance
            if holding.asset == asset:
                if left < amount:
                    return 0, 0, 0, False, margin.DENIED_BALANCE
                left -= amount
                found = True
                # its spot leg shrinks with it (docs/fixed-point.md §5.1)
                for k: uint256 in range(fp.MAX_LINKED):
                    if (book.legs[k][0] >> 16) & 255 == n:
                        book.legs[k][0] = (book.legs[k][0] & fp.MASK32) | (left * holding.scale << 32)
            if left != 0:
                book.collateral += fp.collateral_value(left, holding.scale, holding.haircut, holding.price)
                book.min_timestamp = min(book.min_timestamp, holding.stamp)
        if not found:
            return 0, 0, 0, False, margin.DENIED_BALANCE
        inputs.book = book
    eq: int256 = 0
    im: int256 = 0
    mm: int256 = 0
    code: uint256 = margin.ALLOWED
    eq, im, mm, code = margin._withdraw_outcome(
        inputs.book, cash, staticcall engine.paused(), staticcall engine.im_factor()
    )
    return eq, im, mm, code == margin.ALLOWED, code


@pure
@internal
def _settled_cash(a: margin.Inputs) -> int256:
    """
    @dev What `MarginEngine.withdraw` adds to the stored cash before it debits it: div_floor(q *
         P, WAD) of each position with a settlement price, and the variation margin realised,
         div_floor(sum over the other futures and perps of q * mark - basis, WAD)
         (docs/fixed-point.md §10).
    """
    out: int256 = 0
    v: int256 = -a.basis
    for j: uint256 in range(len(a.book.ids), bound=fp.MAX_POSITIONS):
        w0: uint256 = a.book.iw[j][0]
        qm: int256 = a.book.sizes[j] * convert(w0 >> fp.MARK_SHIFT, int256)
        kind: uint256 = fp.id_kind(a.book.ids[j])
        if (w0 >> fp.E_SHIFT) & 255 == fp.E_SETTLED:
            out += fp.div_floor(qm, fp.SWAD)
        elif kind == fp.KIND_FUTURE or kind == fp.KIND_PERP:
            v += qm
    return out + fp.div_floor(v, fp.SWAD)
