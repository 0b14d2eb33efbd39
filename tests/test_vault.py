"""Vault accounting through deposit / withdraw with well-behaved and misbehaving tokens:
6/8/18 decimals, false-returning, USDT-style no return value, fee-on-transfer, a lying token,
a negative rebase, and a token that re-enters the engine during transfers."""

import ape
import pytest
from contract_support import MAX_DEV, USD

from offchain.fixed_point import WAD

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture(scope="module")
def kit(project, system, admin, trader):
    s = system
    toks = {
        "false": admin.deploy(project.MockFalseToken, 18),
        "noret": admin.deploy(project.MockNoReturnToken, 6),
        "fee": admin.deploy(project.MockFeeToken, 18, 100),
        "reent": admin.deploy(project.MockReentrantToken, 18),
    }
    for t in toks.values():
        s.oracle.list_asset(t, MAX_DEV, sender=admin)
        s.engine_admin.list_collateral(t, WAD // 2, 10**24, sender=admin)
        t.mint(trader, 10**24, sender=admin)
        t.approve(s.engine, 2**256 - 1, sender=trader)
    return toks


def _check_books(s, token, accounts):
    total = s.engine.total(token)
    assert sum(s.engine.collateral(token, a) for a in accounts) == total
    assert total <= token.balanceOf(s.engine)


def test_deposit_decimals_and_events(system, trader, maker):
    s = system
    tx = s.engine.deposit(s.usdc, 1_234_567, sender=trader)
    ev = tx.events.filter(s.engine.Deposit)[0]
    assert (ev.account, ev.asset, ev.sender, ev.amount) == (
        trader.address,
        s.usdc.address,
        trader.address,
        1_234_567,
    )
    assert s.engine.cash(trader) == 1_234_567 * 10**12
    s.engine.deposit(s.wbtc, 3 * 10**8 + 1, maker, sender=trader)  # on behalf of maker
    assert s.engine.collateral(s.wbtc, maker) == 3 * 10**8 + 1
    assert s.engine.asset_scale(s.wbtc) == 10**10
    s.engine.deposit(s.weth, WAD, sender=trader)
    assert s.engine.asset_mask(trader) == 1 and s.engine.asset_mask(maker) == 2
    assert s.engine.total(s.usdc) == 1_234_567


def test_deposit_guards(system, trader, outsider, admin):
    s = system
    with ape.reverts("vault: unknown asset"):
        s.engine.deposit(outsider, 1, sender=trader)
    with ape.reverts("vault: zero amount"):
        s.engine.deposit(s.usdc, 0, sender=trader)
    with ape.reverts("vault: bad account"):
        s.engine.deposit(s.usdc, 1, ZERO, sender=trader)
    s.engine_admin.list_collateral(s.wbtc, WAD // 4, 10**8, sender=admin)
    with ape.reverts("vault: deposit cap"):
        s.engine.deposit(s.wbtc, 10**8 + 1, sender=trader)


def test_withdraw_guards_and_full_exit(system, trader, outsider):
    s = system
    s.engine.deposit(s.usdc, 10 * USD, sender=trader)
    s.engine.deposit(s.weth, 2 * WAD, sender=trader)
    with ape.reverts("vault: zero amount"):
        s.engine.withdraw(s.usdc, 0, sender=trader)
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(s.usdc, 10 * USD + 1, sender=trader)
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(s.weth, 2 * WAD + 1, sender=trader)
    with ape.reverts("vault: unknown asset"):
        s.engine.withdraw(outsider, 1, sender=trader)
    with ape.reverts("vault: bad account"):
        s.engine.withdraw(s.usdc, 1, ZERO, sender=trader)
    # no positions: everything comes out, no oracle data needed
    bal = s.usdc.balanceOf(outsider)
    tx = s.engine.withdraw(s.usdc, 10 * USD, outsider, sender=trader)
    ev = tx.events.filter(s.engine.Withdraw)[0]
    assert (ev.account, ev.receiver, ev.amount) == (trader.address, outsider.address, 10 * USD)
    assert s.usdc.balanceOf(outsider) == bal + 10 * USD
    s.engine.withdraw(s.weth, 2 * WAD, sender=trader)
    assert s.engine.cash(trader) == 0 and s.engine.asset_mask(trader) == 0
    assert s.engine.total(s.weth) == 0


def test_withdraw_of_an_overflowing_amount_reverts_with_the_balance_reason(system, trader):
    """Amounts whose WAD value overflows uint256 or int256 are refused as any amount above the
    balance is, before the arithmetic, so the caller reads why (no reasonless revert)."""
    s = system
    s.engine.deposit(s.usdc, 10 * USD, sender=trader)
    s.engine.deposit(s.weth, 2 * WAD, sender=trader)
    scale = s.engine.cash_scale()
    assert scale == 10**12
    for amount in (2**256 - 1, 2**256 // scale, 2**255 // scale + 1):
        with ape.reverts("vault: insufficient balance"):
            s.engine.withdraw(s.usdc, amount, sender=trader)
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(s.weth, 2**256 - 1, sender=trader)
    # nothing moved: the whole balance still comes out
    s.engine.withdraw(s.usdc, 10 * USD, sender=trader)
    assert s.engine.cash(trader) == 0


def test_false_returning_token(system, kit, trader):
    s, t = system, kit["false"]
    s.engine.deposit(t, 5 * WAD, sender=trader)
    assert s.engine.collateral(t, trader) == 5 * WAD
    t.set_fail_all(True, sender=trader)
    with ape.reverts("vault: transfer failed"):
        s.engine.deposit(t, WAD, sender=trader)
    with ape.reverts("vault: transfer failed"):
        s.engine.withdraw(t, WAD, sender=trader)
    t.set_fail_all(False, sender=trader)
    t.set_noop_all(True, sender=trader)  # returns true, moves nothing
    with ape.reverts("vault: nothing received"):
        s.engine.deposit(t, WAD, sender=trader)
    with ape.reverts("vault: transfer mismatch"):
        s.engine.withdraw(t, WAD, sender=trader)
    t.set_noop_all(False, sender=trader)
    s.engine.withdraw(t, 5 * WAD, sender=trader)
    assert t.balanceOf(s.engine) == 0 and s.engine.total(t) == 0


def test_usdt_style_token_without_return_value(system, kit, trader):
    s, t = system, kit["noret"]
    s.engine.deposit(t, 7 * USD, sender=trader)
    assert s.engine.collateral(t, trader) == 7 * USD
    assert s.engine.asset_scale(t) == 10**12
    s.engine.withdraw(t, 7 * USD, sender=trader)
    assert t.balanceOf(trader) == 10**24
    _check_books(s, t, [trader])


def test_fee_on_transfer_credits_what_arrived(system, kit, trader, maker):
    s, t = system, kit["fee"]
    tx = s.engine.deposit(t, 100 * WAD, sender=trader)
    assert tx.return_value == 99 * WAD
    assert s.engine.collateral(t, trader) == 99 * WAD
    _check_books(s, t, [trader])
    s.engine.withdraw(t, 99 * WAD, maker, sender=trader)
    assert t.balanceOf(maker) == 99 * WAD * 99 // 100  # the receiver bears the fee
    assert s.engine.total(t) == 0 and t.balanceOf(s.engine) == 0


def test_negative_rebase_never_credits_more_than_held(system, trader, maker, admin):
    s = system
    s.engine.deposit(s.weth, 10 * WAD, sender=trader)
    s.weth.burn(s.engine, 5 * WAD, sender=admin)  # the vault now holds less than it owes
    with ape.reverts("vault: credit exceeds holdings"):
        s.engine.deposit(s.weth, 2 * WAD, sender=maker)


def test_reentrant_withdraw_cannot_withdraw_twice(project, system, kit, trader, admin):
    s, t = system, kit["reent"]
    # a contract account (a second, unlisted MockReentrantToken, for its `execute`) deposits 10
    # of the re-entrant token, which makes it withdraw 10 again during the withdrawal's transfer
    acct = admin.deploy(project.MockReentrantToken, 18)
    t.mint(acct, 10 * WAD, sender=trader)
    acct.execute(t, t.approve.encode_input(s.engine, 2**256 - 1), sender=trader)
    acct.execute(s.engine, s.engine.deposit.encode_input(t, 10 * WAD, acct), sender=trader)
    assert s.engine.collateral(t, acct) == 10 * WAD
    again = s.engine.withdraw.encode_input(t, 10 * WAD, acct)
    t.arm(acct, acct.execute.encode_input(s.engine, again), sender=trader)
    acct.execute(s.engine, again, sender=trader)
    assert t.reentry_attempts() == 1 and not t.reentry_succeeded()
    assert s.engine.collateral(t, acct) == 0 and s.engine.total(t) == 0
    assert t.balanceOf(acct) == 10 * WAD
    assert t.balanceOf(s.engine) == 0


def test_reentrant_deposit_and_read_only_reentrancy_blocked(system, kit, trader):
    s, t = system, kit["reent"]
    s.engine.deposit(t, 4 * WAD, sender=trader)
    t.arm(s.engine, s.engine.withdraw.encode_input(t, 4 * WAD, t), sender=trader)
    s.engine.deposit(t, WAD, sender=trader)  # transferFrom re-enters withdraw: blocked
    assert t.reentry_attempts() == 1 and not t.reentry_succeeded()
    # a view read from inside a transfer is blocked too (no read-only re-entrancy)
    t.arm(s.engine, s.engine.account_state.encode_input(trader), sender=trader)
    s.engine.withdraw(t, WAD, sender=trader)
    assert t.reentry_attempts() == 2 and not t.reentry_succeeded()
    assert s.engine.collateral(t, trader) == 4 * WAD
    _check_books(s, t, [trader])


def test_listing_guards(project, system, admin, outsider):
    s = system
    with ape.reverts("roles: not admin"):
        s.engine_admin.list_collateral(s.weth, 0, 1, sender=outsider)
    with ape.reverts("engine: asset not priced"):
        s.engine_admin.list_collateral(outsider, 0, 1, sender=admin)
    with ape.reverts("vault: haircut out of bounds"):
        s.engine_admin.list_collateral(s.weth, 9 * WAD // 10 + 1, 1, sender=admin)
    with ape.reverts("vault: haircut out of bounds"):
        s.engine_admin.list_collateral(s.usdc, 1, 1, sender=admin)
    with ape.reverts("vault: cap out of bounds"):
        s.engine_admin.list_collateral(s.usdc, 0, 2**128 // 10**12 + 1, sender=admin)
    with ape.reverts("vault: cap out of bounds"):
        s.engine_admin.list_collateral(s.wbtc, 0, 2**128 // 10**10 + 1, sender=admin)
    tx = s.engine_admin.list_collateral(s.usdc, 0, 10**20, sender=admin)
    ev = tx.events.filter(s.engine_admin.CollateralListed)[0]
    assert (ev.asset, ev.haircut, ev.deposit_cap, ev.decimals) == (s.usdc.address, 0, 10**20, 6)
    assert s.engine.cash_deposit_cap() == 10**20
    odd = admin.deploy(project.MockERC20, "Odd", "ODD", 19)
    s.oracle.list_asset(odd, MAX_DEV, sender=admin)
    with ape.reverts("vault: decimals above 18"):
        s.engine_admin.list_collateral(odd, 0, 1, sender=admin)
    listed = 0
    while listed < 8:
        try:
            s.engine.assets(listed)
        except Exception:
            break
        listed += 1
    for _ in range(8 - listed):  # fill up to the 8-asset bound
        tok = admin.deploy(project.MockERC20, "T", "T", 18)
        s.oracle.list_asset(tok, MAX_DEV, sender=admin)
        s.engine_admin.list_collateral(tok, 0, 1, sender=admin)
    tok = admin.deploy(project.MockERC20, "T", "T", 18)
    s.oracle.list_asset(tok, MAX_DEV, sender=admin)
    with ape.reverts("vault: too many assets"):
        s.engine_admin.list_collateral(tok, 0, 1, sender=admin)
