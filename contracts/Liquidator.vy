# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Liquidator: pro-rata partial liquidation, insurance fund and loss socialisation
@custom:contract-name Liquidator
@notice Liquidates MarginEngine accounts below maintenance margin (docs/fixed-point.md §8,
        docs/liquidation.md). The liquidator, itself a margin account, takes the same fraction
        f of every position at mark, f = div_ceil((IM - E) * WAD, IM - div_ceil(p * MM, WAD))
        (the smallest that restores equity >= IM), or all of it when the account is insolvent
        or would be left with dust; the account pays a penalty on the MM taken over, split
        between the liquidator and the insurance fund. The insurance fund is this contract's
        cash inside the engine (anyone tops it up with `engine.deposit(cash_token, amount,
        liquidator)`). Bad debt is paid by the fund up to its balance and to `fund_share` of the
        debt; the rest raises a loss index of every instrument the account held, on the side
        opposite to it, which charges each holder |q| * (index - snapshot) on its next touch
        (trade, withdrawal, settlement, liquidation). Books: fund_payouts + socialised == bad_debt.
        A separate contract because the engine has no room for this code under 24,576 bytes;
        the engine trusts it only through two hooks (`liquidation_move`, by which it moves
        positions, collateral and cash, and `touch`, by which the engine asks for the charge).
@custom:security Non-reentrant. Reads each account as the engine assembles it
                 (`MarginEngine.margin_inputs`, one oracle snapshot each, collateral without a
                 fresh price at zero), then applies everything with the engine hooks at the end. A solvent partial liquidation is checked on-chain
                 to leave the account at or above IM (else the whole account is taken); the
                 liquidator must end at or above IM with fresh data. Self-liquidation, a
                 system contract as the account (the fund's own negative cash is not bad
                 debt), a healthy account and stale data revert. A caller may cap the fraction but not
                 below min(f, min_fraction) (no dust griefing); after an uncapped liquidation
                 the account is at or above IM, so a second one in the same block reverts.
"""


from .interfaces import ILiquidator
from .interfaces import ILiquidationEngine
from .modules import fixed_point as fp
from .modules import margin
from .modules import liquidation as lq
from .modules import roles


implements: ILiquidator


initializes: roles


exports: (
    roles.admin,
    roles.pending_admin,
    roles.transfer_admin,
    roles.accept_admin,
)


MAX_PENALTY_RATE: constant(uint256) = 5 * 10**17
MAX_DISCOUNT: constant(uint256) = 5 * 10**17
MAX_MIN_REMAINING_MM: constant(uint256) = 10**24
engine: public(immutable(ILiquidationEngine))
# The engine's oracle and admin, read once: with the engine and this contract (the insurance
# fund's account) they are the system's contracts, never accounts to liquidate or scan.
oracle: immutable(address)
engine_admin: immutable(address)


penalty_rate: public(uint256)
liquidator_share: public(uint256)
min_fraction: public(uint256)
min_remaining_mm: public(uint256)
collateral_discount: public(uint256)
# the largest share of a bad debt the fund pays while opposite open interest can bear the rest
fund_share: public(uint256)
# instrument => long index << 128 | short index
loss_index: public(HashMap[uint256, uint256])
# account => instrument => the loss-index word when last charged
loss_snapshot: public(HashMap[address, HashMap[uint256, uint256]])
# Raised whenever a loss index moves; an account charged at the current epoch owes nothing.
loss_epoch: public(uint256)
account_epoch: public(HashMap[address, uint256])
# Books (WAD): bad_debt == fund_payouts + socialised; charges_realised counts the socialised
# loss collected so far (>= socialised once every holder is touched, by rounding up).
bad_debt: public(uint256)
fund_payouts: public(uint256)
socialised: public(uint256)
charges_realised: public(uint256)
# Accounts scanned by `accounts_below_mm` (filled by `register`, permissionless).
account_list: public(HashMap[uint256, address])
account_count: public(uint256)
registered: public(HashMap[address, bool])


@deploy
def __init__(admin_: address, engine_: ILiquidationEngine):
    """
    @param admin_ The admin (sets the bounded parameters).
    @param engine_ The MarginEngine (which must then `set_liquidator` to this contract).
    """
    roles.__init__(admin_)
    engine = engine_
    oracle = staticcall engine_.oracle()
    engine_admin = staticcall engine_.engine_admin()
    self._set_params(10**17, 5 * 10**17, 10**17, 100 * fp.WAD, 5 * 10**16)
    self.fund_share = fp.WAD
    log ILiquidator.FundShareSet(fund_share=fp.WAD)


# ---------------------------------------------------------------- admin


@external
def set_params(
    penalty_rate_: uint256,
    liquidator_share_: uint256,
    min_fraction_: uint256,
    min_remaining_mm_: uint256,
    collateral_discount_: uint256,
):
    """
    @notice Set the liquidation parameters (WAD), each within its bounds.
    @param penalty_rate_ Penalty per unit of MM taken over, <= 0.5 (default 0.1).
    @param liquidator_share_ Liquidator's share of the penalty, <= 1 (default 0.5).
    @param min_fraction_ Smallest cap a caller may set, <= 1 (default 0.1).
    @param min_remaining_mm_ USD; a smaller remaining MM takes the whole account, <= 1e6
           (default 100).
    @param collateral_discount_ Discount on collateral sold, <= 0.5, capped by each asset's
           haircut (default 0.05).
    """
    roles._only_admin()
    self._set_params(penalty_rate_, liquidator_share_, min_fraction_, min_remaining_mm_, collateral_discount_)


@external
def set_fund_share(fund_share_: uint256):
    """
    @notice Set the largest share of a bad debt D the insurance fund pays while opposite open
            interest exists to bear the rest at once (docs/liquidation.md, "Gap losses and the
            fund"): 1 pays from the fund first, 0 socialises every such loss.
    @param fund_share_ WAD, <= 1 (default 1).
    """
    roles._only_admin()
    assert fund_share_ <= fp.WAD, "liquidation: fund share > 1"
    self.fund_share = fund_share_
    log ILiquidator.FundShareSet(fund_share=fund_share_)


# ---------------------------------------------------------------- liquidation


@external
def liquidate(account: address, max_fraction: uint256 = fp.WAD) -> uint256:
    """
    @notice Liquidate `account` (equity < MM, fresh data) into the caller's margin account:
            take fraction f of every position at mark and f of the linked collateral whose
            leg is in its book (at a discount), charge the penalty, sell collateral when a
            fully liquidated account's cash is negative, cover bad debt (fund, then
            socialisation). The caller must end at or above IM.
    @param account The account below maintenance margin.
    @param max_fraction Cap on f (WAD, in (0, 1]); not below min(f, min_fraction).
    @return The fraction taken (WAD).
    """
    assert not self._is_system(account), "liquidation: not an account"
    assert account != msg.sender, "liquidation: self"
    target: margin.Inputs = staticcall engine.margin_inputs(account, [], [], True, False)
    charge_target: uint256 = self._realise(account, target.book.ids, target.book.sizes)
    target.cash -= convert(charge_target, int256)
    im_factor: uint256 = staticcall engine.im_factor()
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = margin._state(target.book, target.cash)
    assert fresh, "liquidation: stale oracle"
    assert eq < mm, "liquidation: healthy"
    code: uint256 = lq.OK
    fraction: uint256 = 0
    capped: bool = False
    code, fraction, capped = lq._fraction(eq, mm, margin._im(mm, im_factor), max_fraction, self._params())
    assert code != lq.BAD_CAP, "liquidation: bad fraction"
    assert code != lq.BELOW_MINIMUM, "liquidation: fraction too small"
    plan: lq.Plan = lq._plan(target, fraction, capped, eq, mm, im_factor, self._params())
    assert not plan.unpriced, "liquidation: stale collateral"

    # the liquidator: its inputs with the positions and collateral it receives
    sold_assets: DynArray[address, fp.MAX_ASSETS] = []
    for slot: uint256 in range(len(plan.sold), bound=fp.MAX_ASSETS):
        if plan.sold[slot] != 0:
            sold_assets.append(target.holdings[slot].asset)
    taker: margin.Inputs = staticcall engine.margin_inputs(msg.sender, plan.ids, sold_assets, True, False)
    charge_taker: uint256 = self._realise(msg.sender, taker.book.ids, taker.book.sizes)
    taker_prior: DynArray[int256, fp.MAX_POSITIONS] = []
    # before the first socialisation every index and snapshot is zero: nothing to snapshot
    socialised_before: bool = self.loss_epoch != 0
    for slot: uint256 in range(len(plan.ids), bound=fp.MAX_POSITIONS):
        instrument: uint256 = plan.ids[slot]
        at: uint256 = self._index_of(taker.book.ids, instrument, slot)
        size: int256 = taker.book.sizes[at]
        taker_prior.append(size)
        if size == 0 and socialised_before:
            self.loss_snapshot[msg.sender][instrument] = self.loss_index[instrument]
        size += plan.taken[slot]
        assert size <= fp.MAX_SIZE and size >= -fp.MAX_SIZE, "liquidation: size out of bounds"
        taker.book.sizes[at] = size
    for slot: uint256 in range(len(plan.sold), bound=fp.MAX_ASSETS):
        if plan.sold[slot] != 0:
            at: uint256 = 0
            for held: uint256 in range(len(taker.holdings), bound=fp.MAX_ASSETS):
                if taker.holdings[held].asset == target.holdings[slot].asset:
                    at = held
                    break
            holding: margin.Holding = taker.holdings[at]
            before: int256 = fp.collateral_value(holding.balance, holding.scale, holding.haircut, holding.price)
            holding.balance += plan.sold[slot]
            for k: uint256 in range(fp.MAX_LINKED):
                if (taker.book.legs[k][0] >> 16) & 255 == at:
                    taker.book.legs[k][0] = (taker.book.legs[k][0] & fp.MASK32) | (holding.balance * holding.scale << 32)
            taker.book.collateral += (
                fp.collateral_value(holding.balance, holding.scale, holding.haircut, holding.price) - before
            )
    taker.cash = (
        taker.cash
        - convert(charge_taker, int256)
        - plan.position_cash
        + convert(plan.to_liquidator, int256)
        - convert(plan.paid, int256)
    )
    eq_taker: int256 = 0
    mm_taker: int256 = 0
    eq_taker, mm_taker, fresh = margin._state(taker.book, taker.cash)
    assert fresh, "liquidation: stale oracle"

    # bad debt: the fund pays up to its balance, the rest is socialised
    fund_from_target: int256 = convert(plan.to_fund + charge_target, int256)
    socialised_now: uint256 = 0
    netted_charge: uint256 = 0
    if plan.bad_debt != 0:
        debt: int256 = convert(plan.bad_debt, int256)
        fund: int256 = staticcall engine.cash(self) + fund_from_target + convert(charge_taker, int256)
        payout: uint256 = min(convert(min(debt, max(fund, 0)), uint256), plan.bad_debt * self.fund_share // fp.WAD)
        if payout < plan.bad_debt:
            socialised_now, netted_charge = self._socialise(plan.bad_debt - payout, plan, target.book.sizes, taker_prior)
            if socialised_now == 0:
                payout = plan.bad_debt
            # the liquidator's opposite size that the takeover netted pays its share now
            if netted_charge != 0:
                charge_taker += netted_charge
                self.charges_realised += netted_charge
                log ILiquidator.Charged(account=msg.sender, amount=netted_charge)
        fund_from_target -= debt
        self.bad_debt += plan.bad_debt
        self.fund_payouts += payout
        self.socialised += socialised_now
        log ILiquidator.BadDebt(account=account, amount=plan.bad_debt, fund_payout=payout, socialised=socialised_now)
    # the liquidator, after what it takes over and any netted share of the socialised loss
    assert eq_taker - convert(netted_charge, int256) >= margin._im(mm_taker, im_factor), "liquidation: liquidator below IM"

    # apply: one engine call moves positions, collateral and cash
    amounts: DynArray[uint256, fp.MAX_ASSETS] = []
    for slot: uint256 in range(len(plan.sold), bound=fp.MAX_ASSETS):
        if plan.sold[slot] != 0:
            amounts.append(plan.sold[slot])
            log ILiquidator.CollateralSold(
                account=account,
                liquidator=msg.sender,
                asset=target.holdings[slot].asset,
                amount=plan.sold[slot],
                paid=plan.sale_cash[slot],
            )
    extcall engine.liquidation_move(
        account,
        msg.sender,
        plan.ids,
        plan.taken,
        sold_assets,
        amounts,
        plan.position_cash - convert(plan.to_liquidator, int256) + convert(plan.paid, int256),
        fund_from_target,
        convert(charge_taker, int256),
        socialised_now != 0,
    )
    log ILiquidator.Liquidated(
        account=account,
        liquidator=msg.sender,
        fraction=plan.fraction,
        position_cash=plan.position_cash,
        penalty=plan.penalty,
        penalty_to_liquidator=plan.to_liquidator,
        penalty_to_fund=plan.to_fund,
        instruments=plan.ids,
        sizes=plan.taken,
    )
    return plan.fraction


@external
def touch(account: address, extra: uint256) -> int256:
    """
    @notice Engine hook, before an account's positions change: returns the socialised loss the
            account owes (the engine moves it to the fund) and brings its snapshots, and the
            one of `extra` (the instrument about to change), up to the current loss index.
            Reads the positions through `engine.positions_of`, the one engine view open to
            re-entry (positions never change around an engine external call).
    @param account The account touched.
    @param extra The instrument a trade is about to change (0: none).
    @return The charge (WAD, >= 0).
    """
    assert msg.sender == engine.address, "liquidation: not engine"
    ids: DynArray[uint256, fp.MAX_POSITIONS] = []
    sizes: DynArray[int256, fp.MAX_POSITIONS] = []
    ids, sizes = staticcall engine.positions_of(account)
    charge: uint256 = self._realise(account, ids, sizes)
    if extra != 0:
        self.loss_snapshot[account][extra] = self.loss_index[extra]
    return convert(charge, int256)


@external
def register(account: address):
    """
    @notice Add an account to the list `accounts_below_mm` scans (idempotent, open to anyone;
            the keeper registers every depositor it sees). A system contract
            (`is_system_account`) is not an account: skipped, like one already listed.
    @param account The account.
    """
    assert account != empty(address), "liquidation: zero account"
    if not self._is_system(account):
        self._register(account)


# ---------------------------------------------------------------- views


@view
@external
def pending_charge(account: address) -> uint256:
    """
    @notice Socialised loss the account owes and pays on its next touch (WAD); zero for an
            account without positions.
    @param account The account.
    """
    ids: DynArray[uint256, fp.MAX_POSITIONS] = []
    sizes: DynArray[int256, fp.MAX_POSITIONS] = []
    ids, sizes = staticcall engine.positions_of(account)
    return self._pending(account, ids, sizes)


@view
@external
def is_system_account(account: address) -> bool:
    """
    @notice True for the system's own contracts: this Liquidator (the insurance fund's
            account), MarginEngine, EngineAdmin and RiskOracle. They are not margin accounts:
            `liquidate` refuses them, `register` skips them, the preview reports status 6.
    @param account The address.
    """
    return self._is_system(account)


@view
@external
def insurance_fund() -> int256:
    """
    @notice The fund's cash in the engine (WAD). Negative while it advances socialised losses
            that holders have not paid yet.
    """
    return staticcall engine.cash(self)


# ---------------------------------------------------------------- internal


@internal
def _set_params(pr: uint256, share: uint256, min_f: uint256, min_mm: uint256, discount: uint256):
    assert pr <= MAX_PENALTY_RATE, "liquidation: penalty too large"
    assert share <= fp.WAD, "liquidation: share out of bounds"
    assert min_f <= fp.WAD, "liquidation: min fraction > 1"
    assert min_mm <= MAX_MIN_REMAINING_MM, "liquidation: min mm too large"
    assert discount <= MAX_DISCOUNT, "liquidation: discount too large"
    self.penalty_rate = pr
    self.liquidator_share = share
    self.min_fraction = min_f
    self.min_remaining_mm = min_mm
    self.collateral_discount = discount
    log ILiquidator.ParamsSet(
        penalty_rate=pr, liquidator_share=share, min_fraction=min_f, min_remaining_mm=min_mm, collateral_discount=discount
    )


@view
@internal
def _params() -> lq.Params:
    return lq.Params(
        penalty_rate=self.penalty_rate,
        liquidator_share=self.liquidator_share,
        min_fraction=self.min_fraction,
        min_remaining_mm=self.min_remaining_mm,
        collateral_discount=self.collateral_discount,
    )


@view
@internal
def _is_system(account: address) -> bool:
    return account == self or account == engine.address or account == oracle or account == engine_admin


@internal
def _register(account: address):
    if self.registered[account]:
        return
    n: uint256 = self.account_count
    self.registered[account] = True
    self.account_list[n] = account
    self.account_count = n + 1
    log ILiquidator.AccountRegistered(account=account, index=n)


@internal
def _socialise(
    rest: uint256, p: lq.Plan, a_sizes: DynArray[int256, fp.MAX_POSITIONS], l_prior: DynArray[int256, fp.MAX_POSITIONS]
) -> (uint256, uint256):
    """
    @dev Spread `rest` over the open interest opposite to the positions taken: after the
         transfer, plus the liquidator's opposite size that the takeover netted (n_j), so a
         counterparty that liquidates bears the same loss as when a third party does.
         Weights |t| * mark // WAD (|t| when they all vanish), the last eligible instrument
         taking the rounding rest; index += div_ceil(R_j * WAD, OI_j + n_j). Returns (`rest`,
         the liquidator's charge sum div_ceil(n_j * delta_j, WAD)), or (0, 0) when nothing is
         eligible (the fund then absorbs it).
    """
    n: uint256 = len(p.ids)
    oi: DynArray[uint256, fp.MAX_POSITIONS] = []
    netted: DynArray[uint256, fp.MAX_POSITIONS] = []
    charge: uint256 = 0
    weights: DynArray[uint256, fp.MAX_POSITIONS] = []
    total: uint256 = 0
    count: uint256 = 0
    last: uint256 = 0
    for j: uint256 in range(n, bound=fp.MAX_POSITIONS):
        t: int256 = p.taken[j]
        # p.ids follows the account's book, which holds no zero size: a_sizes[j] is its size.
        qa: int256 = a_sizes[j]
        ql: int256 = l_prior[j]
        # open interest (sum of longs) after the transfer, read before it is applied.
        o: uint256 = staticcall engine.open_interest(p.ids[j])
        o = o + convert(max(qa - t, 0) + max(ql + t, 0), uint256) - convert(max(qa, 0) + max(ql, 0), uint256)
        # netted: the part of the liquidator's opposite size the takeover closed
        n_j: uint256 = 0
        if t * ql < 0:
            n_j = convert(min(abs(t), abs(ql)), uint256)
        netted.append(n_j)
        o += n_j
        if (p.settled_mask >> j) & 1 != 0:
            # settled: short and long holders settle at different times, OI is no measure
            o = 0
        oi.append(o)
        w: uint256 = 0
        if o != 0:
            w = convert(abs(t), uint256) * p.marks[j] // fp.WAD
            total += w
            count += 1
            last = j
        weights.append(w)
    if count == 0:
        return 0, 0
    if total == 0:
        for j: uint256 in range(n, bound=fp.MAX_POSITIONS):
            if oi[j] != 0:
                weights[j] = convert(abs(p.taken[j]), uint256)
                total += weights[j]
    given: uint256 = 0
    for j: uint256 in range(n, bound=fp.MAX_POSITIONS):
        if oi[j] == 0:
            continue
        share: uint256 = rest * weights[j] // total
        if j == last:
            share = rest - given
        given += share
        delta: uint256 = share * fp.WAD // oi[j] + convert(share * fp.WAD % oi[j] != 0, uint256)
        # netted <= |t| < 2**100, delta <= 2**128
        x: uint256 = netted[j] * delta
        charge += x // fp.WAD + convert(x % fp.WAD != 0, uint256)
        word: uint256 = self.loss_index[p.ids[j]]
        sh: uint256 = 0
        side: uint256 = lq.SHORT
        if p.taken[j] < 0:
            sh = 128
            side = lq.LONG
        part: uint256 = ((word >> sh) & lq.MASK128) + delta
        assert part <= lq.MASK128, "liquidation: loss index overflow"
        self.loss_index[p.ids[j]] = (word & ~(lq.MASK128 << sh)) | (part << sh)
        log ILiquidator.LossIndexRaised(instrument=p.ids[j], side=side, delta=delta, index=part)
    self.loss_epoch += 1
    return rest, charge


@view
@internal
def _pending(account: address, ids: DynArray[uint256, fp.MAX_POSITIONS], sizes: DynArray[int256, fp.MAX_POSITIONS]) -> uint256:
    if self.account_epoch[account] == self.loss_epoch:
        return 0
    total: uint256 = 0
    for j: uint256 in range(len(ids), bound=fp.MAX_POSITIONS):
        total += lq._owed(sizes[j], self.loss_index[ids[j]], self.loss_snapshot[account][ids[j]])
    return total


@internal
def _realise(account: address, ids: DynArray[uint256, fp.MAX_POSITIONS], sizes: DynArray[int256, fp.MAX_POSITIONS]) -> uint256:
    """
    @dev Charge sum_j div_ceil(|q_j| * (index_side - snapshot_side), WAD) (side of q_j) and
         bring every held snapshot up to the index. Returns the charge.
    """
    e: uint256 = self.loss_epoch
    if self.account_epoch[account] == e:
        return 0
    total: uint256 = 0
    for j: uint256 in range(len(ids), bound=fp.MAX_POSITIONS):
        if sizes[j] == 0:
            continue
        word: uint256 = self.loss_index[ids[j]]
        total += lq._owed(sizes[j], word, self.loss_snapshot[account][ids[j]])
        self.loss_snapshot[account][ids[j]] = word
    self.account_epoch[account] = e
    if total != 0:
        self.charges_realised += total
        log ILiquidator.Charged(account=account, amount=total)
    return total


@pure
@internal
def _index_of(ids: DynArray[uint256, fp.MAX_POSITIONS], i: uint256, hint: uint256) -> uint256:
    """
    @dev Index of `i`, present by construction (`margin_inputs` adds every instrument taken; were
         it missing, the index returned is out of bounds and its use reverts). Index `hint`
         is tried first: a liquidator's book often lists the account's instruments in order.
    """
    if hint < len(ids) and ids[hint] == i:
        return hint
    for j: uint256 in range(len(ids), bound=fp.MAX_POSITIONS):
        if ids[j] == i:
            return j
    return len(ids)
