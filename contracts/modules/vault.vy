# pragma version 0.4.3
"""
@title Vault accounting: settlement-stablecoin cash and haircut collateral balances
@custom:contract-name vault
@notice Lives inside the MarginEngine (no cross-contract call on a margin check). Cash is an
        int256 WAD per account; every other listed asset is a token-unit balance per account,
        valued at the oracle price less a haircut. `total[asset]` counts the token units the
        vault owes its accounts; it never exceeds the vault's token balance. EngineAdmin
        validates each listing (haircut, cap, decimals); `_list` records it.
@custom:security Deposits credit the measured balance change (fee-on-transfer safe) and check
                 that the vault holds what it owes; withdrawals check the vault's balance fell by
                 exactly the amount sent. Calls use `default_return_value=True` (USDT-style
                 tokens) and assert the result (false-returning tokens). The including contract
                 must be `# pragma nonreentrancy on`.
"""


from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from ..interfaces import IMarginEngine
from . import fixed_point as fp


MAX_HAIRCUT: constant(uint256) = 9 * 10**17
# Deposit caps are bounded in WAD (cap * 10**(18 - decimals)), so amount_wad * price < 2**224.
MAX_DEPOSIT_CAP_WAD: constant(uint256) = 2**128


cash_token: public(address)
cash_scale: public(uint256)
cash_deposit_cap: public(uint256)
cash: public(HashMap[address, int256])
# Non-cash collateral, token units.
collateral: public(HashMap[address, HashMap[address, uint256]])
# Token units owed to accounts, per asset (the cash token included).
total: public(HashMap[address, uint256])
# Listed non-cash assets; `asset_index[a]` is the position in `assets` plus one.
assets: public(DynArray[address, fp.MAX_ASSETS])
asset_index: public(HashMap[address, uint256])
asset_haircut: public(HashMap[address, uint256])
asset_deposit_cap: public(HashMap[address, uint256])
# 10**(18 - decimals)
asset_scale: public(HashMap[address, uint256])
# Bit i set when an account holds a non-zero balance of assets[i].
asset_mask: public(HashMap[address, uint256])
# The underlying a listed asset moves with in the scan (docs/fixed-point.md §5.1); 0: none.
asset_underlying: HashMap[address, uint256]


@deploy
def __init__(cash_token_: address, cash_deposit_cap_: uint256):
    assert cash_token_ != empty(address), "vault: zero token"
    decimals: uint256 = convert(staticcall IERC20Detailed(cash_token_).decimals(), uint256)
    assert decimals <= 18, "vault: decimals above 18"
    self.cash_token = cash_token_
    self.cash_scale = 10 ** (18 - decimals)
    assert cash_deposit_cap_ * self.cash_scale <= MAX_DEPOSIT_CAP_WAD, "vault: cap out of bounds"
    self.cash_deposit_cap = cash_deposit_cap_
    log IMarginEngine.CollateralListed(
        asset=cash_token_, haircut=0, deposit_cap=cash_deposit_cap_, decimals=decimals
    )


@internal
def _list(asset: address, haircut: uint256, deposit_cap: uint256, scale: uint256):
    """
    @dev Record a listing EngineAdmin validated: the stablecoin takes only its cap; another
         asset is appended on first listing (its scale kept from then on).
    """
    if asset == self.cash_token:
        self.cash_deposit_cap = deposit_cap
        return
    if self.asset_index[asset] == 0:
        assert len(self.assets) < fp.MAX_ASSETS, "vault: too many assets"
        self.assets.append(asset)
        self.asset_index[asset] = len(self.assets)
        self.asset_scale[asset] = scale
    self.asset_haircut[asset] = haircut
    self.asset_deposit_cap[asset] = deposit_cap


@internal
def _pull(asset: address, amount: uint256, account: address) -> uint256:
    """
    @dev Pulls `amount` from msg.sender, credits `account` with what arrived.
    """
    is_cash: bool = asset == self.cash_token
    cap: uint256 = self.cash_deposit_cap
    if not is_cash:
        assert self.asset_index[asset] != 0, "vault: unknown asset"
        cap = self.asset_deposit_cap[asset]
    assert amount != 0, "vault: zero amount"
    before: uint256 = staticcall IERC20(asset).balanceOf(self)
    assert extcall IERC20(asset).transferFrom(msg.sender, self, amount, default_return_value=True), "vault: transfer failed"
    after: uint256 = staticcall IERC20(asset).balanceOf(self)
    assert after > before, "vault: nothing received"
    credited: uint256 = after - before
    new_total: uint256 = self.total[asset] + credited
    assert new_total <= cap, "vault: deposit cap"
    assert new_total <= after, "vault: credit exceeds holdings"
    self.total[asset] = new_total
    if is_cash:
        self.cash[account] += convert(credited * self.cash_scale, int256)
    else:
        self.collateral[asset][account] += credited
        self.asset_mask[account] |= 1 << (self.asset_index[asset] - 1)
    log IMarginEngine.Deposit(account=account, asset=asset, sender=msg.sender, amount=credited)
    return credited


@internal
def _debit(asset: address, amount: uint256, account: address):
    """
    @dev Debits `account` (cash must stay >= 0 when withdrawing cash) and the vault total.
         Any amount above the balance, up to 2**256 - 1, reverts with the balance reason.
    """
    assert amount != 0, "vault: zero amount"
    if asset == self.cash_token:
        # compared in token units before any arithmetic: amount * scale could overflow
        bal_wad: int256 = self.cash[account]
        assert amount <= convert(max(bal_wad, 0), uint256) // self.cash_scale, "vault: insufficient balance"
        self.cash[account] = bal_wad - convert(amount * self.cash_scale, int256)
    else:
        index: uint256 = self.asset_index[asset]
        assert index != 0, "vault: unknown asset"
        bal: uint256 = self.collateral[asset][account]
        assert bal >= amount, "vault: insufficient balance"
        # unsafe_sub: bal >= amount checked above.
        self.collateral[asset][account] = unsafe_sub(bal, amount)
        if bal == amount:
            self.asset_mask[account] &= ~(1 << (index - 1))
    assert self.total[asset] >= amount, "vault: insufficient holdings"
    self.total[asset] -= amount


@internal
def _push(asset: address, amount: uint256, receiver: address):
    """
    @dev Sends `amount` and checks the vault's balance fell by exactly that much.
    """
    before: uint256 = staticcall IERC20(asset).balanceOf(self)
    assert extcall IERC20(asset).transfer(receiver, amount, default_return_value=True), "vault: transfer failed"
    after: uint256 = staticcall IERC20(asset).balanceOf(self)
    assert before >= amount and after == before - amount, "vault: transfer mismatch"


@internal
def _move_cash(sender: address, receiver: address, amount: int256):
    """
    @dev Liquidation hook: moves WAD cash between accounts (conserved exactly).
    """
    self.cash[sender] -= amount
    self.cash[receiver] += amount


@view
@internal
def _held_assets(account: address) -> DynArray[address, fp.MAX_ASSETS]:
    out: DynArray[address, fp.MAX_ASSETS] = []
    mask: uint256 = self.asset_mask[account]
    if mask == 0:
        return out
    for i: uint256 in range(len(self.assets), bound=fp.MAX_ASSETS):
        if mask & (1 << i) != 0:
            out.append(self.assets[i])
    return out
