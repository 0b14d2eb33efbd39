# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""Hypothesis state machine over the engine and the Liquidator on anvil: deposits, withdrawals,
trades, oracle moves (crashes of 30-60 % included), liquidations and settlement at expiry, with
the invariants checked after every step:

- books: fund payouts + socialised loss == bad debt;
- a liquidation raises the liquidated account's health, and leaves it at or above IM when it
  was solvent (uncapped); liquidating a healthy account reverts;
- the vault: the stablecoin cash of all accounts and the fund never exceeds what the vault owes
  and holds (total[cash] <= balance), and cash is conserved by trades and liquidations;
- socialisation: the loss still owed by holders covers what the fund advanced; an account with
  no positions (the bystander) is never charged and its cash only moves by its own deposits
  and withdrawals.

CI runs a few short examples; HYPOTHESIS_PROFILE=long runs many more and longer ones.
"""

from __future__ import annotations

import ape
from contract_support import BTC, DAY, ETH, LONG, PSR, USD
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from liquidation_support import (  # noqa: F401 (fixtures)
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
)

from offchain.fixed_point import WAD

INSTRUMENTS = ["btc-fut", "btc-put", "btc-call", "eth-fut"]


def test_liquidation_state_machine(liq, trader, maker, hedger, bystander, liquidator_account):
    s = liq.s
    e, lq = s.engine, liq.liquidator
    traders = [trader, hedger]
    everyone = [trader, hedger, maker, bystander, liquidator_account]

    class Machine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snap = s.chain.snapshot()
            liq.move(BTC, 60_000 * WAD)
            liq.move(ETH, 3_000 * WAD)
            liq.deposit(maker, 100_000_000)
            liq.deposit(liquidator_account, 100_000_000)
            liq.deposit(bystander, 10_000)
            self.bystander_cash = 10_000 * WAD
            for acct in traders:  # start with a leveraged position each
                liq.deposit(acct, 12_500)
            liq.trade(trader, maker, "btc-fut", WAD, 60_000 * WAD)
            liq.trade(maker, hedger, "btc-fut", WAD, 60_000 * WAD)
            self.settled = False
            self.liquidations = 0

        def teardown(self):
            s.chain.restore(self.snap)
            s.chain.provider.make_request("evm_setTime", [s.chain.blocks.head.timestamp + 1])

        # ---- user actions
        @rule(who=st.sampled_from([0, 1]), usd=st.integers(100, 50_000))
        def deposit(self, who, usd):
            liq.deposit(traders[who], usd)

        @rule(usd=st.integers(1, 5_000))
        def bystander_moves(self, usd):
            if usd % 2 == 0:
                liq.deposit(bystander, usd)
                self.bystander_cash += usd * WAD
            elif e.cash(bystander) >= usd * WAD:
                e.withdraw(s.usdc, usd * USD, sender=bystander)
                self.bystander_cash -= usd * WAD

        @rule(who=st.sampled_from([0, 1]), usd=st.integers(1, 20_000))
        def withdraw(self, who, usd):
            acct = traders[who]
            try:
                e.withdraw(s.usdc, usd * USD, sender=acct)
            except ape.exceptions.ContractLogicError as exc:
                assert str(exc) in {
                    "engine: below initial margin",
                    "vault: insufficient balance",
                    "engine: stale oracle",
                }

        @precondition(lambda self: not self.settled)
        @rule(
            who=st.sampled_from([0, 1]),
            name=st.sampled_from(INSTRUMENTS),
            size=st.integers(WAD // 10, 3 * WAD),
            buy=st.booleans(),
        )
        def trade(self, who, name, size, buy):
            acct = traders[who]
            iid = s.instruments[name]
            mark = s.oracle_views.risk_array(iid)[0]
            buyer, seller = (acct, maker) if buy else (maker, acct)
            try:
                e.trade(buyer, seller, iid, size, mark, sender=s.venue)
            except ape.exceptions.ContractLogicError as exc:
                assert str(exc) in {"engine: below initial margin", "engine: stale oracle"}

        # ---- the admin: the fund's share of a bad debt (fund_payouts + socialised ==
        # bad_debt whatever it is)
        @rule(share=st.sampled_from([0, WAD // 3, WAD]))
        def set_fund_share(self, share):
            lq.set_fund_share(share, sender=s.admin)

        # ---- market
        @precondition(lambda self: not self.settled)
        @rule(u=st.sampled_from([BTC, ETH]), pct=st.sampled_from([-60, -45, -30, -10, 10, 30, 60]))
        def move(self, u, pct):
            spot = s.oracle.underlying_state(u)[0]
            target = spot * (100 + pct) // 100
            while spot != target:  # steps inside the 50 % deviation cap
                nxt = (
                    max(target, spot * 55 // 100)
                    if target < spot
                    else min(target, spot * 145 // 100)
                )
                liq.move(u, nxt)
                spot = nxt
            for who in (0, 1):  # the keeper liquidates whoever is below MM
                if liq.health(traders[who]) < 0:
                    self.liquidate(who, WAD)

        # ---- keeper
        @rule(who=st.sampled_from([0, 1]), cap=st.sampled_from([WAD, WAD // 2]))
        def liquidate(self, who, cap):
            acct = traders[who]
            eq, im, mm, _ = liq.state(acct)
            fresh = liq.s.engine.account_state(acct).fresh
            if eq >= mm:
                with ape.reverts("liquidation: healthy"):
                    lq.liquidate(acct, cap, sender=liquidator_account)
                return
            if not fresh:
                with ape.reverts("liquidation: stale oracle"):
                    lq.liquidate(acct, cap, sender=liquidator_account)
                return
            total_before = self.total_cash()
            lq.liquidate(acct, cap, sender=liquidator_account)
            self.liquidations += 1
            eq2, im2, mm2, _ = liq.state(acct)
            assert eq2 - mm2 >= eq - mm
            if cap == WAD and eq > 0 and e.position_count(acct) != 0:
                assert eq2 >= im2
            assert self.total_cash() == total_before

        @precondition(lambda self: not self.settled)
        @rule(price_pct=st.integers(70, 130))
        def expire_and_settle(self, price_pct):
            iid = s.instruments["btc-fut"]
            expiry = (iid >> 56) & (2**40 - 1)
            # BTC moves by price_pct (inside the oracle's deviation bound) ten minutes before
            # expiry, so the settlement TWAP mixes two spots; fresh spots land after expiry and
            # every instrument settles on-chain at its payoff at the TWAP
            spots = {u: s.oracle.underlying_state(u)[0] for u in (BTC, ETH)}
            if s.now() < expiry - 601:
                s.sleep(expiry - 600 - s.now())
                s.post([(BTC, spots[BTC] * price_pct // 100, PSR)])
            s.sleep(expiry - s.now() + 1)
            s.post([(u, spots[u], PSR) for u in (BTC, ETH)])
            for name in ("btc-fut", "btc-put", "btc-call", "eth-fut", "eth-put", "eth-call"):
                s.oracle.settle_expired(s.instruments[name], sender=s.keeper)
            self.settled = True
            # Every holder is settled, as the keeper does: settlement is lazy, so the stablecoin
            # cash of all accounts is conserved only once both sides of an expired position are
            # settled (until then the unsettled side's q * P is owed, not yet booked).
            for acct in everyone:
                e.settle(acct, sender=bystander)
            for acct in traders:
                eq, _im, mm, _ = liq.state(acct)
                if eq < mm:  # an insolvent account: the keeper realises its bad debt
                    lq.liquidate(acct, sender=liquidator_account)
                    assert e.cash(acct) >= 0

        # ---- invariants
        def total_cash(self):
            return sum(e.cash(a) for a in everyone) + e.cash(lq)

        @invariant()
        def books_balance(self):
            assert lq.fund_payouts() + lq.socialised() == lq.bad_debt()

        @invariant()
        def vault_solvent(self):
            assert self.total_cash() <= e.total(s.usdc) * 10**12
            assert e.total(s.usdc) <= s.usdc.balanceOf(e)

        @invariant()
        def socialised_loss_is_owed(self):
            owed = sum(lq.pending_charge(a) for a in everyone)
            assert owed + lq.charges_realised() >= lq.socialised()

        @invariant()
        def bystander_never_charged(self):
            assert lq.pending_charge(bystander) == 0
            assert e.cash(bystander) == self.bystander_cash

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=60 if LONG else 3,
            stateful_step_count=40 if LONG else 10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    _ = DAY
