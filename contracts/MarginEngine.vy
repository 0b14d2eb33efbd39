# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title MarginEngine: collateral vault, positions and on-chain portfolio margin
@custom:contract-name MarginEngine
@notice Holds collateral (vault module), records positions (positions module) and checks
        initial / maintenance margin by netting each account's portfolio over the risk arrays of
        RiskOracle (portfolio module), reading the oracle in ONE staticcall per computation.
        An account's margin inputs are built in one place (assembler module), which the
        engine's checks, `account_state` and `margin_inputs` share; MarginViews,
        LiquidationViews and the Liquidator read accounts through those two views.
        EngineAdmin holds the roles and decides listings, limits, the IM factor, the pause and
        the Liquidator; it writes each decision here through an `apply_*` hook, so the
        numbers a check reads stay in this contract's storage.
        equity = net cash + sum collateral * price * (1 - haircut) + sum q * mark, the net cash
        being cash less the variation-margin basis and the perps' funding (docs/fixed-point.md
        §10); `settle` (and every withdrawal, first) realises variation margin into cash through
        the clearing account, this engine's own cash;
        MM = sum over underlyings of max(max(worst scan loss, 0) + pad, short-option minimum);
        IM = MM * im_factor. A trade or withdrawal is allowed when afterwards equity >= IM (data
        fresh, not paused), or (trades) when it strictly lowers MM without lowering equity.
@custom:security One global lock on every function defined here, views included, except
                 `positions_of` (the Liquidator reads it inside `touch`). The `apply_*` hooks
                 accept only EngineAdmin, which validates every value first. Getters exported from
                 the vault and positions modules follow those modules and stay open to
                 re-entry: a token is called only before a deposit's first write or after a
                 withdrawal's last, so they read consistent state (docs/security.md). Oracle
                 bounds are enforced by RiskOracle; stale data or a guardian pause block only
                 new-risk actions: deposits, settlement, risk-reducing trades and withdrawals of
                 accounts without positions and debt stay open. Open interest per instrument
                 and size per account are capped by EngineAdmin; an instrument trades only once
                 its caps are set.
"""


from .interfaces import IMarginEngine
from .interfaces import IRiskOracle
from .interfaces import ILiquidator
from .interfaces import IEngineAdmin
from .modules import fixed_point as fp
from .modules import vault
from .modules import positions
from .modules import margin
from .modules import assembler


implements: IMarginEngine


initializes: vault
initializes: positions
initializes: assembler[positions := positions, vault := vault]


exports: (
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
    positions.open_interest,
)


DEFAULT_IM_FACTOR: constant(uint256) = 125 * 10**16
# `risk_word` = IM factor (WAD, at most 3e18 < 2**128) | SOCIALISING_BIT once a loss is socialised.
SOCIALISING_BIT: constant(uint256) = 1 << 128
IM_FACTOR_MASK: constant(uint256) = SOCIALISING_BIT - 1


oracle: public(immutable(IRiskOracle))
# OracleViews: prices the spot leg of a linked collateral (docs/fixed-point.md §5.1)
oracle_views: public(immutable(assembler.ISpotLegs))
# Holds the roles and validates every configuration change before it is applied here.
engine_admin: public(immutable(address))


# The IM factor and whether a loss has been socialised share one word: every margin computation
# reads both (the factor for IM, the flag for the pending charge), for one cold SLOAD instead of
# two. Read through `im_factor` and `socialising`.
risk_word: uint256
paused: public(bool)
# Per instrument, WAD contracts; a zero open-interest cap means not enabled.
open_interest_cap: public(HashMap[uint256, uint256])
position_limit: public(HashMap[uint256, uint256])
# Liquidator contract (set once): moves positions, cash and collateral of liquidations, and its
# loss index charges socialised losses to holders on every touch once `socialising` is set.
liquidator: public(ILiquidator)


@deploy
def __init__(
    engine_admin_: address,
    oracle_: IRiskOracle,
    oracle_views_: assembler.ISpotLegs,
    cash_token_: address,
    cash_deposit_cap_: uint256,
):
    """
    @param engine_admin_ The EngineAdmin (which must then `bind` this engine).
    @param oracle_ The RiskOracle.
    @param oracle_views_ The oracle's OracleViews (it prices linked collateral legs).
    @param cash_token_ The settlement stablecoin (<= 18 decimals).
    @param cash_deposit_cap_ Cap on the stablecoin held by the vault (token units).
    """
    assert oracle_.address != empty(address) and oracle_views_.address != empty(address), "engine: zero oracle"
    assert engine_admin_ != empty(address), "engine: zero admin"
    vault.__init__(cash_token_, cash_deposit_cap_)
    oracle = oracle_
    oracle_views = oracle_views_
    engine_admin = engine_admin_
    self.risk_word = DEFAULT_IM_FACTOR


# ---------------------------------------------------------------- hooks


@external
def apply_collateral(asset: address, haircut: uint256, deposit_cap: uint256, scale: uint256):
    """
    @notice EngineAdmin hook: list `asset` (appended on first listing) or re-parameterise it;
            for the settlement stablecoin only the cap applies.
    @param asset The token.
    @param haircut WAD.
    @param deposit_cap Token units.
    @param scale 10**(18 - decimals), kept from the first listing.
    """
    self._only_engine_admin()
    vault._list(asset, haircut, deposit_cap, scale)


@external
def apply_link(asset: address, underlying: uint256):
    """
    @notice EngineAdmin hook: `asset` moves with `underlying` in the scan, for good.
    """
    self._only_engine_admin()
    vault.asset_underlying[asset] = underlying


@external
def apply_instrument_limits(instrument: uint256, open_interest_cap_: uint256, position_limit_: uint256):
    """
    @notice EngineAdmin hook: the open-interest cap and per-account size limit of `instrument`.
    """
    self._only_engine_admin()
    self.open_interest_cap[instrument] = open_interest_cap_
    self.position_limit[instrument] = position_limit_


@external
def apply_risk_switches(im_factor_: uint256, paused_: bool):
    """
    @notice EngineAdmin hook: the IM factor and the pause switch.
    """
    self._only_engine_admin()
    # EngineAdmin bounds the IM factor to [1, 3] WAD: it never reaches SOCIALISING_BIT
    self.risk_word = im_factor_ | (self.risk_word & SOCIALISING_BIT)
    self.paused = paused_


@external
def apply_liquidator(liquidator_: address):
    """
    @notice EngineAdmin hook: wire the Liquidator (EngineAdmin allows it once).
    """
    self._only_engine_admin()
    self.liquidator = ILiquidator(liquidator_)


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
    positions._move(account, receiver, ids, sizes, oracle.address)
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
        self.risk_word |= SOCIALISING_BIT


# ---------------------------------------------------------------- accounts


@external
def deposit(asset: address, amount: uint256, account: address = msg.sender) -> uint256:
    """
    @notice Pull `amount` of `asset` from the caller and credit `account` with what arrived
            (fee-on-transfer safe). Never paused.
    @param asset The settlement stablecoin or a listed collateral asset.
    @param amount Token units.
    @param account The account credited: not zero, a system contract or a token; the
           Liquidator (the insurance fund) takes the stablecoin only ("vault: bad account").
    @return The credited amount (token units).
    """
    # the fund (the Liquidator's account) takes cash only: it never withdraws collateral
    fund: address = empty(address)
    if asset != vault.cash_token:
        fund = self.liquidator.address
    self._check_account(account, fund)
    return vault._pull(asset, amount, account)


@external
def withdraw(asset: address, amount: uint256, receiver: address = msg.sender):
    """
    @notice Withdraw `amount` token units of `asset`, after settling the account (`settle`:
            expired positions paid, variation margin realised, so gains on futures and perps
            held can leave); cash must stay >= 0. An account without positions and with
            non-negative cash withdraws freely (no pause); any other needs fresh data, no pause,
            and equity >= IM afterwards.
    @param asset The settlement stablecoin or a listed collateral asset.
    @param amount Token units.
    @param receiver Recipient of the tokens: not zero, a system contract or a token
           ("vault: bad account").
    """
    self._check_account(receiver, self.liquidator.address)
    # settled first: expired positions and variation margin become cash
    self._settle(msg.sender)
    vault._debit(asset, amount, msg.sender)
    if positions._count(msg.sender) != 0 or vault.cash[msg.sender] < 0:
        a: margin.Inputs = self._inputs(msg.sender, [])
        eq: int256 = 0
        im: int256 = 0
        mm: int256 = 0
        code: uint256 = margin.ALLOWED
        eq, im, mm, code = margin._withdraw_outcome(a.book, a.cash, self.paused, self.risk_word & IM_FACTOR_MASK)
        margin._raise(code)
    vault._push(asset, amount, receiver)
    log IMarginEngine.Withdraw(account=msg.sender, asset=asset, receiver=receiver, amount=amount)


@external
def trade(buyer: address, seller: address, instrument: uint256, size: uint256, price: uint256):
    """
    @notice Book a matched trade (venue role, authorised by both accounts in EngineAdmin): the buyer goes long
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
    # reverts with its reason unless the venue, both accounts' authorisations, the size, the
    # price and the expiry pass (EngineAdmin.check_trade)
    assert staticcall IEngineAdmin(engine_admin).check_trade(msg.sender, buyer, seller, instrument, size, price)
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
    @notice Settle `account`: every position whose instrument has a settlement price pays
            div_floor(q * P, WAD) and leaves, then variation margin and funding are realised
            into cash (docs/fixed-point.md §10; event VariationMargin). Equity is unchanged.
            Open to anyone, never paused.
    @param account The account.
    @return The number of positions settled.
    """
    n: uint256 = positions._count(account)
    self._settle(account)
    return n - positions._count(account)


# ---------------------------------------------------------------- views


@view
@external
def account_state(account: address) -> margin.AccountState:
    """
    @notice Equity (pending socialised-loss charge deducted), IM, MM, the pending charge and
            whether every price used is fresh, in WAD, collateral without a fresh price valued
            at zero: the Liquidator's view, so the account is liquidatable exactly when it is
            fresh with equity < MM. Positions of instruments with a settlement price count as
            settled. Trade and withdrawal outcomes are previewed by MarginViews.
    @param account The account.
    """
    return assembler._account_state(
        oracle, oracle_views, account, self._charge_source(), self.risk_word & IM_FACTOR_MASK
    )


@view
@external
def margin_inputs(
    account: address,
    extra_ids: DynArray[uint256, fp.MAX_POSITIONS],
    extra_assets: DynArray[address, fp.MAX_ASSETS],
    stale_at_zero: bool,
    with_charge: bool,
) -> margin.Inputs:
    """
    @notice What every margin computation of `account` starts from, built by the code the
            engine's own checks use: positions (`extra_ids` added at size 0), cash, held
            collateral (`extra_assets` added at balance 0), ONE oracle snapshot and, with
            `with_charge`, the pending socialised-loss charge. `stale_at_zero` values
            collateral without a fresh price at zero (liquidation's rule).
    @param account The account.
    @param extra_ids Instruments to include even when not held.
    @param extra_assets Collateral assets to include even when not held.
    @param stale_at_zero Liquidation's collateral rule instead of the engine's.
    @param with_charge Read the pending charge (not from inside the Liquidator).
    """
    source: address = empty(address)
    if with_charge:
        source = self._charge_source()
    return assembler._inputs(oracle, oracle_views, account, extra_ids, extra_assets, stale_at_zero, source)


@view
@external
def im_factor() -> uint256:
    """
    @notice IM = div_ceil(MM * im_factor, WAD) (WAD, set by EngineAdmin within [1, 3]).
    """
    return self.risk_word & IM_FACTOR_MASK


@view
@external
def socialising() -> bool:
    """
    @notice Whether a loss has been socialised; from then on every touch realises charges.
    """
    return self.risk_word & SOCIALISING_BIT != 0


@view
@external
def position_count(account: address) -> uint256:
    """
    @notice Number of positions `account` holds.
    """
    return positions._count(account)


@view
@external
def vm_basis(account: address) -> int256:
    """
    @notice The variation-margin basis of `account` (WAD**2, docs/fixed-point.md §10): the
            account's cash counts net of div_ceil(basis + sum over its perps of q * funding
            index, WAD); each realisation moves whole wei from it into cash.
    """
    return positions._basis(account)


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
    a: margin.Inputs = self._inputs(account, [instrument])
    eq: int256 = 0
    mm: int256 = 0
    code: uint256 = margin.ALLOWED
    q_new: int256 = 0
    eq, mm, code, q_new = margin._trade_outcome(
        a.book,
        instrument,
        dq,
        a.cash,
        dcash,
        limit,
        positions._count(account),
        self.paused,
        self.risk_word & IM_FACTOR_MASK,
    )
    margin._raise(code)
    positions._change(account, instrument, dq, positions._funding(oracle.address, instrument))
    vault.cash[account] += dcash


@internal
def _settle(account: address):
    """
    @dev Settle `account`: each position with a settlement price pays div_floor(q * P, WAD) and
         leaves, and variation margin is realised (docs/fixed-point.md §10): r = div_floor(sum
         over the futures and perps left of q * mark - basis, WAD) moves from the clearing
         account (this engine's own cash) to the account's, and r * WAD into its basis; the net
         cash, hence equity, is unchanged.
    """
    self._touch(account, 0)
    a: margin.Inputs = self._inputs(account, [])
    cash: int256 = vault.cash[account]
    v: int256 = -a.basis
    for j: uint256 in range(len(a.book.ids), bound=fp.MAX_POSITIONS):
        q: int256 = a.book.sizes[j]
        i: uint256 = a.book.ids[j]
        w0: uint256 = a.book.iw[j][0]
        # |q| < 2**100, mark < 2**96
        qm: int256 = q * convert(w0 >> fp.MARK_SHIFT, int256)
        if (w0 >> fp.E_SHIFT) & 255 == fp.E_SETTLED:
            amount: int256 = fp.div_floor(qm, fp.SWAD)
            cash += amount
            positions._change(account, i, -q, positions._funding(oracle.address, i))
            a.book.sizes[j] = 0
            log IMarginEngine.Settled(account=account, instrument=i, size=q, price=w0 >> fp.MARK_SHIFT, amount=amount)
        elif fp.id_kind(i) == fp.KIND_FUTURE or fp.id_kind(i) == fp.KIND_PERP:
            v += qm
    r: int256 = fp.div_floor(v, fp.SWAD)
    if r != 0:
        positions._add_basis(account, r * fp.SWAD)
        cash += r
        vault.cash[self] -= r
        log IMarginEngine.VariationMargin(account=account, amount=r)
    vault.cash[account] = cash


@internal
def _touch(account: address, extra: uint256):
    """
    @dev Realise the account's socialised-loss charge (paid to the fund) and snapshot the loss
         index of `extra` before its size changes. Nothing to do before the first socialisation.
         The Liquidator reads the positions back through `positions_of`, the one view open to
         re-entry: positions never change around an external call of the engine.
    """
    if self.risk_word & SOCIALISING_BIT == 0:
        return
    charge: int256 = extcall self.liquidator.touch(account, extra)
    vault._move_cash(account, self.liquidator.address, charge)


@view
@internal
def _inputs(account: address, extra_ids: DynArray[uint256, 1]) -> margin.Inputs:
    """
    @dev The inputs the engine's rules judge: collateral at posted prices, no pending charge
         (`_touch` has realised it), cash net of the basis.
    """
    return assembler._inputs(oracle, oracle_views, account, extra_ids, [], False, empty(address))


@view
@internal
def _check_account(a: address, fund: address):
    """
    @dev Refuse an account credited or a receiver paid that can never use it: the zero
         address, this engine, its admin, its oracle, the cash token, a listed collateral
         token, and `fund` (the Liquidator where it would take what it never moves on).
    """
    assert a != empty(address) and a != self and a != engine_admin and a != oracle.address and a != vault.cash_token and vault.asset_index[a] == 0 and a != fund, "vault: bad account"


@view
@internal
def _only_engine_admin():
    assert msg.sender == engine_admin, "engine: not engine admin"


@view
@internal
def _charge_source() -> address:
    """
    @dev The Liquidator once a loss has been socialised (before, no account owes anything).
    """
    if self.risk_word & SOCIALISING_BIT != 0:
        return self.liquidator.address
    return empty(address)
