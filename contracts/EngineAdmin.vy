# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title EngineAdmin: who may act on one MarginEngine, and its configuration
@custom:contract-name EngineAdmin
@notice Holds the engine's roles (admin, venue, guardian) and the venues each account
        authorises, and decides the engine's configuration: collateral listings, instrument
        limits, the IM factor, the pause and the Liquidator. Each decision is validated here,
        written into the engine through one of its `apply_*` hooks and logged here (the events
        of IMarginEngine), so the engine keeps only what its checks read and has room under
        the 24,576-byte limit. The engine asks `check_venue` once per trade.
@custom:security The engine accepts its hooks from this contract only (an immutable), and this
                 contract accepts one engine, bound once by the admin, whose `engine_admin` is
                 this contract. Every configuration bound is checked here, before the hook;
                 the engine's hooks add the checks that need its storage (the asset count).
                 Until `bind`, every configuration call reverts with "engine: admin not bound".
                 Non-reentrant; calls only the bound engine, the oracle and a token's
                 `decimals`.
"""


from ethereum.ercs import IERC20Detailed
from .interfaces import IEngineAdmin
from .interfaces import IMarginEngine
from .interfaces import IRiskOracle
from .interfaces import ILiquidator
from .interfaces import IRoles
from .modules import fixed_point as fp
from .modules import roles
from .modules import vault


implements: IEngineAdmin


initializes: roles


exports: (
    roles.admin,
    roles.pending_admin,
    roles.has_role,
    roles.transfer_admin,
    roles.accept_admin,
    roles.revoke_role,
)


MIN_IM_FACTOR: constant(uint256) = 10**18
MAX_IM_FACTOR: constant(uint256) = 3 * 10**18
MAX_OPEN_INTEREST_CAP: constant(uint256) = 10**33


engine: public(IMarginEngine)
oracle: public(IRiskOracle)
# account => venue => allowed to book trades for the account
authorised: public(HashMap[address, HashMap[address, bool]])
# the underlying a collateral asset is linked to (0: none), and how many are (<= MAX_LINKED)
asset_underlying: public(HashMap[address, uint256])
linked_assets: public(uint256)


@deploy
def __init__(admin_: address):
    """
    @param admin_ The admin (then `bind` the engine deployed with this contract as its admin).
    """
    roles.__init__(admin_)


@external
def bind(engine_: IMarginEngine):
    """
    @notice Attach the engine this contract administers, once.
    @param engine_ A MarginEngine deployed with this contract as `engine_admin`.
    """
    roles._only_admin()
    assert self.engine.address == empty(address), "engine: admin already bound"
    # probed, so any other contract (oracle, token, lens) is refused with the reason
    assert self._answer(engine_.address, method_id("engine_admin()")) == convert(self, uint256), "engine: not administered here"
    self.engine = engine_
    self.oracle = IRiskOracle(staticcall engine_.oracle())
    log IMarginEngine.ImFactorSet(im_factor=staticcall engine_.im_factor())


@external
def authorise_venue(venue: address, allowed: bool):
    """
    @notice Allow (or stop) `venue` to book trades for the caller.
    @param venue A venue address (must also hold the venue role to trade); not a system
           contract or token ("engine: system address").
    @param allowed True to authorise.
    """
    assert not (allowed and self._is_system(venue)), "engine: system address"
    self.authorised[msg.sender][venue] = allowed
    log IMarginEngine.VenueAuthorised(account=msg.sender, venue=venue, allowed=allowed)


@view
@external
def check_trade(
    venue: address, buyer: address, seller: address, instrument: uint256, size: uint256, price: uint256
) -> bool:
    """
    @notice Reverts unless `venue` holds the venue role, both accounts authorised it, the oracle
            is not wound down (no new risk once wound down), the sides differ, the size is in
            (0, MAX_SIZE], the price below 2**96 and the instrument unexpired: the engine's
            first check of a trade (the checks that need no engine state); returns True
            otherwise.
    @param venue The caller of `MarginEngine.trade`.
    @param buyer The long side.
    @param seller The short side.
    @param instrument The instrument traded.
    @param size WAD contracts.
    @param price WAD per contract.
    """
    assert roles.role_bits[venue] & roles.ROLE_VENUE != 0, "roles: not venue"
    assert self.authorised[buyer][venue] and self.authorised[seller][venue], "engine: venue not authorised"
    assert not staticcall self.oracle.wound_down(), "engine: wound down"
    assert buyer != seller, "engine: self trade"
    assert size != 0 and size <= convert(fp.MAX_SIZE, uint256), "engine: bad size"
    assert price <= fp.MAX_PRICE, "engine: bad price"
    assert block.timestamp < fp.id_expiry(instrument), "engine: instrument expired"
    return True


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
    self._bound()
    assert not self._is_system_contract(asset), "engine: system address"
    is_cash: bool = asset == staticcall self.engine.cash_token()
    if not is_cash:
        assert staticcall self.oracle.asset_max_deviation(asset) != 0, "engine: asset not priced"
    assert asset != empty(address), "vault: zero token"
    # the settlement stablecoin carries no haircut
    assert haircut <= vault.MAX_HAIRCUT and not (is_cash and haircut != 0), "vault: haircut out of bounds"
    assert deposit_cap <= vault.MAX_DEPOSIT_CAP_WAD, "vault: cap out of bounds"
    scale: uint256 = 0
    if is_cash:
        scale = staticcall self.engine.cash_scale()
    elif staticcall self.engine.asset_index(asset) != 0:
        scale = staticcall self.engine.asset_scale(asset)
    else:
        d: uint256 = convert(staticcall IERC20Detailed(asset).decimals(), uint256)
        assert d <= 18, "vault: decimals above 18"
        scale = 10 ** (18 - d)
    assert deposit_cap * scale <= vault.MAX_DEPOSIT_CAP_WAD, "vault: cap out of bounds"
    extcall self.engine.apply_collateral(asset, haircut, deposit_cap, scale)
    log IMarginEngine.CollateralListed(
        asset=asset, haircut=haircut, deposit_cap=deposit_cap, decimals=18 - self._log10(scale)
    )


@external
def link_collateral(asset: address, underlying: uint256):
    """
    @notice Link a listed collateral asset to an underlying, for good: it then moves with that
            underlying's scenario price in the scan while an account holds a position on it
            (docs/fixed-point.md §5.1). For 1:1 wrappers (WETH to ETH): a depeg is the
            haircut's job.
    @param asset A listed non-cash collateral asset.
    @param underlying A listed underlying.
    """
    roles._only_admin()
    self._bound()
    e: IMarginEngine = self.engine
    assert not self._is_system_contract(asset), "engine: system address"
    assert staticcall e.asset_index(asset) != 0, "engine: asset not listed"
    assert self.asset_underlying[asset] == 0, "engine: asset already linked"
    assert self.linked_assets < fp.MAX_LINKED, "engine: too many linked assets"
    iw: DynArray[uint256[3], 32] = []
    uw: DynArray[uint256[3], 32] = []
    aw: DynArray[uint256, 8] = []
    age: uint256 = 0
    # an unlisted id (0 and above 65535 included) has no scenario count
    iw, uw, aw, age = staticcall self.oracle.snapshot([], [underlying], [])
    assert uw[0][1] != 0, "engine: unknown underlying"
    self.linked_assets += 1
    self.asset_underlying[asset] = underlying
    extcall e.apply_link(asset, underlying)
    log IMarginEngine.CollateralLinked(asset=asset, underlying=underlying)


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
    self._bound()
    assert staticcall self.oracle.instrument_word(instrument, 0) != 0, "engine: unknown instrument"
    assert open_interest_cap_ <= MAX_OPEN_INTEREST_CAP, "engine: limit out of bounds"
    assert position_limit_ <= convert(fp.MAX_SIZE, uint256) and position_limit_ <= open_interest_cap_, "engine: limit out of bounds"
    extcall self.engine.apply_instrument_limits(instrument, open_interest_cap_, position_limit_)
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
    self._bound()
    assert im_factor_ >= MIN_IM_FACTOR and im_factor_ <= MAX_IM_FACTOR, "engine: im_factor out of bounds"
    extcall self.engine.apply_risk_switches(im_factor_, staticcall self.engine.paused())
    log IMarginEngine.ImFactorSet(im_factor=im_factor_)


@external
def pause():
    """
    @notice Guardian (or admin): stop new risk. Risk-reducing trades, deposits, settlement and
            withdrawals of accounts without positions and debt stay open.
    """
    roles._only_guardian()
    self._set_paused(True)


@external
def unpause():
    """
    @notice Admin only: resume new risk.
    """
    roles._only_admin()
    self._set_paused(False)


@external
def set_liquidator(liquidator_: ILiquidator):
    """
    @notice Wire the Liquidator contract, once (a later admin cannot swap in another one).
    @param liquidator_ The Liquidator; its engine cash is the insurance fund. Probed: a
           contract that does not name this engine as its `engine` and itself a system
           account (any other system contract, a token, an account) is refused, as a wrong
           Liquidator could never be replaced.
    """
    roles._only_admin()
    self._bound()
    assert staticcall self.engine.liquidator() == empty(address), "engine: liquidator already set"
    a: address = liquidator_.address
    assert (
        self._answer(a, method_id("engine()")) == convert(self.engine.address, uint256)
        and self._answer(a, abi_encode(a, method_id=method_id("is_system_account(address)"))) == 1
    ), "engine: wrong liquidator"
    extcall self.engine.apply_liquidator(liquidator_.address)
    log IMarginEngine.LiquidatorSet(liquidator=liquidator_.address)


@external
def grant_role(account: address, role: uint256):
    """
    @notice Grant one role (2 venue, 4 guardian; 1 keeper has no use here) to `account`, never
            to a system contract or token, which could not use it ("engine: system address").
    @param account The account receiving the role.
    @param role The role bit.
    """
    roles._only_admin()
    roles._check_role(role)
    assert account != empty(address), "roles: zero account"
    assert not self._is_system(account), "engine: system address"
    roles.role_bits[account] |= role
    log IRoles.RoleGranted(role=role, account=account, sender=msg.sender)


@view
@internal
def _is_system(a: address) -> bool:
    """
    @dev A system contract (`_is_system_contract`), the cash token or a listed collateral
         token: never an account, venue or role holder.
    """
    if self._is_system_contract(a):
        return True
    e: IMarginEngine = self.engine
    return e.address != empty(address) and (a == staticcall e.cash_token() or staticcall e.asset_index(a) != 0)


@view
@internal
def _is_system_contract(a: address) -> bool:
    """
    @dev This contract, the engine, its oracle, and any contract that names the engine as its
         `engine` (the Liquidator, MarginViews, LiquidationViews): never collateral either.
    """
    e: address = self.engine.address
    if e == empty(address):
        return a == self
    return a == self or a == e or a == self.oracle.address or self._answer(a, method_id("engine()")) == convert(e, uint256)


@view
@internal
def _answer(target: address, data: Bytes[36]) -> uint256:
    """
    @dev The one-word answer of a static call, or 0 when `target` has no code, reverts or
         answers anything else than one word: an arbitrary address is probed without
         reverting.
    """
    ok: bool = False
    out: Bytes[32] = b""
    ok, out = raw_call(target, data, max_outsize=32, is_static_call=True, revert_on_failure=False)
    if not ok or len(out) != 32:
        return 0
    return convert(out, uint256)


@view
@internal
def _bound():
    assert self.engine.address != empty(address), "engine: admin not bound"


@internal
def _set_paused(paused_: bool):
    self._bound()
    extcall self.engine.apply_risk_switches(staticcall self.engine.im_factor(), paused_)
    log IMarginEngine.PauseSet(sender=msg.sender, paused=paused_)


@pure
@internal
def _log10(scale: uint256) -> uint256:
    n: uint256 = 0
    x: uint256 = scale
    for i: uint256 in range(18):
        if x < 10:
            break
        x //= 10
        n += 1
    return n
