"""Stateful machine over the engine: deposits, withdrawals, trades and oracle moves, with the
vault and margin invariants checked after every step:
- per asset, credited balances sum to the vault total, which never exceeds the token balance
  (for the settlement stablecoin: sum of cash == total * 10**12, cash is conserved by trades);
- no user action at a fixed oracle turns a healthy account (equity >= MM) unhealthy;
- an account without positions and debt can withdraw everything (its preview allows it);
- every withdrawal preview agrees with what the engine then does."""

from ape.exceptions import ContractLogicError
from contract_support import BTC, ETH, PSR, USD, examples
from hypothesis import HealthCheck, event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from offchain.fixed_point import WAD, div_ceil

NAMES = ("btc-fut", "btc-call", "btc-put", "eth-fut")
SCALE = 10**12


def test_engine_state_machine(market, trader, maker, outsider, admin, chain, chain_snapshot):
    s = market
    people = [trader, maker, outsider]
    for p in people:
        s.usdc.mint(p, 10**7 * USD, sender=admin)
        s.usdc.approve(s.engine, 2**256 - 1, sender=p)
        s.weth.mint(p, 1_000 * WAD, sender=admin)
        s.weth.approve(s.engine, 2**256 - 1, sender=p)
        s.engine_admin.authorise_venue(s.venue, True, sender=p)
    ids = [s.instruments[n] for n in NAMES]

    class EngineMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snap = chain.snapshot()
            self.usdc_in = s.engine.total(s.usdc)
            self.moves = 0

        def teardown(self):
            chain.restore(self.snap)
            chain.provider.make_request("evm_setTime", [chain.blocks.head.timestamp + 1])

        def _healthy(self):
            out = {}
            for p in people:
                eq, _, mm = s.engine.account_state(p)[:3]
                out[p.address] = eq >= mm
            return out

        def _assert_still_healthy(self, before):
            after = self._healthy()
            for addr, ok in before.items():
                if ok:
                    assert after[addr], f"{addr} became unhealthy"

        @initialize()
        def fund_everyone(self):
            for p in people:
                s.engine.deposit(s.usdc, 50_000 * USD, sender=p)
                self.usdc_in += 50_000 * USD

        @rule(who=st.integers(0, 2), usd=st.integers(1, 200_000), weth=st.integers(0, 20 * WAD))
        def deposit(self, who, usd, weth):
            before = self._healthy()
            s.engine.deposit(s.usdc, usd * USD, sender=people[who])
            self.usdc_in += usd * USD
            if weth:
                s.engine.deposit(s.weth, weth, sender=people[who])
            self._assert_still_healthy(before)

        @rule(who=st.integers(0, 2), cash=st.booleans(), frac=st.integers(1, 100))
        def withdraw(self, who, cash, frac):
            p = people[who]
            if cash:
                bal = max(s.engine.cash(p), 0) // SCALE
                asset = s.usdc
            else:
                bal = s.engine.collateral(s.weth, p)
                asset = s.weth
            amount = bal * frac // 100
            if amount == 0:
                return
            before = self._healthy()
            allowed = s.views.withdraw_preview(p, asset, amount)[3]
            try:
                s.engine.withdraw(asset, amount, sender=p)
                done = True
            except ContractLogicError:
                done = False
            assert done == allowed
            event(f"withdraw {'done' if done else 'refused'}")
            if done and cash:
                self.usdc_in -= amount
            self._assert_still_healthy(before)

        @rule(
            buyer=st.integers(0, 2),
            seller=st.integers(0, 2),
            k=st.integers(0, len(NAMES) - 1),
            size=st.integers(1, 5 * WAD),
            skew=st.integers(-5, 5),
        )
        def trade(self, buyer, seller, k, size, skew):
            if buyer == seller:
                return
            iid = ids[k]
            mark = s.oracle_views.risk_array(iid)[0]
            price = max(mark + mark * skew // 100, 0)
            before = self._healthy()
            preview = s.views.trade_preview(people[buyer], iid, size, price)
            try:
                s.engine.trade(people[buyer], people[seller], iid, size, price, sender=s.venue)
                done = True
            except ContractLogicError:
                done = False
            event(f"trade {'booked' if done else 'rejected'}")
            if done:
                assert preview[3]  # the buyer's side was allowed by its preview
            self._assert_still_healthy(before)

        @rule(move=st.integers(-10, 10))
        def oracle_move(self, move):
            spot = s.oracle.underlying_state(BTC)[0]
            new = spot + spot * move // 100
            items = [s.future_item(s.instruments["btc-fut"], new)]
            for name, sign in (("btc-call", 1), ("btc-put", -1)):
                iid = s.instruments[name]
                old_mark = s.oracle_views.risk_array(iid)[0]
                mark = max(old_mark + sign * (new - spot) // 2, 0)
                items.append(s.option_item(iid, mark, s.flat_option_ra(BTC, sign * new // 2)))
            eth = s.oracle.underlying_state(ETH)[0]
            s.post(
                [(BTC, new, PSR), (ETH, eth, PSR)],
                items + [s.future_item(s.instruments["eth-fut"], eth)],
                [(s.weth.address, eth)],
            )
            self.moves += 1

        @invariant()
        def vault_books_balance(self):
            total_w = s.engine.total(s.weth)
            assert sum(s.engine.collateral(s.weth, p) for p in people) == total_w
            assert total_w <= s.weth.balanceOf(s.engine)
            total_u = s.engine.total(s.usdc)
            assert total_u == self.usdc_in
            # the clearing account (the engine's own cash) pays and collects variation margin
            cash = sum(s.engine.cash(p) for p in [*people, s.engine.address])
            assert cash == total_u * SCALE
            assert total_u <= s.usdc.balanceOf(s.engine)

        @invariant()
        def flat_accounts_can_leave(self):
            for p in people:
                # a flat account's cash is its own once its basis settles (net cash)
                net = s.engine.cash(p) - div_ceil(s.engine.vm_basis(p), WAD)
                if s.engine.position_count(p) == 0 and net >= 0:
                    cash_units = net // SCALE
                    if cash_units:
                        assert s.views.withdraw_preview(p, s.usdc, cash_units)[3]
                    w = s.engine.collateral(s.weth, p)
                    if w:
                        assert s.views.withdraw_preview(p, s.weth, w)[3]

    run_state_machine_as_test(
        EngineMachine,
        settings=examples(
            8,
            100,
            stateful_step_count=15,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_flat_account_withdraws_everything(market, outsider, admin):
    """An account with no positions takes out all it has, even while paused and stale."""
    s = market
    s.usdc.mint(outsider, 123 * USD, sender=admin)
    s.usdc.approve(s.engine, 2**256 - 1, sender=outsider)
    s.weth.mint(outsider, 3 * WAD, sender=admin)
    s.weth.approve(s.engine, 2**256 - 1, sender=outsider)
    s.engine.deposit(s.usdc, 123 * USD, sender=outsider)
    s.engine.deposit(s.weth, 3 * WAD, sender=outsider)
    s.engine_admin.pause(sender=admin)
    s.sleep(s.oracle.max_age() + 10)
    s.engine.withdraw(s.usdc, 123 * USD, sender=outsider)
    s.engine.withdraw(s.weth, 3 * WAD, sender=outsider)
    assert s.engine.cash(outsider) == 0 and s.engine.collateral(s.weth, outsider) == 0
    assert s.usdc.balanceOf(outsider) == 123 * USD and s.weth.balanceOf(outsider) == 3 * WAD
