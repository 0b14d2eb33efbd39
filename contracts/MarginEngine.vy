# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title MarginEngine: collateral vault, positions and on-chain portfolio margin
@custom:contract-name MarginEngine
@notice Holds collateral (vault module), records positions (positions module) and checks
        initial / maintenance margin by netting each account's portfolio over the risk arrays of
        RiskOracle (portfolio module), reading the oracle in ONE staticcall per computation.
        equity = cash + sum collateral * price * (1 - haircut) + sum q * mark;
        MM = sum over underlyings of max(max(worst scan loss, 0) + pad, short-option minimum);
        IM = MM * im_factor. A trade or withdrawal is allowed when afterwards equity >= IM (data
        fresh, not paused), or (trades) when it strictly lowers MM without lowering equity.
@custom:security One global lock on every function defined here, views included, except
                 `positions_of` (the Liquidator reads it inside `touch`). Getters exported from
                 the vault, positions and roles modules follow those modules and stay open to
                 re-entry: a token is called only before a deposit's first write or after a
                 withdrawal's last, so they read consistent state (docs/security.md). Oracle
                 bounds are enforced by RiskOracle; stale data or a guardian pause block only
                 new-risk actions: deposits, settlement, risk-reducing trades and withdrawals of
                 accounts without positions and debt stay open. Open interest per instrument
                 and size per account are capped by the admin; an instrument trades only once
                 its caps are set.
"""


from .interfaces import IMarginEngine
from .interfaces import IRiskOracle
from .interfaces import ILiquidator
from .modules import fixed_point as fp
from .modules import roles
from .modules import vault
from .modules import positions
from .modules import portfolio
from .modules import margin


implements: IMarginEngine


initializes: roles
initializes: vault
initializes: positions


exports: (
    roles.admin,
    roles.pending_admin,
    roles.has_role,
    roles.transfer_admin,
    roles.accept_admin,
    roles.grant_role,
    roles.revoke_role,
    vault.cash_token,
    vault.cash_scale,
    vault.cash_deposit_cap,
    vault.cash,
    vault.collateral,
    vault.total,
    vault.assets,
    vault.asset_index,
    vault.asset_haircut,
    vault.asset_deposit_cap,
    vault.asset_scale,
    vault.asset_mask,
    positions.position_count,
    positions.open_interest,
)


MIN_IM_FACTOR: constant(uint256) = 10**18
MAX_IM_FACTOR: constant(uint256) = 3 * 10**18
DEFAULT_IM_FACTOR: constant(uint256) = 125 * 10**16
MAX_OPEN_INTEREST_CAP: constant(uint256) = 10**33


oracle: public(immutable(IRiskOracle))


im_factor: public(uint256)
paused: public(bool)
# account => venue => authorised
authorised: public(HashMap[address, HashMap[address, bool]])
# Per instrument, WAD contracts; a zero open-interest cap means not enabled.
open_interest_cap: public(HashMap[uint256, uint256])
position_limit: public(HashMap[uint256, uint256])
# Liquidator contract (set once): moves positions, cash and collateral of liquidations, and its
# loss index charges socialised losses to holders on every touch once `socialising` is set.
liquidator: public(ILiquidator)
socialising: public(bool)


@deploy
def __init__(admin_: address, oracle_: IRiskOracle, cash_token_: address, cash_deposit_cap_: uint256):
    """
    @param admin_ The admin.
    @param oracle_ The RiskOracle.
    @param cash_token_ The settlement stablecoin (<= 18 decimals).
    @param cash_deposit_cap_ Cap on the stablecoin held by the vault (token units).
    """
    assert oracle_.address != empty(address), "engine: zero oracle"
    roles.__init__(admin_)
    vault.__init__(cash_token_, cash_deposit_cap_)
    oracle = oracle_
    self.im_factor = DEFAULT_IM_FACTOR
    log IMarginEngine.ImFactorSet(im_factor=DEFAULT_IM_FACTOR)


# ---------------------------------------------------------------- admin and guardian


@external
def list_collateral(asset: address, haircut: uint256, deposit_cap: uint256):
    """
    @notice List (or re-parameterise) a collateral asset; the settlement stablecoin takes only
            a cap (haircut 0). Non-cash assets must be priced by the oracle.
    @param asset The ERC-20 token (<= 18 decimals).
    @param haircut WAD, <= 0.9.
    @param deposit_cap Token units; cap * 10**(18 - decimals) <= 2**128.
    """
    roles._only_admin()
    if asset != vault.cash_token:
        assert staticcall oracle.asset_listed(asset), "engine: asset not priced"
    vault._list(asset, haircut, deposit_cap)


@external
def set_instrument_limits(instrument: uint256, open_interest_cap_: uint256, position_limit_: uint256):
    """
    @notice Enable an instrument for trading with an open-interest cap (sum of long sizes) and
            a per-account size limit. A cap of 0 disables it: only trades that lower open
            interest and sizes remain possible.
    @param instrument A listed instrument.
    @param open_interest_cap_ WAD contracts, <= 1e33.
    @param position_limit_ WAD contracts, <= MAX_SIZE and <= open_interest_cap_.
    """
    roles._only_admin()
    assert staticcall oracle.instrument_listed(instrument), "engine: unknown instrument"
    assert open_interest_cap_ <= MAX_OPEN_INTEREST_CAP, "engine: limit out of bounds"
    assert position_limit_ <= convert(fp.MAX_SIZE, uint256) and position_limit_ <= open_interest_cap_, "engine: limit out of bounds"
    self.open_interest_cap[instrument] = open_interest_cap_
    self.position_limit[instrument] = position_limit_
    log IMarginEngine.InstrumentLimitsSet(
        instrument=instrument, open_interest_cap=open_interest_cap_, position_limit=position_limit_
    )


@external
def set_im_factor(im_factor_: uint256):
    """
    @notice IM = div_ceil(MM * im_factor, WAD).
    @param im_factor_ WAD, in [1, 3].
    """
    roles._only_admin()
    assert im_factor_ >= MIN_IM_FACTOR and im_factor_ <= MAX_IM_FACTOR, "engine: im_factor out of bounds"
    self.im_factor = im_factor_
    log IMarginEngine.ImFactorSet(im_factor=im_factor_)


@external
def pause():
    """
    @notice Guardian (or admin): stop new risk. Risk-reducing trades, deposits, settlement and
            withdrawals of accounts without positions and debt stay open.
    """
    roles._only_guardian()
    self.paused = True
    log IMarginEngine.PauseSet(sender=msg.sender, paused=True)


@external
def unpause():
    """
    @notice Admin only: resume new risk.
    """
    roles._only_admin()
    self.paused = False
    log IMarginEngine.PauseSet(sender=msg.sender, paused=False)


@external
def set_liquidator(liquidator_: ILiquidator):
    """
    @notice Wire the Liquidator contract, once (a later admin cannot swap in another one).
    @param liquidator_ The Liquidator; its engine cash is the insurance fund.
    """
    roles._only_admin()
    assert self.liquidator.address == empty(address), "engine: liquidator already set"
    self.liquidator = liquidator_
    log IMarginEngine.LiquidatorSet(liquidator=liquidator_.address)


@external
def liquidation_move(
    account: address,
    receiver: address,
    ids: DynArray[uint256, fp.MAX_POSITIONS],
    sizes: DynArray[int256, fp.MAX_POSITIONS],
    assets: DynArray[address, fp.MAX_ASSETS],
    amounts: DynArray[uint256, fp.MAX_ASSETS],
    cash: int256,
    fund_from_account: int256,
    fund_from_receiver: int256,
    socialise: bool,
):
    """
    @notice Liquidator hook: move `sizes` of `ids` and `amounts` of collateral `assets` from
            `account` to `receiver`; `receiver` pays `account` `cash`; `account` and
            `receiver` pay the fund (the Liquidator's cash) the given amounts (negative: the
            fund pays). Cash is conserved exactly. `socialise` switches on the realisation of
            socialised losses on every touch.
    """
    assert msg.sender == self.liquidator.address, "engine: not liquidator"
    positions._move(account, receiver, ids, sizes)
    for k: uint256 in range(len(assets), bound=fp.MAX_ASSETS):
        a: address = assets[k]
        # the vault's debit (balance, mask, total) and the matching credit
        vault._debit(a, amounts[k], account)
        vault.total[a] += amounts[k]
        vault.collateral[a][receiver] += amounts[k]
        vault.asset_mask[receiver] |= 1 << (vault.asset_index[a] - 1)
    vault._move_cash(receiver, account, cash)
    vault._move_cash(account, msg.sender, fund_from_account)
    vault._move_cash(receiver, msg.sender, fund_from_receiver)
    if socialise:
        self.socialising = True


# ---------------------------------------------------------------- accounts


@external
def authorise_venue(venue: address, allowed: bool):
    """
    @notice Allow (or stop) `venue` to book trades for the caller.
    @param venue A venue address (must also hold the venue role to trade).
    @param allowed True to authorise.
    """
    self.authorised[msg.sender][venue] = allowed
    log IMarginEngine.VenueAuthorised(account=msg.sender, venue=venue, allowed=allowed)


@external
def deposit(asset: address, amount: uint256, account: address = msg.sender) -> uint256:
    """
    @notice Pull `amount` of `asset` from the caller and credit `account` with what arrived
            (fee-on-transfer safe). Never paused.
    @param asset The settlement stablecoin or a listed collateral asset.
    @param amount Token units.
    @param account The account credited.
    @return The credited amount (token units).
    """
    assert account != empty(address), "vault: zero account"
    return vault._pull(asset, amount, account)


@external
def withdraw(asset: address, amount: uint256, receiver: address = msg.sender):
    """
    @notice Withdraw `amount` token units of `asset`; cash must stay >= 0. An account without
            positions and with non-negative cash withdraws freely (no oracle, no pause); any
            other needs fresh data, no pause, and equity >= IM afterwards.
    @param asset The settlement stablecoin or a listed collateral asset.
    @param amount Token units.
    @param receiver Recipient of the tokens.
    """
    assert receiver != empty(address), "vault: zero account"
    self._touch(msg.sender, 0)
    vault._debit(asset, amount, msg.sender)
    if positions.position_count[msg.sender] != 0 or vault.cash[msg.sender] < 0:
        book: margin.Book = self._book(msg.sender, 0)
        eq: int256 = 0
        im: int256 = 0
        mm: int256 = 0
        code: uint256 = margin.OK
        eq, im, mm, code = margin._withdraw_outcome(book, vault.cash[msg.sender], self.paused, self.im_factor)
        margin._raise(code)
    vault._push(asset, amount, receiver)
    log IMarginEngine.Withdraw(account=msg.sender, asset=asset, receiver=receiver, amount=amount)


@external
def trade(buyer: address, seller: address, instrument: uint256, size: uint256, price: uint256):
    """
    @notice Book a matched trade (venue role, authorised by both accounts): the buyer goes long
            `size`, the seller short, and amount = div_ceil(size * price, WAD) moves from the
            buyer's cash to the seller's. Each side must end with equity >= IM (fresh data, not
            paused) or strictly lower MM without lower equity. Open interest must stay within
            its cap unless the trade lowers it.
    @param buyer The long side.
    @param seller The short side.
    @param instrument A listed, unexpired instrument.
    @param size WAD contracts, in (0, MAX_SIZE].
    @param price WAD per contract (futures price or option premium), < 2**96.
    """
    roles._only_venue()
    assert self.authorised[buyer][msg.sender] and self.authorised[seller][msg.sender], "engine: venue not authorised"
    assert buyer != seller, "engine: self trade"
    assert size != 0 and size <= convert(fp.MAX_SIZE, uint256), "engine: bad size"
    assert price <= fp.MAX_PRICE, "engine: bad price"
    assert block.timestamp < fp.id_expiry(instrument), "engine: instrument expired"
    q: int256 = convert(size, int256)
    # q <= 1e30 and price < 2**96: q * price < 2**196.
    amount: int256 = fp.div_ceil(unsafe_mul(q, convert(price, int256)), fp.SWAD)
    oi_before: uint256 = positions.open_interest[instrument]
    limit: uint256 = self.position_limit[instrument]
    self._trade_side(buyer, instrument, q, -amount, limit)
    self._trade_side(seller, instrument, -q, amount, limit)
    oi_after: uint256 = positions.open_interest[instrument]
    if oi_after > oi_before:
        assert oi_after <= self.open_interest_cap[instrument], "engine: open interest cap"
    log IMarginEngine.Trade(
        venue=msg.sender,
        buyer=buyer,
        seller=seller,
        instrument=instrument,
        size=size,
        price=price,
        amount=convert(amount, uint256),
    )


@external
def settle(account: address) -> uint256:
    """
    @notice Settle every position of `account` whose instrument has a settlement price:
            cash += div_floor(q * P, WAD), position removed. Open to anyone, never paused.
    @param account The account.
    @return The number of positions settled.
    """
    self._touch(account, 0)
    book: margin.Book = self._book(account, 0)
    count: uint256 = 0
    cash: int256 = vault.cash[account]
    for j: uint256 in range(len(book.ids), bound=fp.MAX_POSITIONS):
        w0: uint256 = book.iw[j][0]
        if (w0 >> fp.E_SHIFT) & 255 != fp.E_SETTLED:
            continue
        price: uint256 = w0 >> fp.MARK_SHIFT
        # |q| < 2**100, price < 2**96.
        amount: int256 = fp.div_floor(unsafe_mul(book.sizes[j], convert(price, int256)), fp.SWAD)
        cash += amount
        positions._change(account, book.ids[j], -book.sizes[j])
        count += 1
        log IMarginEngine.Settled(
            account=account, instrument=book.ids[j], size=book.sizes[j], price=price, amount=amount
        )
    vault.cash[account] = cash
    return count


# ---------------------------------------------------------------- views


@view
@external
def margin_state(account: address) -> (int256, int256, int256):
    """
    @notice (equity, initial margin, maintenance margin) in WAD, positions of instruments with
            a settlement price counted as settled. Liquidatable when equity < MM. Freshness,
            previews and the worst scenarios are in MarginViews.
    @param account The account.
    """
    book: margin.Book = self._book(account, 0)
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = margin._state(book, vault.cash[account])
    return eq, margin._im(mm, self.im_factor), mm


@view
@external
@reentrant
def positions_of(account: address) -> (DynArray[uint256, fp.MAX_POSITIONS], DynArray[int256, fp.MAX_POSITIONS]):
    """
    @notice Instrument ids and signed sizes (WAD) of an account.
    @param account The account.
    """
    return positions._load(account)


# ---------------------------------------------------------------- internal


@internal
def _trade_side(account: address, instrument: uint256, dq: int256, dcash: int256, limit: uint256):
    self._touch(account, instrument)
    cash: int256 = vault.cash[account]
    eq: int256 = 0
    mm: int256 = 0
    code: uint256 = margin.OK
    q_new: int256 = 0
    eq, mm, code, q_new = margin._trade_outcome(
        self._book(account, instrument),
        instrument,
        dq,
        cash,
        dcash,
        limit,
        positions.position_count[account],
        self.paused,
        self.im_factor,
    )
    margin._raise(code)
    positions._change(account, instrument, dq)
    vault.cash[account] = cash + dcash


@internal
def _touch(account: address, extra: uint256):
    """
    @dev Realise the account's socialised-loss charge (paid to the fund) and snapshot the loss
         index of `extra` before its size changes. Nothing to do before the first socialisation.
         The Liquidator reads the positions back through `positions_of`, the one view open to
         re-entry: positions never change around an external call of the engine.
    """
    if not self.socialising:
        return
    charge: int256 = extcall self.liquidator.touch(account, extra)
    vault._move_cash(account, self.liquidator.address, charge)


@view
@internal
def _book(account: address, extra: uint256) -> margin.Book:
    """
    @dev Positions of `account` (plus `extra` at size 0 if not held), their underlyings and
         ONE oracle snapshot; collateral valued at the snapshot prices.
    """
    book: margin.Book = empty(margin.Book)
    book.ids, book.sizes = positions._load(account)
    if extra != 0 and extra not in book.ids:
        assert len(book.ids) < fp.MAX_POSITIONS, "engine: too many positions"
        book.ids.append(extra)
        book.sizes.append(0)
    book.unds = margin._underlyings(book.ids)
    held: DynArray[address, fp.MAX_ASSETS] = vault._held_assets(account)
    book.min_timestamp = max_value(uint256)
    if len(book.ids) == 0 and len(held) == 0:
        return book
    aw: DynArray[uint256, fp.MAX_ASSETS] = []
    book.iw, book.uw, aw, book.max_age = staticcall oracle.snapshot(book.ids, book.unds, held)
    for k: uint256 in range(len(held), bound=fp.MAX_ASSETS):
        a: address = held[k]
        book.collateral += vault._collateral_value(a, vault.collateral[a][account], aw[k] & fp.MASK96)
        book.min_timestamp = min(book.min_timestamp, aw[k] >> 96)
    return book
