# pragma version 0.4.3
"""
@title LiquidationViews: keeper-facing previews of the Liquidator
@custom:contract-name LiquidationViews
@notice Read-only companion of Liquidator (as MarginViews is of MarginEngine), so the Liquidator
        stays under the 24,576-byte limit. It reads the account as the engine assembles it for
        the Liquidator (`MarginEngine.margin_inputs`, stale collateral at zero) and runs the
        SAME module code (`liquidation`, `margin`) the Liquidator enforces, so a preview cannot
        disagree with a liquidation. Equity here has the pending socialised-loss charge
        deducted; an account's state is `MarginEngine.account_state`.
@custom:security Holds no state and no funds. Calls only views of the Liquidator and the engine.
"""


from .interfaces import ILiquidationEngine
from .modules import fixed_point as fp
from .modules import margin
from .modules import liquidation as lq


interface ILiquidatorViews:
    def engine() -> address: view
    def penalty_rate() -> uint256: view
    def liquidator_share() -> uint256: view
    def min_fraction() -> uint256: view
    def min_remaining_mm() -> uint256: view
    def collateral_discount() -> uint256: view
    def account_list(i: uint256) -> address: view
    def account_count() -> uint256: view
    def is_system_account(account: address) -> bool: view


MAX_PAGE: constant(uint256) = 50


struct Preview:
    status: uint256
    fraction: uint256
    ids: DynArray[uint256, fp.MAX_POSITIONS]
    taken: DynArray[int256, fp.MAX_POSITIONS]
    position_cash: int256
    penalty: uint256
    penalty_to_liquidator: uint256
    penalty_to_fund: uint256
    collateral_sold: DynArray[uint256, fp.MAX_ASSETS]
    collateral_paid: uint256
    bad_debt: uint256
    pending_charge: uint256


liquidator: public(immutable(ILiquidatorViews))
engine: public(immutable(ILiquidationEngine))


@deploy
def __init__(liquidator_: ILiquidatorViews):
    """
    @param liquidator_ The Liquidator.
    """
    liquidator = liquidator_
    engine = ILiquidationEngine(staticcall liquidator_.engine())


@view
@external
def liquidation_preview(account: address, max_fraction: uint256 = fp.WAD) -> Preview:
    """
    @notice What `Liquidator.liquidate(account, max_fraction)` would do now, without the
            liquidator's side: status (0 liquidatable, 1 healthy, 2 stale data, 3 cap below the
            minimum, 4 cap outside (0, 1], 5 insolvent with collateral that has no fresh
            price: waits for its price, 6 a system contract: not an account), fraction,
            positions taken (ids and signed sizes the liquidator receives), cash the liquidator
            pays for them (negative: it receives), penalty and its split, collateral units sold
            (per held asset, vault order: the linked ones taken with the positions, then any
            sale) and what the liquidator pays for them, bad debt, and
            the pending charge realised first.
    @param account The account.
    @param max_fraction Cap on the fraction (WAD, default 1).
    """
    out: Preview = empty(Preview)
    if staticcall liquidator.is_system_account(account):
        out.status = lq.NOT_AN_ACCOUNT
        return out
    a: margin.Inputs = staticcall engine.margin_inputs(account, [], [], True, True)
    out.pending_charge = a.pending_charge
    a.cash -= convert(a.pending_charge, int256)
    k: uint256 = staticcall engine.im_factor()
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = margin._state(a.book, a.cash)
    if not fresh:
        out.status = lq.STALE
        return out
    if eq >= mm:
        out.status = lq.HEALTHY
        return out
    prm: lq.Params = self._params()
    f: uint256 = 0
    capped: bool = False
    out.status, f, capped = lq._fraction(eq, mm, margin._im(mm, k), max_fraction, prm)
    if out.status != lq.OK:
        return out
    p: lq.Plan = lq._plan(a, f, capped, eq, mm, k, prm)
    if p.unpriced:
        out.status = lq.UNPRICED
        return out
    out.fraction = p.fraction
    out.ids = p.ids
    out.taken = p.taken
    out.position_cash = p.position_cash
    out.penalty = p.penalty
    out.penalty_to_liquidator = p.to_liquidator
    out.penalty_to_fund = p.to_fund
    out.collateral_sold = p.sold
    out.collateral_paid = p.paid
    out.bad_debt = p.bad_debt
    return out


@view
@external
def accounts_below_mm(_from: uint256, _limit: uint256) -> DynArray[address, MAX_PAGE]:
    """
    @notice Registered accounts whose equity (pending charge deducted) is below MM, among
            `Liquidator.account_list[_from : _from + min(_limit, 50)]`; stale data included
            (the keeper posts before it liquidates).
    @param _from First list index.
    @param _limit Accounts to scan (at most 50).
    """
    out: DynArray[address, MAX_PAGE] = []
    end: uint256 = min(_from + min(_limit, MAX_PAGE), staticcall liquidator.account_count())
    if _from >= end:
        return out
    for i: uint256 in range(_from, end, bound=MAX_PAGE):
        acct: address = staticcall liquidator.account_list(i)
        state: margin.AccountState = staticcall engine.account_state(acct)
        if state.equity < state.maintenance_margin:
            out.append(acct)
    return out


@view
@internal
def _params() -> lq.Params:
    return lq.Params(
        penalty_rate=staticcall liquidator.penalty_rate(),
        liquidator_share=staticcall liquidator.liquidator_share(),
        min_fraction=staticcall liquidator.min_fraction(),
        min_remaining_mm=staticcall liquidator.min_remaining_mm(),
        collateral_discount=staticcall liquidator.collateral_discount(),
    )
