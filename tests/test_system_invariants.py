# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""One hypothesis state machine over the whole system on anvil (adversarial review):
RiskOracle + MarginEngine + MarginViews + Liquidator + LiquidationViews, six accounts, the
settlement stablecoin, a risky collateral (WETH, 20 % haircut, priced off ETH) and misbehaving
tokens (a 1 % fee-on-transfer token priced off ETH, a USDT-style token without return values,
a token that returns false or lies).

Rules: deposits (own account, on behalf of another, fund top-ups; failing tokens), withdrawals
(cash and collateral, to another receiver), trades through the venue (at, near and far off the
mark), honest oracle posts (moves and crashes of 30-60 % in one or several posts within the
deviation cap), hostile posts (beyond the deviation caps, future / equal / older timestamps,
wrong array lengths, unknown ids, a non-keeper poster, bad prices, magnitude and exponent
abuse; each must revert and leave every stored word unchanged), time passing (stale data),
liquidations (partial, capped, dust caps, full, self) by a third account, expiry with
settlement at the on-chain TWAP and lazy per-account settlement, guardian pause and admin
unpause, and a flat account taking everything out. A BTC perp (docs/fixed-point.md §9, §10):
every example starts with perp holders and a funding index away from zero; rules trade it either
way at sizes off whole contracts, post funding rates (beyond the cap: clamped) over elapsed time
with the spot moving, and realise variation margin (`settle`, withdrawals of realised gains).

Checked after EVERY step (invariants), with the definitions used:
- vault: per asset, credited balances (accounts + fund) == `total` <= the engine's token
  balance; for the stablecoin, cash conservation: sum of cash (accounts + the fund + the
  clearing account, the engine's own cash) == its balance * cash_scale + sum of settlement
  amounts booked (trades, liquidations, charges and realisations conserve cash exactly), and
  once every holder of a settled instrument has settled, the vault owes no more than it holds;
- funding (see `funding_conserved` for the exact statements): sum of bases + WAD * clearing
  cash == 0, funding owed nets to zero across holders, and each account owes exactly the sum
  over its holding periods of q * (F_end - F_start) (no funding for a period it did not hold);
- books: `fund_payouts + socialised == bad_debt`; the insurance fund (the Liquidator's engine
  cash) == top-ups + penalty shares + charges realised - bad debt (exact), and it is negative
  only by what holders still owe (socialised advances) plus documented deficits (bad debt with
  no open interest left, paid beyond the fund's balance): `fund + sum pending >= -deficits`;
  socialised loss <= charges realised + charges pending;
- accounts without positions owe no charge; the bystander (never trades) keeps exactly what it
  deposited; every flat account with non-negative cash can withdraw everything (its preview
  allows it, paused or stale included; a rule also does it);
- oracle: every stored timestamp is <= the head's and never decreases;
- open interest == sum of longs == sum of shorts <= its cap; sizes within the position limit
  for accounts that never received positions through a liquidation;
- margin: `MarginEngine.account_state` == `offchain.margin.account_margin_int` (through the
  SDK client `offchain.sdk.Client`, pending charge deducted, collateral without a fresh
  price at zero, the variation-margin basis and the perp's funding index) for every account.
Checked inside the rules:
- a user action (deposit, withdraw, trade, settle) at a fixed oracle never turns a healthy
  account (equity >= MM, pending charge deducted) unhealthy; a successful withdrawal leaves
  the account flat with cash >= 0, or at equity >= IM on fresh data while not paused; a
  successful trade leaves each side at equity >= IM (fresh, not paused) or strictly lowers its
  MM without lowering its equity; the previews (pending charge deducted) agree with the engine;
- liquidation: the outcome is what `liquidation_preview` said (healthy, stale, cap guards,
  fraction, penalty, bad debt); it never lowers the account's health; uncapped and solvent it
  restores equity >= IM; the liquidator ends at or above IM; cash is conserved; the fund pays
  bad debt only up to its balance unless no open interest is left; self-liquidation reverts;
- settlement leaves every margin state unchanged.

Profiles: CI by default (a few short examples, about a minute); `PM_STATEFUL_PROFILE=long` (or
`HYPOTHESIS_PROFILE=long`) runs many more and longer ones. The numbers of examples, steps and
rule calls are printed at the end (`-s` shows them) and, when `PM_STATEFUL_STATS` names a file,
written there as JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import replace

import pytest
from ape.exceptions import ContractLogicError
from contract_support import BTC, DAY, ETH, MAX_DEV, PSR, USD, batch_call
from hypothesis import HealthCheck, event, settings
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

from offchain.codec import KIND_FUTURE, KIND_PERP, KIND_PUT, id_fields
from offchain.fixed_point import WAD, div_ceil, div_floor
from offchain.funding import FUNDING_GAP
from offchain.margin import (
    account_margin_int,
    basis_int,
    settlement_cash,
    variation_margin_int,
)
from offchain.oracle_bounds import CAP_PERIOD, clamp_price, gap_rate, price_cap
from offchain.sdk import Client, Deployment

LONG = (
    os.environ.get("PM_STATEFUL_PROFILE") == "long"
    or os.environ.get("HYPOTHESIS_PROFILE") == "long"
)
PROFILE = (
    dict(max_examples=150, stateful_step_count=60)
    if LONG
    else dict(max_examples=8, stateful_step_count=25)
)
if os.environ.get("PM_STATEFUL_EXAMPLES"):  # override either profile's number of examples
    PROFILE["max_examples"] = int(os.environ["PM_STATEFUL_EXAMPLES"])
SCALE = 10**12  # stablecoin units (6 decimals) -> WAD
FIRST = ("btc-fut", "btc-call", "btc-put", "eth-fut", "eth-call", "eth-put")
SECOND = ("btc-fut2", "btc-put2", "eth-fut2")
PERP = "btc-perp"  # never expires: funded by the keeper's posts, realised by settle/withdraw
NAMES = FIRST + SECOND + (PERP,)
PERP_CAP = 10**16  # 1 % per hour: posted rates beyond it are clamped by the chain
TIGHT_OI_CAP, TIGHT_LIMIT = 30 * WAD, 12 * WAD  # eth-fut2
FEE_BPS = 100

MOVE_REASONS = {
    "engine: below initial margin",
    "engine: stale oracle",
    "engine: paused",
    "engine: position limit",
    "engine: open interest cap",
    "engine: too many positions",
    "engine: instrument expired",
}
WITHDRAW_REASONS = {
    "vault: insufficient balance",
    "engine: below initial margin",
    "engine: stale oracle",
    "engine: paused",
}


@pytest.fixture(scope="module")
def world(project, liq, admin, trader, maker, outsider, hedger, bystander, liquidator_account):
    """`liq` plus the misbehaving collateral tokens, a second expiry (one instrument with tight
    caps) and a chain client for the integer reference."""
    s = liq.s
    fee = admin.deploy(project.MockFeeToken, 18, FEE_BPS)
    noret = admin.deploy(project.MockNoReturnToken, 6)
    false = admin.deploy(project.MockFalseToken, 18)
    for tok, haircut in ((fee, WAD // 2), (noret, WAD // 10), (false, WAD // 2)):
        s.oracle.list_asset(tok, MAX_DEV, sender=admin)
        s.engine_admin.list_collateral(tok, haircut, 10**24, sender=admin)
    people = [trader, hedger, outsider, maker, liquidator_account, bystander]
    for p in people:
        for tok, amount in ((fee, 10**6 * WAD), (noret, 10**12), (false, 10**6 * WAD)):
            tok.mint(p, amount, sender=admin)
            tok.approve(s.engine, 2**256 - 1, sender=p)
        s.weth.mint(p, 1_000 * WAD, sender=admin)
        s.weth.approve(s.engine, 2**256 - 1, sender=p)
        s.usdc.mint(p, 10**9 * USD, sender=admin)
        s.usdc.approve(s.engine, 2**256 - 1, sender=p)
        s.engine_admin.authorise_venue(s.venue, True, sender=p)
    expiry2 = s.now() + 60 * DAY
    s.list_instrument("btc-fut2", BTC, KIND_FUTURE, 0, expiry2)
    s.list_instrument("btc-put2", BTC, KIND_PUT, 55_000 * WAD, expiry2)
    s.list_instrument("eth-fut2", ETH, KIND_FUTURE, 0, expiry2)
    for name in ("btc-fut2", "btc-put2"):
        s.engine_admin.set_instrument_limits(s.instruments[name], 10**24, 10**23, sender=admin)
    s.engine_admin.set_instrument_limits(
        s.instruments["eth-fut2"], TIGHT_OI_CAP, TIGHT_LIMIT, sender=admin
    )
    s.list_instrument(PERP, BTC, KIND_PERP, PERP_CAP, 0)
    s.engine_admin.set_instrument_limits(s.instruments[PERP], 10**24, 10**23, sender=admin)
    dep = Deployment(
        network="local",
        chain_id=s.chain.chain_id,
        block=0,
        oracle=s.oracle.address,
        engine_admin=s.engine_admin.address,
        engine=s.engine.address,
        views=s.views.address,
        cash=s.usdc.address,
        oracle_views=s.oracle_views.address,
        collateral={
            "WETH": s.weth.address,
            "WBTC": s.wbtc.address,
            "FEE": fee.address,
            "NORET": noret.address,
            "FALSE": false.address,
        },
        underlyings={"BTC": BTC, "ETH": ETH},
        instruments={n: s.instruments[n] for n in NAMES},
        liquidator=liq.liquidator.address,
        liquidation_views=liq.views.address,
    )
    client = Client(project, s.chain, dep)
    return liq, client, {"fee": fee, "noret": noret, "false": false}, people


TIMING = [time.monotonic()] if os.environ.get("PM_STATEFUL_TIMING") else []
STATS = {"examples": 0, "steps": 0, "rules": Counter(), "outcomes": Counter(), "seconds": 0.0}


def test_system_state_machine(world, admin, guardian, trader, maker, outsider, hedger):
    liq_, client, toks, people = world
    s, lq, lv = liq_.s, liq_.liquidator, liq_.views
    e, o = s.engine, s.oracle
    fee, noret, false = toks["fee"], toks["noret"], toks["false"]
    traders = people[:3]
    mk, lacct, by = people[3], people[4], people[5]
    assets = [s.weth, s.wbtc, fee, noret]  # the collateral the machine moves
    all_assets = [*assets, false]
    ids = {n: s.instruments[n] for n in NAMES}
    perp = ids[PERP]
    all_ids = list(ids.values())
    first_ids = {ids[n] for n in FIRST}
    caps = {i: (e.open_interest_cap(i), e.position_limit(i)) for i in all_ids}
    max_age = o.max_age()
    t_start = time.monotonic()

    class SystemMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            STATS["examples"] += 1
            self.snap = s.chain.snapshot()
            self.expired = False
            self.topups = 0
            self.pen_to_fund = 0
            self.deficits = 0
            self.settled_sum = 0
            self.received = set()  # accounts that got positions through a liquidation
            self.by_cash = 0
            self.by_coll = Counter()
            self.stamps = {}
            self.view, self.view_step, self.view_example = None, -1, -1
            self.cm, self.cm_step = None, None
            self.spots = {BTC: 60_000 * WAD, ETH: 3_000 * WAD}
            self.post_market()
            for p, usd in ((mk, 100_000_000), (lacct, 100_000_000)):
                liq_.deposit(p, usd)
            for p in traders:
                liq_.deposit(p, 15_000)
            e.deposit(s.weth, 4 * WAD, sender=outsider)
            liq_.deposit(by, 10_000)
            e.deposit(s.weth, 2 * WAD, sender=by)
            self.by_cash = 10_000 * WAD
            self.by_coll[s.weth.address] = 2 * WAD
            liq_.trade(trader, mk, "btc-fut", WAD, 60_000 * WAD)
            liq_.trade(mk, hedger, "btc-fut", WAD, 60_000 * WAD)
            liq_.trade(outsider, mk, "eth-fut", 10 * WAD, 3_000 * WAD)
            # perps and variation margin: what each account realised (VariationMargin events)
            # and, per account, sum of dq * F over its perp size changes (F the index then)
            self.realised = Counter()
            self.entered = Counter()
            self.perp_q = Counter()
            self.clearing0 = e.cash(e)
            assert self.clearing0 == 0 and all(e.vm_basis(p) == 0 for p in [*people, lq])
            # every example starts with perp holders, sizes off whole contracts: the hedger
            # long against its short future, the trader short a third against its long one
            liq_.trade(hedger, mk, PERP, WAD + 3, 60_000 * WAD)
            liq_.trade(mk, trader, PERP, WAD // 3, 60_000 * WAD + 7)
            self.sync_perp()
            self.accrue(PERP_CAP // 2 + 1, 2 * 3600 + 17, 0)  # every example has F != 0

        def teardown(self):
            s.chain.restore(self.snap)
            s.chain.provider.make_request("evm_setTime", [s.chain.blocks.head.timestamp + 1])

        # ------------------------------------------------------------ helpers
        def step(self, name):
            STATS["steps"] += 1
            STATS["rules"][name] += 1
            if TIMING:
                now = time.monotonic()
                print(f"{now - TIMING[0]:7.2f}s {name}")
                TIMING[0] = now

        def outcome(self, what):
            STATS["outcomes"][what] += 1
            event(what)

        def live(self):
            return [n for n in NAMES if not (self.expired and n in FIRST)]

        def market_items(self, spots):
            unds, items, prices = [], [], []
            for u, spot in spots.items():
                unds.append((u, spot, PSR))
            for n in self.live():
                iid = ids[n]
                _, kind, u, _ = id_fields(iid)
                if u not in spots:
                    continue
                spot = spots[u]
                if kind in (KIND_FUTURE, KIND_PERP):
                    items.append(s.future_item(iid, spot))
                else:
                    delta = 50 if n.endswith("call") else -50
                    items.append(s.option_item(iid, spot // 20, liq_.option_ra(u, spot, delta)))
            if ETH in spots:
                prices += [(s.weth.address, spots[ETH]), (fee.address, spots[ETH] // 10)]
            if BTC in spots:
                prices.append((s.wbtc.address, spots[BTC]))
            prices += [(noret.address, WAD), (false.address, WAD)]
            return unds, items, prices

        def post_market(self, spots=None):
            spots = dict(self.spots if spots is None else spots)
            while True:  # a move beyond one post's cap (the gap rate) is walked, a cap a post
                step = {}
                for u, x in spots.items():
                    old = o.underlying_state(u)[0]
                    rate = gap_rate(o.underlying_params(u).max_deviation, PSR)
                    step[u] = x
                    if 0 < price_cap(old, rate, CAP_PERIOD) < abs(x - old):
                        step[u] = clamp_price(x, (old, 0), rate, CAP_PERIOD)
                s.post(*self.market_items(step))
                self.spots.update(step)
                if step == spots:
                    return

        def oracle_words(self):
            return o.snapshot(all_ids, [BTC, ETH], [a.address for a in all_assets])

        def obs(self):
            """account -> (equity, IM, MM, pending, fresh), pending charge deducted."""
            got = batch_call(s.chain.provider, [(e.account_state, p) for p in people])
            return {p.address: tuple(v) for p, v in zip(people, got, strict=True)}

        def read(self):
            """Everything the invariants look at, in one batch, once per step."""
            if self.view_step == STATS["steps"] and self.view_example == STATS["examples"]:
                return self.view
            calls = [(e.paused,), (lq.bad_debt,), (lq.fund_payouts,), (lq.socialised,)]
            calls += [(lq.charges_realised,), (e.cash, lq), (e.total, s.usdc)]
            calls += [(s.usdc.balanceOf, e), (e.cash, e), (e.cash_scale,), (o.funding_index, BTC)]
            calls += [(e.vm_basis, lq)]
            calls += [(o.underlying_state, u) for u in (BTC, ETH)]
            calls += [(s.oracle_views.asset_price, a) for a in all_assets]
            calls += [(s.oracle_views.risk_array, i) for i in all_ids]
            calls += [(e.open_interest, i) for i in all_ids]
            for tok in all_assets:
                calls += [(e.total, tok), (tok.balanceOf, e), (e.collateral, tok, lq)]
            for p in people:
                calls += [(e.cash, p), (e.positions_of, p), (lq.pending_charge, p)]
                calls += [(e.account_state, p), (e.asset_mask, p), (e.vm_basis, p)]
                calls += [(e.collateral, tok, p) for tok in all_assets]
            it = iter(batch_call(s.chain.provider, calls))
            v = {"paused": next(it), "books": [next(it) for _ in range(4)]}
            v["fund"], v["total_usdc"], v["bal_usdc"] = next(it), next(it), next(it)
            v["clearing"], v["cash_scale"], v["funding"] = next(it), next(it), next(it)
            v["fund_basis"] = next(it)
            v["stamps"] = {("u", u): next(it)[2] for u in (BTC, ETH)}
            v["stamps"].update({("a", a.address): next(it)[1] for a in all_assets})
            v["stamps"].update({("i", i): next(it)[2] for i in all_ids})
            v["oi"] = {i: next(it) for i in all_ids}
            v["asset"] = {}
            for tok in all_assets:
                v["asset"][tok.address] = (next(it), next(it), next(it))
            v["acct"] = {}
            for p in people:
                cash, (pids, sizes), pending, state, mask, basis = (next(it) for _ in range(6))
                coll = {tok.address: next(it) for tok in all_assets}
                v["acct"][p.address] = dict(
                    cash=cash,
                    pos=dict(zip(pids, sizes, strict=True)),
                    pending=pending,
                    state=tuple(state),
                    mask=mask,
                    basis=basis,
                    coll=coll,
                )
            self.view, self.view_step, self.view_example = v, STATS["steps"], STATS["examples"]
            return v

        @staticmethod
        def core(obs):
            """(equity, IM, MM) per account: what a reverted call or a settlement must keep."""
            return {a: v[:3] for a, v in obs.items()}

        def no_one_turned_unhealthy(self, before, after):
            for a, b in before.items():
                if b[0] >= b[2]:
                    assert after[a][0] >= after[a][2], f"{a} turned unhealthy"

        def sync_perp(self):
            """After a transaction that may move perp sizes (trade, liquidation): each size
            change dq, at the funding index F of that block, adds dq * F to what the account
            entered at. Funding moves only inside `funding` (the rate is 0 elsewhere), so F now
            is F at the last transaction's block."""
            calls = [(e.positions_of, p) for p in people] + [(o.funding_index, BTC)]
            *books, f = batch_call(s.chain.provider, calls)
            for p, (pids, sizes) in zip(people, books, strict=True):
                q = dict(zip(pids, sizes, strict=True)).get(perp, 0)
                self.entered[p.address] += (q - self.perp_q[p.address]) * f
                self.perp_q[p.address] = q

        def took(self, tx):
            """Book the variation margin a settlement or withdrawal realised."""
            for ev in tx.events.filter(e.VariationMargin):
                self.realised[ev.account] += ev.amount
                self.outcome("variation margin realised")

        def cash_all(self):
            return sum(batch_call(s.chain.provider, [(e.cash, p) for p in [*people, lq]]))

        def expect_revert(self, reasons, fn, *args, **kw):
            try:
                self.last_tx = fn(*args, **kw)
            except ContractLogicError as exc:
                assert str(exc) in reasons, str(exc)
                return str(exc)
            return None

        # ------------------------------------------------------------ deposits
        @rule(
            who=st.integers(0, 5),
            to=st.sampled_from(["self", "self", "other", "fund"]),
            asset=st.integers(0, 4),
            amount=st.sampled_from([1, 10, 1_000, 20_000, 300_000]),
        )
        def deposit(self, who, to, asset, amount):
            self.step("deposit")
            sender = people[who]
            if sender == by and to != "self":
                return
            token = s.usdc if asset == 0 else assets[asset - 1]
            if to == "fund" and token != s.usdc:
                return
            if token == s.wbtc:
                return  # WBTC: only received through liquidations in this machine
            if token == s.usdc:
                units = amount * USD
            elif token == s.weth:
                units = amount * WAD // 10_000  # up to 30 WETH
            elif token == fee:
                units = amount * WAD // 100
            else:
                units = amount * 10**6  # USDT-style, 6 decimals
            target = {"self": sender, "other": people[(who + 1) % 5], "fund": lq}[to]
            if target == by and sender != by:
                return
            before = self.obs()
            bal = token.balanceOf(e)
            tx = e.deposit(token, units, target, sender=sender)
            credited = tx.events.filter(e.Deposit)[0].amount
            expect = units - units * FEE_BPS // 10_000 if token == fee else units
            assert credited == expect and token.balanceOf(e) == bal + credited
            if to == "fund":
                self.topups += credited * SCALE
            if target == by:
                if token == s.usdc:
                    self.by_cash += credited * SCALE
                else:
                    self.by_coll[token.address] += credited
            self.no_one_turned_unhealthy(before, self.obs())

        @rule(kind=st.sampled_from(["fail", "noop", "unknown", "zero", "zero account"]))
        def bad_deposit(self, kind):
            self.step("bad_deposit")
            words, cash = self.oracle_words(), self.cash_all()
            total = e.total(false)
            if kind == "fail":
                false.set_fail_all(True, sender=admin)
                reasons, args = {"vault: transfer failed"}, (false, WAD)
            elif kind == "noop":
                false.set_noop_all(True, sender=admin)
                reasons, args = {"vault: nothing received"}, (false, WAD)
            elif kind == "unknown":
                reasons, args = {"vault: unknown asset"}, (outsider.address, WAD)
            elif kind == "zero":
                reasons, args = {"vault: zero amount"}, (s.usdc, 0)
            else:
                reasons, args = {"vault: bad account"}, (s.usdc, USD, "0x" + "00" * 20)
            got = self.expect_revert(reasons, e.deposit, *args, sender=trader)
            assert got is not None, f"bad deposit {kind} went through"
            false.set_fail_all(False, sender=admin)
            false.set_noop_all(False, sender=admin)
            assert e.total(false) == total and self.cash_all() == cash
            assert self.oracle_words() == words

        # ------------------------------------------------------------ withdrawals
        @rule(
            who=st.integers(0, 5),
            asset=st.integers(0, 4),
            frac=st.sampled_from([1, 10, 50, 100, 100, 101]),
            other=st.booleans(),
        )
        def withdraw(self, who, asset, frac, other):
            self.step("withdraw")
            acct = people[who]
            if acct == lacct:
                frac = min(frac, 10)  # the keeper's liquidator keeps its capital
            token = s.usdc if asset == 0 else assets[asset - 1]
            if token == s.usdc:
                # what the withdrawal's settlement makes cash first: settled positions and the
                # variation margin (gains realised while the positions stay)
                cm = self.market()
                ref = cm.account(*client.account_raw(acct))
                bal = max(ref.cash + variation_margin_int(ref, cm.market), 0) // SCALE
            else:
                bal = e.collateral(token, acct)
            amount = bal * frac // 100 + (1 if frac == 101 else 0)
            if amount == 0:
                return
            receiver = outsider if other and acct != outsider else acct
            before = self.obs()
            pending = before[acct.address][3]
            preview = s.views.withdraw_preview(acct, token, amount)
            eng_bal, rec_bal = token.balanceOf(e), token.balanceOf(receiver)
            got = self.expect_revert(
                WITHDRAW_REASONS, e.withdraw, token, amount, receiver, sender=acct
            )
            done = got is None
            self.outcome(f"withdraw {'done' if done else got}")
            assert done == preview[3], (preview, got, pending)  # pending charge included
            after = self.obs()
            self.no_one_turned_unhealthy(before, after)
            if not done:
                return
            self.took(self.last_tx)
            assert token.balanceOf(e) == eng_bal - amount
            fee_cut = amount * FEE_BPS // 10_000 if token == fee else 0
            assert token.balanceOf(receiver) == rec_bal + amount - fee_cut
            eq, im, _mm, _p, fresh = after[acct.address]
            if e.position_count(acct) != 0 or e.cash(acct) < 0:
                assert fresh and not e.paused() and eq >= im
            if acct == by:
                if token == s.usdc:
                    self.by_cash -= amount * SCALE
                else:
                    self.by_coll[token.address] -= amount

        @rule(who=st.integers(0, 5))
        def flat_account_exits(self, who):
            """A flat account with cash >= 0 takes everything out (paused or stale too)."""
            self.step("flat_exit")
            acct = people[who]
            # flat: its net cash (what the first withdrawal realises) is all its own
            net = e.cash(acct) - div_ceil(e.vm_basis(acct), WAD)
            if e.position_count(acct) != 0 or net < 0:
                return
            for token in assets:
                amt = e.collateral(token, acct)
                if amt:
                    self.took(e.withdraw(token, amt, sender=acct))
            units = net // SCALE
            if units:
                self.took(e.withdraw(s.usdc, units, sender=acct))
            assert e.asset_mask(acct) == 0 and e.cash(acct) < SCALE
            self.outcome("flat exit")
            if acct == by:
                self.by_cash = e.cash(acct)
                self.by_coll = Counter()
                liq_.deposit(by, 5_000)
                self.by_cash += 5_000 * WAD
            if acct == lacct:
                liq_.deposit(lacct, 100_000_000)  # the keeper's liquidator comes back

        # ------------------------------------------------------------ trades
        @rule(
            b=st.integers(0, 4),
            sl=st.integers(0, 4),
            k=st.integers(0, len(NAMES) - 1),
            size=st.sampled_from([WAD // 100, WAD // 10, WAD // 2, WAD, 3 * WAD, 13 * WAD]),
            skew=st.sampled_from([0, 0, 0, 1, -1, 5, -5, 50, -50]),
        )
        def trade(self, b, sl, k, size, skew):
            self.step("trade")
            self.trade_checked(people[b], people[sl], NAMES[k], size, skew)

        @rule(
            b=st.integers(0, 4),
            sl=st.integers(0, 4),
            size=st.sampled_from([1, WAD // 3, WAD + 7, 2 * WAD + 3, 5 * WAD, 13 * WAD // 7]),
            skew=st.sampled_from([0, 0, 1, -1, 5, -5]),
        )
        def trade_perp(self, b, sl, size, skew):
            """The perp, either way, sizes off whole contracts (the basis shifts round)."""
            self.step("trade_perp")
            self.trade_checked(people[b], people[sl], PERP, size, skew)

        def trade_checked(self, buyer, seller, name, size, skew):
            iid = ids[name]
            if buyer == seller:
                with_reason = self.expect_revert(
                    {"engine: self trade"}, e.trade, buyer, seller, iid, size, 1, sender=s.venue
                )
                assert with_reason == "engine: self trade"
                return
            mark = s.oracle_views.risk_array(iid)[0]
            price = mark * (100 + skew) // 100
            before = self.obs()
            qb, qs = e.positions_of(buyer), e.positions_of(seller)
            qb = dict(zip(*qb, strict=True)).get(iid, 0)
            qs = dict(zip(*qs, strict=True)).get(iid, 0)
            oi = e.open_interest(iid)
            expired = self.expired and name in FIRST
            pb = ps = None
            if not expired:
                pb = s.views.trade_preview(buyer, iid, size, price)
                ps = s.views.trade_preview(seller, iid, -size, price)
            got = self.expect_revert(
                MOVE_REASONS, e.trade, buyer, seller, iid, size, price, sender=s.venue
            )
            done = got is None
            self.outcome(f"{'perp ' if iid == perp else ''}trade {'booked' if done else got}")
            self.sync_perp()
            after = self.obs()
            self.no_one_turned_unhealthy(before, after)
            oi_after = oi + max(qb + size, 0) - max(qb, 0) + max(qs - size, 0) - max(qs, 0)
            if expired:
                assert got == "engine: instrument expired"
                return
            oi_ok = oi_after <= oi or oi_after <= caps[iid][0]
            assert done == (pb[3] and ps[3] and oi_ok), (pb, ps, oi_ok, got)
            if not done:
                return
            for acct in (buyer, seller):
                eq0, _im0, mm0, _p0, _f0 = before[acct.address]
                eq, im, mm, _p, fresh = after[acct.address]
                new_risk_ok = fresh and not e.paused() and eq >= im
                assert new_risk_ok or (mm < mm0 and eq >= eq0), (acct, before, after)
            assert e.open_interest(iid) == oi_after
            assert oi_after <= oi or oi_after <= caps[iid][0]

        @precondition(lambda self: not self.paused_now())
        @rule(
            who=st.integers(0, 2),
            k=st.integers(0, len(NAMES) - 1),
            buy=st.booleans(),
            use=st.sampled_from([100, 90, 50]),
        )
        def lever(self, who, k, buy, use):
            """A trader opens (against the maker, at the mark) the largest position of a
            ladder that its preview allows, using `use` % of it: accounts near IM make the
            crashes bite (liquidations, bad debt, socialisation)."""
            self.step("lever")
            name = NAMES[k]
            if self.expired and name in FIRST:
                return
            acct, iid = traders[who], ids[name]
            mark = s.oracle_views.risk_array(iid)[0]
            sign = 1 if buy else -1
            ladder = [x * WAD // 10 for x in (200, 100, 50, 20, 10, 5, 2, 1)]
            previews = batch_call(
                s.chain.provider,
                [(s.views.trade_preview, acct, iid, sign * q, mark) for q in ladder],
            )
            sizes = [q for q, pv in zip(ladder, previews, strict=True) if pv[3] and pv[4] == 0]
            if not sizes:
                return
            size = sizes[0] * use // 100
            buyer, seller = (acct, mk) if buy else (mk, acct)
            before = self.obs()
            got = self.expect_revert(
                MOVE_REASONS, e.trade, buyer, seller, iid, size, mark, sender=s.venue
            )
            self.outcome(f"lever {got or 'booked'}")
            self.sync_perp()
            self.no_one_turned_unhealthy(before, self.obs())

        def paused_now(self):
            return e.paused()

        # ------------------------------------------------------------ oracle
        @rule(u=st.sampled_from([BTC, ETH]), pct=st.sampled_from([-45, -20, -8, -2, 2, 8, 20, 45]))
        def move(self, u, pct):
            self.step("move")
            self.post_market({u: self.spots[u] * (100 + pct) // 100})

        @rule(u=st.sampled_from([BTC, ETH]), pct=st.integers(30, 60), posts=st.integers(1, 3))
        def crash(self, u, pct, posts):
            """A 30-60 % fall, in `posts` posts (each walked at the gap rate by `post_market`)."""
            self.step("crash")
            spot = self.spots[u]
            target = spot * (100 - pct) // 100
            for k in range(1, posts + 1):
                nxt = spot - (spot - target) * k // posts if posts > 1 else target
                nxt = max(nxt, self.spots[u] * 51 // 100)
                self.post_market({u: nxt})
            self.outcome("crash")

        @rule(
            kind=st.sampled_from(
                [
                    "spot 1000x",
                    "spot over cap",
                    "future 1000x",
                    "option mark over cap",
                    "asset over cap",
                    "future",
                    "equal",
                    "older",
                    "short array",
                    "long array",
                    "stray entry",
                    "unknown underlying",
                    "unknown instrument",
                    "unknown asset",
                    "not keeper",
                    "future with array",
                    "zero spot",
                    "huge spot",
                    "zero mark",
                    "zero asset price",
                    "psr",
                    "magnitude",
                    "exponent",
                    "non-canonical",
                    "settle early",
                ]
            )
        )
        def hostile_post(self, kind):
            """A batch with valid items first and one hostile item: it must revert with its
            reason and leave every stored word (and so every margin) unchanged."""
            self.step("hostile_post")
            words, before = self.oracle_words(), self.obs()
            spots = dict(self.spots)
            unds, items, prices = self.market_items(spots)
            # the valid items within the oracle's option bounds (`post` sleeps 1 s first)
            items = [s.bounded_item(it, s.now() + 1, spots) for it in items]
            btc = spots[BTC]
            fut, call = ids["btc-fut2"], ids["btc-put2"]
            ra = liq_.option_ra(BTC, btc, -50)
            mark = s.oracle_views.risk_array(call)[0]
            ts, sender = None, s.keeper
            over = btc + btc * MAX_DEV // WAD + 1
            bad = {
                "spot 1000x": ("und", (BTC, btc * 1000, PSR), "oracle: spot deviation"),
                "spot over cap": ("und", (BTC, over, PSR), "oracle: spot deviation"),
                "future 1000x": ("ins", s.future_item(fut, btc * 1000), "oracle: mark deviation"),
                "option mark over cap": (
                    "ins",
                    s.option_item(call, mark + btc * MAX_DEV // WAD + 1, ra),
                    {"oracle: mark deviation", "oracle: mark above bound"},
                ),
                "asset over cap": (
                    "ast",
                    (s.weth.address, spots[ETH] * 2 + 1),
                    "oracle: price deviation",
                ),
                "short array": (
                    "ins",
                    s.malformed_option_item(call, mark, ra, "short"),
                    "oracle: wrong array length",
                ),
                "long array": (
                    "ins",
                    s.malformed_option_item(call, mark, ra, "long"),
                    "oracle: wrong array length",
                ),
                "stray entry": (
                    "ins",
                    s.malformed_option_item(call, mark, ra, "stray"),
                    "oracle: wrong array length",
                ),
                "unknown underlying": ("und", (77, btc, PSR), "oracle: unknown underlying"),
                "unknown instrument": (
                    "ins",
                    s.future_item(fut + 12345, btc),
                    "oracle: unknown instrument",
                ),
                "unknown asset": ("ast", (outsider.address, WAD), "oracle: unknown asset"),
                "future with array": (
                    "ins",
                    s.future_item_with_array(fut, btc, ra),
                    "oracle: future array posted",
                ),
                "zero spot": ("und", (BTC, 0, PSR), "oracle: bad price"),
                "huge spot": ("und", (BTC, 2**96, PSR), "oracle: bad price"),
                "zero mark": ("ins", s.future_item(fut, 0), "oracle: bad price"),
                "zero asset price": ("ast", (s.weth.address, 0), "oracle: bad price"),
                "psr": ("und", (BTC, btc, WAD // 1000), "oracle: psr out of bounds"),
                "magnitude": (
                    "ins",
                    s.option_item(call, mark, [3 * btc * c // WAD for c in s.grids[BTC]]),
                    "oracle: array gain above payoff",
                ),
                "exponent": (
                    "ins",
                    s.raw_option_item(call, mark, 128, [1] * s.n_scenarios[BTC]),
                    "oracle: exponent too large",
                ),
                "non-canonical": (
                    "ins",
                    s.raw_option_item(call, mark, 3, [100] * s.n_scenarios[BTC]),
                    "oracle: non-canonical exponent",
                ),
            }
            if kind in bad:
                where, item, reason = bad[kind]
                batch = {"und": unds, "ins": items, "ast": prices}[where]
                # the valid prefix must not post the same id at the same timestamp first
                batch[:] = [x for x in batch if x[0] != item[0]]
                batch.append(item)
            elif kind == "future":
                ts, reason = s.now() + 1000, "oracle: timestamp in future"
            elif kind == "equal":
                ts, reason = o.underlying_state(BTC)[2], "oracle: not newer"
            elif kind == "older":
                ts, reason = o.underlying_state(BTC)[2] - 1, "oracle: not newer"
            elif kind == "not keeper":
                sender, reason = outsider, "roles: not keeper"
            else:  # settle before expiry, or a second time
                reason = None
            if reason is None:
                iid = ids["btc-fut"]
                got = self.expect_revert(
                    {"oracle: not expired", "oracle: instrument settled"},
                    o.settle_expired,
                    iid,
                    sender=s.keeper,
                )
                assert got is not None
            else:
                # a header claiming four entry words (only three fit the ABI): refused
                reasons = reason if isinstance(reason, set) else {reason}
                if kind == "long array":
                    reasons = {reason, "Transaction failed."}
                got = self.expect_revert(
                    reasons, s.post, unds, items, prices, timestamp=ts, sender=sender, bounded=False
                )
                assert got in reasons, f"hostile post {kind} went through"
            self.outcome(f"hostile {kind}")
            assert self.oracle_words() == words
            assert self.core(self.obs()) == self.core(before)

        @rule(seconds=st.sampled_from([1, 60, 600, max_age + 1, 3 * max_age]))
        def sleep(self, seconds):
            self.step("sleep")
            s.sleep(seconds)

        @rule(
            rate=st.sampled_from(
                [1, -1, PERP_CAP // 3, -PERP_CAP // 2, PERP_CAP, -PERP_CAP, 3 * PERP_CAP, -WAD]
            ),
            seconds=st.sampled_from([1, 600, 3600, 5 * 3600, FUNDING_GAP + 3600]),
            pct=st.sampled_from([0, 0, -8, 8]),
        )
        def funding(self, rate, seconds, pct):
            """The keeper posts a funding rate (beyond the cap: clamped), time passes, BTC may
            move (`pct` %), and a rate of 0 freezes the index again: F rises by
            div_floor(rate * spot * min(dt, 8 h), 3600 * WAD) at the spot of the second post
            (docs/fixed-point.md §9). Outside this rule the rate is 0, so every other rule sees
            a still index."""
            self.step("funding")
            self.accrue(rate, seconds, pct)

        def accrue(self, rate, seconds, pct):
            f0 = o.funding_index(BTC)
            clamped = max(-PERP_CAP, min(PERP_CAP, rate))
            tx = o.post_funding([(BTC, rate)], sender=s.keeper)
            ev = tx.events.filter(o.FundingPosted)[0]
            assert (ev.underlying, ev.rate, ev.index) == (BTC, clamped, f0)
            t0 = s.now()
            s.sleep(seconds)
            if pct:
                self.post_market({BTC: self.spots[BTC] * (100 + pct) // 100})
            tx = o.post_funding([(BTC, 0)], sender=s.keeper)
            dt = min(s.now() - t0, FUNDING_GAP)
            grown = div_floor(clamped * o.underlying_state(BTC)[0] * dt, 3600 * WAD)
            ev = tx.events.filter(o.FundingPosted)[0]
            assert (ev.rate, ev.index) == (0, f0 + grown) and o.funding_index(BTC) == f0 + grown
            self.outcome("funding posted")
            self.post_market()  # fresh data for the rules that follow

        # ------------------------------------------------------------ guardian
        @rule(on=st.booleans(), rogue=st.booleans())
        def pause(self, on, rogue):
            self.step("pause")
            if rogue:  # a trader cannot pause, the guardian cannot unpause
                who, reason = (
                    (trader, "roles: not guardian") if on else (guardian, "roles: not admin")
                )
                fn = s.engine_admin.pause if on else s.engine_admin.unpause
                assert self.expect_revert({reason}, fn, sender=who) == reason
                return
            if on:
                s.engine_admin.pause(sender=guardian)
            else:
                s.engine_admin.unpause(sender=admin)

        # ------------------------------------------------------------ liquidation
        @rule(
            who=st.integers(0, 3),
            cap=st.sampled_from([WAD, WAD, WAD, WAD // 2, WAD // 10, WAD // 1000, 0, WAD + 1]),
            by=st.sampled_from(["third", "third", "maker", "self"]),
        )
        def liquidate(self, who, cap, by):
            self.step("liquidate")
            acct = people[who]
            caller = {"third": lacct, "maker": mk if acct != mk else lacct, "self": acct}[by]
            if by == "self":
                got = self.expect_revert(
                    {"liquidation: self"}, lq.liquidate, acct, cap, sender=acct
                )
                assert got == "liquidation: self"
                return
            self.liquidate_checked(acct, cap, caller)

        @rule(cap=st.sampled_from([WAD, WAD, WAD // 2, WAD // 10]))
        def keeper_sweep(self, cap):
            """The keeper liquidates every account below MM (after a crash, say)."""
            self.step("keeper_sweep")
            obs = self.obs()
            for acct in [*traders, mk]:
                eq, _im, mm, _p, _fresh = obs[acct.address]
                if eq < mm:
                    self.liquidate_checked(acct, cap, lacct)

        def liquidate_checked(self, acct, cap, caller):
            before = self.obs()
            pv = lv.liquidation_preview(acct, cap)
            expected = {
                1: "liquidation: healthy",
                2: "liquidation: stale oracle",
                3: "liquidation: fraction too small",
                4: "liquidation: bad fraction",
                5: "liquidation: stale collateral",
            }
            cash0 = self.cash_all()
            fund0 = e.cash(lq)
            pend_a, pend_l = before[acct.address][3], before[caller.address][3]
            try:
                tx = lq.liquidate(acct, cap, sender=caller)
                got = None
            except ContractLogicError as exc:
                got = str(exc)
            self.sync_perp()
            self.outcome(f"liquidation {got or 'done'}")
            if pv.status != 0:
                assert got == expected[pv.status], (pv.status, got)
                assert self.core(self.obs()) == self.core(before)
                return
            if got is not None:  # the preview does not cover the liquidator's side
                assert got in {
                    "liquidation: liquidator below IM",
                    "engine: too many positions",
                    "liquidation: stale oracle",
                }
                if got == "liquidation: stale oracle":
                    assert not before[caller.address][4]  # its own book is stale
                return
            ev = tx.events.filter(lq.Liquidated)[0]
            assert (ev.fraction, ev.position_cash, ev.penalty) == (
                pv.fraction,
                pv.position_cash,
                pv.penalty,
            )
            assert (ev.penalty_to_liquidator, ev.penalty_to_fund) == (
                pv.penalty_to_liquidator,
                pv.penalty_to_fund,
            )
            self.pen_to_fund += ev.penalty_to_fund
            self.received.add(caller.address)
            bad = tx.events.filter(lq.BadDebt)
            assert (bad[0].amount if bad else 0) == pv.bad_debt
            if bad:
                b = bad[0]
                assert b.fund_payout + b.socialised == b.amount
                inflow = fund0 + ev.penalty_to_fund + pend_a + pend_l
                if b.fund_payout > max(inflow, 0):
                    # documented: no open interest left to socialise over (settled instruments
                    # never count: their holders leave one by one), the fund pays all
                    assert b.socialised == 0
                    settled = self.market().settled
                    assert all(e.open_interest(i) == 0 or i in settled for i in pv.ids)
                    self.deficits += b.fund_payout - max(inflow, 0)
                    self.outcome("fund deficit")
                self.outcome("bad debt")
            after = self.obs()
            eq, im, mm, _p, _f = before[acct.address]
            eq2, im2, mm2, _p2, _f2 = after[acct.address]
            assert eq2 - mm2 >= eq - mm, "liquidation lowered the account's health"
            if cap == WAD and eq > 0 and pv.fraction < WAD:
                assert eq2 >= im2
            leq, lim, _lmm, _lp, _lf = after[caller.address]
            assert leq >= lim, "liquidator below IM after a liquidation"
            assert self.cash_all() == cash0
            if pv.fraction == WAD:
                assert e.position_count(acct) == 0

        # ------------------------------------------------------------ expiry
        @precondition(lambda self: not self.expired)
        @rule(pct=st.integers(93, 107))  # within one post's cap ten minutes after the last
        def expire(self, pct):
            """Past the first expiry: BTC moves by `pct` % ten minutes before it (so the
            settlement TWAP mixes two spots), fresh data lands after it, and the expired
            instruments settle on-chain at their payoffs at the TWAP."""
            self.step("expire")
            expiry = (ids["btc-fut"] >> 56) & (2**40 - 1)
            if s.now() < expiry - 601:
                s.sleep(expiry - 600 - s.now())
                self.post_market({**self.spots, BTC: self.spots[BTC] * pct // 100})
            s.sleep(expiry - s.now() + 1)
            self.expired = True
            self.post_market()  # a spot after expiry: the settlement window is final
            for n in FIRST:
                o.settle_expired(ids[n], sender=s.keeper)

        @rule(who=st.integers(0, 5), sender=st.integers(0, 5))
        def settle(self, who, sender):
            """Settles expired positions (after the expiry) and realises variation margin."""
            self.step("settle")
            acct = people[who]
            before = self.obs()
            tx = e.settle(acct, sender=people[sender])
            self.took(tx)
            self.settled_sum += sum(ev.amount for ev in tx.events.filter(e.Settled))
            after = self.obs()
            assert self.core(after) == self.core(before), "settlement changed a margin state"

        # ------------------------------------------------------------ invariants
        @invariant()
        def vault_books(self):
            v = self.read()
            for tok in all_assets:
                total, held, fund_coll = v["asset"][tok.address]
                credited = fund_coll + sum(a["coll"][tok.address] for a in v["acct"].values())
                assert credited == total <= held, tok
            total = v["total_usdc"]
            assert total == v["bal_usdc"]  # nothing reaches the vault but deposits
            # cash conservation (docs/fixed-point.md §10): accounts + the fund + the clearing
            # account (the engine's own cash, which pays realised variation margin) == the
            # vault's stablecoin, to the wei, plus the settlement amounts booked
            cash = v["fund"] + v["clearing"] + sum(a["cash"] for a in v["acct"].values())
            assert cash == v["bal_usdc"] * v["cash_scale"] + self.settled_sum
            cm = self.market()
            owed = 0
            for a in v["acct"].values():
                owed += sum(
                    settlement_cash(q, cm.settled[i])
                    for i, q in a["pos"].items()
                    if i in cm.settled
                )
            assert cash + owed <= total * SCALE

        @invariant()
        def liquidation_books(self):
            v = self.read()
            bad, paid, social, realised = v["books"]
            assert paid + social == bad
            fund = v["fund"]
            assert fund == self.topups + self.pen_to_fund + realised - bad
            pending = sum(a["pending"] for a in v["acct"].values())
            assert fund + pending >= -self.deficits
            assert social <= realised + pending

        @invariant()
        def no_positions_no_charge(self):
            v = self.read()
            for a in v["acct"].values():
                if not a["pos"]:
                    assert a["pending"] == 0
            b = v["acct"][by.address]
            assert not b["pos"] and b["cash"] == self.by_cash
            for tok in assets:
                assert b["coll"][tok.address] == self.by_coll[tok.address]

        @invariant()
        def flat_accounts_can_leave(self):
            v = self.read()
            calls = []
            for p in people:
                a = v["acct"][p.address]
                net = a["cash"] - div_ceil(a["basis"], WAD)  # what the withdrawal realises
                if a["pos"] or net < 0:
                    continue
                if net // SCALE:
                    calls.append((s.views.withdraw_preview, p, s.usdc, net // SCALE))
                for tok in assets:
                    if a["coll"][tok.address]:
                        calls.append((s.views.withdraw_preview, p, tok, a["coll"][tok.address]))
            for preview in batch_call(s.chain.provider, calls):
                assert preview[3], preview

        @invariant()
        def oracle_timestamps(self):
            v = self.read()
            now = s.now()
            for key, ts in v["stamps"].items():
                assert ts <= now, key
                assert ts >= self.stamps.get(key, 0), key
            self.stamps = v["stamps"]

        @invariant()
        def open_interest_and_limits(self):
            v = self.read()
            longs, shorts = Counter(), Counter()
            for addr, a in v["acct"].items():
                for i, q in a["pos"].items():
                    assert q != 0
                    if q > 0:
                        longs[i] += q
                    else:
                        shorts[i] -= q
                    if addr not in self.received:
                        assert abs(q) <= caps[i][1], "position limit exceeded"
            for i in all_ids:
                oi = v["oi"][i]
                assert oi == longs[i] and oi <= caps[i][0]
                if not (self.expired and i in first_ids):  # settled side by side, lazily
                    assert oi == shorts[i]

        @invariant()
        def margin_equals_reference(self):
            """The engine's account state equals the reference with the pending charge deducted
            and collateral lacking a fresh price valued at zero (docs/fixed-point.md §8)."""
            v = self.read()
            cm = self.market()
            now = s.chain.blocks.head.timestamp
            stale = {
                cm.asset_index[a]
                for (kind, a), ts in v["stamps"].items()
                if kind == "a" and a in cm.asset_index and (ts == 0 or ts + max_age < now)
            }
            colls = cm.market.collaterals
            seen_by_liquidation = replace(
                cm.market,
                collaterals={i: replace(c, price=0) if i in stale else c for i, c in colls.items()},
            )
            for addr, a in v["acct"].items():
                coll = {t: amt for t, amt in a["coll"].items() if amt}
                acct = cm.account(a["cash"] - a["pending"], a["pos"], coll, a["basis"])
                ref_l = account_margin_int(acct, seen_by_liquidation, cm.im_factor)
                eq, im, mm, pending, _fresh = a["state"]
                assert pending == a["pending"]
                assert (eq, im, mm) == (
                    ref_l.equity,
                    ref_l.initial_margin,
                    ref_l.maintenance_margin,
                ), addr

        @invariant()
        def funding_conserved(self):
            """Funding paid == funding received, exactly (docs/fixed-point.md §10). With X_a =
            basis_int(a) = vm_basis(a) + q_a * F (WAD**2), R_a the variation margin a realised
            and C the clearing account's cash (0 at the start, every basis 0):
              sum_a vm_basis(a) + WAD * C == 0      (perp moves shift two bases by -dq * F and
                                                     +dq * F; a realisation r moves r * WAD
                                                     into a basis and -r into C)
              sum_a X_a + WAD * C == 0              (the perp's sizes net to zero)
              sum_a R_a == -C                       (the clearing account pays what is realised)
              sum_a (X_a - WAD * R_a) == 0          (funding owed across holders nets to zero)
            and no account is charged funding for a period it did not hold the perp: for each a,
              X_a - WAD * R_a == sum over its holding periods of q * (F_end - F_start)
                              == q_a * F_now - sum over its size changes of dq * F_then."""
            v = self.read()
            cm = self.market()
            f = v["funding"]
            assert cm.market.underlyings[BTC].funding_index == f
            c = v["clearing"] - self.clearing0
            assert v["fund_basis"] == 0  # the fund never holds a position
            bases = {addr: a["basis"] for addr, a in v["acct"].items()}
            assert sum(bases.values()) + WAD * c == 0
            assert sum(self.realised.values()) == -c
            assert sum(a["pos"].get(perp, 0) for a in v["acct"].values()) == 0
            owed_total = 0
            for addr, a in v["acct"].items():
                coll = {t: amt for t, amt in a["coll"].items() if amt}
                x = basis_int(cm.account(a["cash"], a["pos"], coll, a["basis"]), cm.market)
                q = a["pos"].get(perp, 0)
                assert x == a["basis"] + q * f
                assert q == self.perp_q[addr]
                owed = x - WAD * self.realised[addr]
                assert owed == q * f - self.entered[addr], addr
                owed_total += owed
            assert owed_total == 0

        def market(self):
            """The oracle as the integer reference sees it (chain client), once per step."""
            if self.cm_step != (STATS["examples"], STATS["steps"]):
                self.cm, self.cm_step = (
                    client.market_int(all_ids),
                    (STATS["examples"], STATS["steps"]),
                )
            return self.cm

    try:
        run_state_machine_as_test(
            SystemMachine,
            settings=settings(
                **PROFILE,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        STATS["seconds"] = round(time.monotonic() - t_start, 1)
        report = {
            "profile": "long" if LONG else "ci",
            "examples": STATS["examples"],
            "steps": STATS["steps"],
            "rules": dict(STATS["rules"]),
            "outcomes": dict(STATS["outcomes"]),
            "seconds": STATS["seconds"],
        }
        print("\nsystem state machine:", json.dumps(report, sort_keys=True))
        path = os.environ.get("PM_STATEFUL_STATS")
        if path:
            with open(path, "w") as f:
                json.dump(report, f, indent=2, sort_keys=True)
