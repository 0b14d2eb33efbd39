# pragma version 0.4.3
"""
@title The one place an account's margin inputs are built
@custom:contract-name assembler
@notice Positions, their underlyings, cash, held collateral and ONE RiskOracle snapshot of all
        their prices, plus (when asked) the socialised-loss charge the account owes. The
        engine's own checks, its `account_state` and `margin_inputs` views, and through them
        MarginViews, LiquidationViews and the Liquidator all read an account from here, the
        way curve-stablecoin's views call the controller's internals: a preview or a
        liquidation cannot value an account differently from the engine.
@custom:security Reads the vault and positions modules of the including contract (`uses:`).
                 Two valuations of collateral: the engine's rule (every held asset at its
                 posted price, its timestamp counted in freshness) and the stale-at-zero rule
                 of liquidation (a price stale or never posted counts as zero and its timestamp
                 is ignored, so dust of such an asset cannot shield an account from
                 liquidation). Assets asked for but not held enter at balance 0.
"""


from ..interfaces import IRiskOracle
from . import fixed_point as fp
from . import margin
from . import positions
from . import vault


uses: positions
uses: vault


interface ISpotLegs:
    def spot_leg(underlying: uint256, price: uint256) -> uint256[4]: view


interface IChargeSource:
    def pending_charge(account: address) -> uint256: view


@view
@internal
def _inputs(
    oracle: IRiskOracle,
    legs: ISpotLegs,
    account: address,
    extra_ids: DynArray[uint256, fp.MAX_POSITIONS],
    extra_assets: DynArray[address, fp.MAX_ASSETS],
    stale_at_zero: bool,
    charge_source: address,
) -> margin.Inputs:
    """
    @dev The inputs of `account`, `extra_ids` added at size 0 and `extra_assets` at balance 0
         when not held; the pending charge read from `charge_source` unless it is empty.
    """
    out: margin.Inputs = empty(margin.Inputs)
    out.book.ids, out.book.sizes = positions._load(account)
    for i: uint256 in extra_ids:
        if i not in out.book.ids:
            assert len(out.book.ids) < fp.MAX_POSITIONS, "engine: too many positions"
            out.book.ids.append(i)
            out.book.sizes.append(0)
    out.book.unds = margin._underlyings(out.book.ids)
    out.cash = vault.cash[account]
    if charge_source != empty(address):
        out.pending_charge = staticcall IChargeSource(charge_source).pending_charge(account)
    held: DynArray[address, fp.MAX_ASSETS] = vault._held_assets(account)
    for asset: address in extra_assets:
        if asset not in held:
            held.append(asset)
    for asset: address in held:
        # an asset asked for but not held has balance 0
        out.holdings.append(
            margin.Holding(
                asset=asset, balance=vault.collateral[asset][account], price=0, scale=0, haircut=0, stamp=0
            )
        )
    out.book.min_timestamp = max_value(uint256)
    # the variation-margin basis plus the perps' funding (docs/fixed-point.md §10)
    out.basis = positions._basis(account)
    if len(out.book.ids) == 0 and len(held) == 0:
        out.cash -= fp.div_ceil(out.basis, fp.SWAD)
        return out
    words: DynArray[uint256, fp.MAX_ASSETS] = []
    out.book.iw, out.book.uw, words, out.book.max_age = staticcall oracle.snapshot(
        out.book.ids, out.book.unds, held
    )
    # F of an underlying with a perp rides in the top half of its scenario word; one perp per
    # underlying. |q| < 2**100, |F| < 2**127.
    for k: uint256 in range(len(out.book.unds), bound=fp.MAX_POSITIONS):
        f: int256 = convert(convert(out.book.uw[k][1], bytes32), int256) >> 128
        if f != 0:
            perp: uint256 = (out.book.unds[k] << 8) | fp.KIND_PERP
            j: uint256 = 0
            for i: uint256 in out.book.ids:
                if (i >> fp.ID_KIND_SHIFT) & fp.MASK24 == perp:
                    out.basis += out.book.sizes[j] * f
                    break
                j += 1
    out.cash -= fp.div_ceil(out.basis, fp.SWAD)
    k: uint256 = 0
    for n: uint256 in range(len(held), bound=fp.MAX_ASSETS):
        h: margin.Holding = out.holdings[n]
        h.price = words[n] & fp.MASK96
        h.stamp = words[n] >> 96
        if stale_at_zero and (h.stamp == 0 or h.stamp + out.book.max_age < block.timestamp):
            h.price = 0
        else:
            out.book.min_timestamp = min(out.book.min_timestamp, h.stamp)
        h.scale = vault.asset_scale[h.asset]
        h.haircut = vault.asset_haircut[h.asset]
        out.book.collateral += fp.collateral_value(h.balance, h.scale, h.haircut, h.price)
        out.holdings[n] = h
        # a linked asset priced (a stale price is zero under stale_at_zero: no leg), with a
        # position on its underlying possible: its spot leg (docs/fixed-point.md §5.1, layout
        # in portfolio.vy); balance 0 too: an asset asked for may be credited (a liquidator's)
        if h.price != 0:
            u: uint256 = vault.asset_underlying[h.asset]
            if u in out.book.unds:
                leg: uint256[4] = staticcall legs.spot_leg(u, h.price)
                leg[0] = u | (n << 16) | (leg[0] << 24) | (h.balance * h.scale << 32)
                out.book.legs[k] = leg
                k += 1
    return out


@view
@internal
def _account_state(
    oracle: IRiskOracle, legs: ISpotLegs, account: address, charge_source: address, im_factor: uint256
) -> margin.AccountState:
    """
    @dev The state of `account` under liquidation's collateral rule, its pending charge (from
         `charge_source`) deducted. Built here so the inputs are not copied out first.
    """
    inputs: margin.Inputs = self._inputs(oracle, legs, account, [], [], True, charge_source)
    eq: int256 = 0
    mm: int256 = 0
    fresh: bool = False
    eq, mm, fresh = margin._state(inputs.book, inputs.cash - convert(inputs.pending_charge, int256))
    return margin.AccountState(
        equity=eq,
        initial_margin=margin._im(mm, im_factor),
        maintenance_margin=mm,
        pending_charge=inputs.pending_charge,
        fresh=fresh,
    )
