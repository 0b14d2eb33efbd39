# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""Every external entry point that takes an address, called with the system's own addresses:
the engine, the oracle, the Liquidator (the insurance fund's account), EngineAdmin, the two
lenses and the tokens. Each call either reverts with its reason or succeeds without moving
anything: no deposit is credited, no withdrawal is paid and no role, venue, listing or wiring
is given where it could never be used (docs/security.md, "System addresses")."""

from __future__ import annotations

import ape
import pytest
from contract_support import CASH_CAP, MAX_DEV, USD
from liquidation_support import (  # noqa: F401 (fixtures)
    ZERO,
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
)

from offchain.fixed_point import WAD
from offchain.sdk import deploy_core

ROLE_VENUE, ROLE_GUARDIAN = 2, 4
CONTRACTS = ("engine", "oracle", "liquidator", "engine_admin", "margin_views", "liquidation_views")
TOKENS = ("cash_token", "collateral_token")
EVERY = CONTRACTS + TOKENS
# The Liquidator refuses these as accounts (`is_system_account`); the lenses and the tokens
# hold nothing and can hold nothing, so they are healthy empty accounts to it.
NOT_ACCOUNTS = ("engine", "oracle", "liquidator", "engine_admin")
# The engine knows every system address but the lenses, which are deployed after it.
ENGINE_KNOWS = ("engine", "oracle", "liquidator", "engine_admin") + TOKENS


def system_address(liq, name: str) -> str:
    s = liq.s
    return {
        "engine": s.engine,
        "oracle": s.oracle,
        "liquidator": liq.liquidator,
        "engine_admin": s.engine_admin,
        "margin_views": s.views,
        "liquidation_views": liq.views,
        "cash_token": s.usdc,
        "collateral_token": s.weth,
    }[name].address


def vault_books(liq, *holders) -> tuple:
    """What the vault owes and holds, and the tokens each holder has, per token."""
    s = liq.s
    out = []
    for token in (s.usdc, s.weth):
        out += [s.engine.total(token), token.balanceOf(s.engine)]
        out += [token.balanceOf(h) for h in holders]
    return tuple(out)


@pytest.mark.parametrize("name", ENGINE_KNOWS)
def test_a_deposit_is_never_credited_where_it_could_never_be_withdrawn(liq, trader, name):
    """Cash or collateral credited to a contract that never calls `withdraw` is lost to the
    depositor. The one exception is the insurance fund, topped up in cash by design; it never
    withdraws collateral, so it takes none."""
    s, e, x = liq.s, liq.s.engine, system_address(liq, name)
    books = vault_books(liq, trader)
    if name == "liquidator":
        fund = liq.liquidator.insurance_fund()
        e.deposit(s.usdc, 7 * USD, x, sender=trader)
        assert liq.liquidator.insurance_fund() == fund + 7 * WAD
    else:
        with ape.reverts("vault: bad account"):
            e.deposit(s.usdc, 7 * USD, x, sender=trader)
        assert e.cash(x) == 0 and vault_books(liq, trader) == books
    with ape.reverts("vault: bad account"):
        e.deposit(s.weth, WAD, x, sender=trader)
    assert e.collateral(s.weth, x) == 0 and e.asset_mask(x) == 0


@pytest.mark.parametrize("name", ENGINE_KNOWS)
def test_a_withdrawal_never_sends_tokens_where_they_are_lost(liq, trader, name):
    """Tokens sent to the engine (unowed surplus), the Liquidator, EngineAdmin, the oracle or a
    token contract can never be moved again."""
    s, e, x = liq.s, liq.s.engine, system_address(liq, name)
    e.deposit(s.usdc, 10 * USD, sender=trader)
    e.deposit(s.weth, 2 * WAD, sender=trader)
    books = vault_books(liq, trader, x)
    owed = (e.cash(trader), e.collateral(s.weth, trader))
    for token, amount in ((s.usdc, 10 * USD), (s.weth, 2 * WAD)):
        with ape.reverts("vault: bad account"):
            e.withdraw(token, amount, x, sender=trader)
    assert vault_books(liq, trader, x) == books
    assert (e.cash(trader), e.collateral(s.weth, trader)) == owed


@pytest.mark.parametrize("name", CONTRACTS)
def test_a_system_contract_is_never_moved_or_priced_as_an_asset(liq, trader, name):
    """Unlisted, a system contract is no asset: the vault and the keeper name it."""
    s, x = liq.s, system_address(liq, name)
    books = vault_books(liq, trader)
    with ape.reverts("vault: unknown asset"):
        s.engine.deposit(x, 1, sender=trader)
    with ape.reverts("vault: unknown asset"):
        s.engine.withdraw(x, 1, sender=trader)
    with ape.reverts("oracle: unknown asset"):
        s.post(assets=[(x, WAD)])
    assert vault_books(liq, trader) == books and s.oracle_views.asset_price(x) == (0, 0)


@pytest.mark.parametrize("name", EVERY)
def test_a_system_contract_is_never_listed_as_collateral(liq, admin, name):
    """A system contract listed as collateral would be a token without `transferFrom`
    (deposits revert without a reason) or worse; even when the oracle prices it, EngineAdmin
    refuses it. The tokens themselves are re-listed as before (the stablecoin takes its cap
    only), nothing else changed."""
    s, x = liq.s, system_address(liq, name)
    if name in TOKENS:
        cap = s.engine.cash_deposit_cap() if name == "cash_token" else s.engine.asset_deposit_cap(x)
        haircut = s.engine.asset_haircut(x)
        before = (s.engine.asset_index(x), s.engine.asset_scale(x), haircut)
        s.engine_admin.list_collateral(x, haircut, cap, sender=admin)
        after = (s.engine.asset_index(x), s.engine.asset_scale(x), s.engine.asset_haircut(x))
        assert after == before
        return
    s.oracle.list_asset(x, MAX_DEV, sender=admin)
    with ape.reverts("engine: system address"):
        s.engine_admin.list_collateral(x, WAD // 2, 10**18, sender=admin)
    assert s.engine.asset_index(x) == 0


@pytest.mark.parametrize("name", EVERY)
def test_no_role_is_ever_granted_to_a_system_address(liq, admin, name):
    """A venue or guardian role held by a contract that never trades or pauses is a mistake
    (the address pasted instead of the venue's), so it is refused; revoking stays open, and
    an admin transfer to it only becomes pending (it can never be accepted) and is cancelled."""
    ea, x = liq.s.engine_admin, system_address(liq, name)
    for role in (ROLE_VENUE, ROLE_GUARDIAN):
        with ape.reverts("engine: system address"):
            ea.grant_role(x, role, sender=admin)
        ea.revoke_role(x, role, sender=admin)
        assert not ea.has_role(x, role)
    ea.transfer_admin(x, sender=admin)
    assert ea.admin() == admin.address and ea.pending_admin() == x
    ea.transfer_admin(ZERO, sender=admin)
    assert ea.admin() == admin.address and ea.pending_admin() == ZERO


@pytest.mark.parametrize("name", EVERY)
def test_no_account_authorises_a_system_address_as_its_venue(liq, trader, name):
    ea, x = liq.s.engine_admin, system_address(liq, name)
    with ape.reverts("engine: system address"):
        ea.authorise_venue(x, True, sender=trader)
    ea.authorise_venue(x, False, sender=trader)
    assert not ea.authorised(trader, x)


@pytest.mark.parametrize("name", EVERY)
def test_no_trade_books_a_position_to_a_system_address(liq, trader, maker, name):
    """A system address never authorised a venue (it cannot call `authorise_venue`)."""
    s, x = liq.s, system_address(liq, name)
    iid = s.instruments["btc-fut"]
    liq.deposit(trader, 100_000)
    liq.deposit(maker, 100_000)
    for buyer, seller in ((x, maker), (trader, x)):
        with ape.reverts("engine: venue not authorised"):
            s.engine.trade(buyer, seller, iid, WAD, 60_000 * WAD, sender=s.venue)
    assert list(s.engine.positions_of(x)[0]) == [] and s.engine.open_interest(iid) == 0


@pytest.mark.parametrize("name", EVERY)
def test_settling_a_system_address_moves_nothing(liq, outsider, name):
    s, x = liq.s, system_address(liq, name)
    cash, books = s.engine.cash(x), vault_books(liq, x)
    tx = s.engine.settle(x, sender=outsider)
    assert list(tx.events.filter(s.engine.Settled)) == []
    assert s.engine.cash(x) == cash and vault_books(liq, x) == books


@pytest.mark.parametrize("name", EVERY)
def test_liquidating_a_system_address_takes_nothing(liq, liquidator_account, outsider, name):
    """The four system contracts are not accounts; a lens or a token holds nothing, so it is
    a healthy empty account. Either way no book moves."""
    lq, x = liq.liquidator, system_address(liq, name)
    liq.deposit(liquidator_account, 1_000_000)
    books = (lq.bad_debt(), lq.fund_payouts(), lq.insurance_fund(), vault_books(liq, x))
    reason, status = (
        ("liquidation: not an account", 6)
        if name in NOT_ACCOUNTS
        else (
            "liquidation: healthy",
            1,
        )
    )
    assert lq.is_system_account(x) == (name in NOT_ACCOUNTS)
    assert liq.views.liquidation_preview(x).status == status
    with ape.reverts(reason):
        lq.liquidate(x, sender=liquidator_account)
    lq.register(x, sender=outsider)
    assert lq.registered(x) == (name not in NOT_ACCOUNTS)
    assert x not in list(liq.views.accounts_below_mm(0, 50))
    assert (lq.bad_debt(), lq.fund_payouts(), lq.insurance_fund(), vault_books(liq, x)) == books


@pytest.mark.parametrize("name", EVERY)
def test_every_view_answers_a_system_address_without_an_unnamed_revert(liq, trader, maker, name):
    s, x = liq.s, system_address(liq, name)
    e = s.engine
    st = e.account_state(x)
    assert (st.maintenance_margin, st.pending_charge, st.fresh) == (0, 0, True)
    assert st.equity == e.cash(x)
    assert s.views.health(x) == st.equity
    assert list(s.views.worst_scenarios(x)) == []
    assert len(s.views.trade_preview(x, s.instruments["btc-fut"], WAD, 60_000 * WAD)) == 5
    assert liq.liquidator.pending_charge(x) == 0
    assert not s.engine_admin.has_role(x, ROLE_VENUE) and not s.oracle.has_role(x, 1)
    with ape.reverts("roles: not venue"):
        s.engine_admin.check_trade(x, trader, maker, 0, 0, 0)
    # as an asset: an unlisted one is named, never valued
    e.deposit(s.weth, WAD, sender=trader)
    plain = e.margin_inputs(trader, [], [], True, True)
    with_x = e.margin_inputs(trader, [], [x], True, True)
    assert with_x.book.collateral == plain.book.collateral
    if name in TOKENS:
        assert len(s.views.withdraw_preview(trader, x, 1)) == 5
        return
    assert s.oracle.asset_max_deviation(x) == 0 and s.oracle_views.asset_price(x) == (0, 0)
    assert s.oracle_views.asset_age(x)[1] is True
    with ape.reverts("vault: unknown asset"):
        s.views.withdraw_preview(trader, x, 1)


@pytest.fixture(scope="module")
def unwired(project, admin, usdc, liq):
    """A second deployment whose engine has no Liquidator yet, with an unwired Liquidator and
    the lenses of both, so `set_liquidator` can be tried with every system address."""
    core = deploy_core(project, admin, usdc, CASH_CAP)
    liquidator = admin.deploy(project.Liquidator, admin, core.engine)
    lens = admin.deploy(project.LiquidationViews, liquidator)
    addresses = {
        "engine": core.engine,
        "oracle": core.oracle,
        "engine_admin": core.engine_admin,
        "margin_views": core.views,
        "liquidation_views": lens,
        "cash_token": usdc,
        "collateral_token": liq.s.weth,
        "liquidator": liq.liquidator,  # wired to the session's engine, not this one
    }
    return core, liquidator, {k: v.address for k, v in addresses.items()}


@pytest.mark.parametrize("name", EVERY)
def test_only_this_engines_liquidator_is_ever_wired(unwired, admin, name):
    """The Liquidator is wired once and for good: any other system address there would leave
    liquidation and socialisation dead forever."""
    core, liquidator, addresses = unwired
    with ape.reverts("engine: wrong liquidator"):
        core.engine_admin.set_liquidator(addresses[name], sender=admin)
    assert core.engine.liquidator() == ZERO
    core.engine_admin.set_liquidator(liquidator, sender=admin)
    assert core.engine.liquidator() == liquidator.address


@pytest.mark.parametrize("name", EVERY)
def test_an_engine_admin_binds_only_the_engine_it_administers(project, liq, admin, name):
    """A fresh EngineAdmin refuses every system address of another deployment, its engine
    included, with the reason (contracts without `engine_admin()` and tokens are probed)."""
    fresh = admin.deploy(project.EngineAdmin, admin)
    with ape.reverts("engine: not administered here"):
        fresh.bind(system_address(liq, name), sender=admin)
    with ape.reverts("engine: not administered here"):
        fresh.bind(fresh, sender=admin)
    assert fresh.engine() == ZERO
