"""Fixtures and helpers of the liquidation tests (kept out of conftest.py, whose fixtures every
contract test loads): the Liquidator and LiquidationViews deployed on the `market` fixture, funded
accounts by role, market moves, and the chain -> reference conversion used to compare every
liquidation with `offchain.liquidation`.

Test modules import the fixtures they use by name (`from liquidation_support import ...`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from contract_support import BTC, ETH, PSR, SOM_RATE, SPAN, SPOTS, USD

from offchain.codec import id_fields
from offchain.fixed_point import WAD, scenario_lin_wad
from offchain.liquidation import LiquidationParams, LossLedger
from offchain.liquidation import liquidate as ref_liquidate
from offchain.margin import (
    AccountInt,
    CollateralInt,
    InstrumentInt,
    Kind,
    MarketInt,
    UnderlyingInt,
)
from offchain.oracle_bounds import CAP_PERIOD, clamp_price, gap_rate, price_cap
from offchain.sdk import deploy_liquidation_views, deploy_liquidator

BIG = 10**9 * USD  # token units minted to every funded account
ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture(scope="session")
def liquidator_account(accounts):
    """The margin account that liquidates (a market maker's risk book)."""
    return accounts[7]


@pytest.fixture(scope="session")
def bystander(accounts):
    """An account that only deposits: it must never lose to socialisation."""
    return accounts[8]


@pytest.fixture(scope="session")
def hedger(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def liquidator(project, admin, engine, engine_admin, market):
    """The Liquidator wired to the session's engine. Every test module that imports this fixture
    gets its own instance of it, but the engine takes a liquidator only once: later modules
    reuse the one already wired."""
    wired = engine.liquidator()
    if wired != ZERO:
        return project.Liquidator.at(wired)
    return deploy_liquidator(project, admin, engine_admin, engine)


@pytest.fixture(scope="session")
def lviews(project, admin, liquidator):
    return deploy_liquidation_views(project, admin, liquidator)


@pytest.fixture(scope="session")
def liq(market, liquidator, lviews, liquidator_account, bystander, hedger, trader, maker):
    """`market` plus the Liquidator, its views and funded, venue-authorised accounts."""
    s = market
    for acct in (liquidator_account, bystander, hedger):
        s.usdc.mint(acct, BIG, sender=s.admin)
        s.usdc.approve(s.engine, 2**256 - 1, sender=acct)
        s.weth.mint(acct, 1_000 * WAD, sender=s.admin)
        s.weth.approve(s.engine, 2**256 - 1, sender=acct)
        s.engine_admin.authorise_venue(s.venue, True, sender=acct)
    s.usdc.mint(s.admin, BIG, sender=s.admin)
    s.usdc.approve(s.engine, 2**256 - 1, sender=s.admin)
    return Liq(s, liquidator, lviews)


@dataclass
class Liq:
    """Helpers over one deployment (amounts WAD unless noted)."""

    s: object
    liquidator: object
    views: object

    # ---- accounts
    def deposit(self, acct, usd: int) -> None:
        """Deposit `usd` whole dollars of the stablecoin."""
        self.s.engine.deposit(self.s.usdc, usd * USD, sender=acct)

    def top_up_fund(self, usd: int) -> None:
        self.s.engine.deposit(self.s.usdc, usd * USD, self.liquidator, sender=self.s.admin)

    def trade(self, buyer, seller, name: str, size: int, price: int):
        iid = self.s.instruments[name]
        return self.s.engine.trade(buyer, seller, iid, size, price, sender=self.s.venue)

    # ---- market
    def move(self, u: int, spot: int) -> None:
        """Post underlying `u` at `spot` with its future at `spot` and its options (marks and
        the test arrays of conftest's `market`), plus collateral prices. A move beyond what one
        post allows (the gap rate, 0.75 * PSR a CAP_PERIOD) is walked in posts a full period
        apart, each at the cap, as the keeper does; the other underlyings are then posted again
        at their spots (fresh)."""
        old = self.s.oracle.underlying_state(u)[0]
        rate = gap_rate(self.s.oracle.underlying_params(u).max_deviation, PSR)
        walked = False
        while 0 < price_cap(old, rate, CAP_PERIOD) < abs(spot - old):
            old = clamp_price(spot, (old, 0), rate, CAP_PERIOD)
            self._post_at(u, old)
            walked = True
        self._post_at(u, spot)
        for other in (BTC, ETH, SPAN) if walked else ():
            if other != u:
                self._post_at(other, self.s.oracle.underlying_state(other)[0])

    def _post_at(self, u: int, spot: int) -> None:
        tag = {BTC: "btc", ETH: "eth", SPAN: "span"}[u]
        s = self.s
        items = [
            s.future_item(s.instruments[f"{tag}-fut"], spot),
            s.option_item(s.instruments[f"{tag}-call"], spot // 20, self.option_ra(u, spot, 50)),
            s.option_item(s.instruments[f"{tag}-put"], spot // 20, self.option_ra(u, spot, -50)),
        ]
        assets = []
        if u == ETH:
            assets.append((s.weth.address, spot))
        if u == BTC:
            assets.append((s.wbtc.address, spot))
        s.post([(u, spot, PSR)], items, assets)

    def option_ra(self, u: int, spot: int, delta_pct: int) -> list[int]:
        """A long option's array on the grid: delta `delta_pct` % of the future's array plus a
        convexity gain of 10 % of its size (a long option gains from large moves)."""
        out = []
        for c in self.s.grids[u]:
            lin = spot * PSR // WAD * c // WAD
            out.append(lin * delta_pct // 100 + abs(lin) // 10)
        return out

    def refresh(self) -> None:
        """Re-post every underlying at its current spot (fresh data)."""
        for u in (BTC, ETH, SPAN):
            spot, _psr, _ts = self.s.oracle.underlying_state(u)
            self._post_at(u, spot)

    # ---- state
    def state(self, acct):
        """(equity, IM, MM, pending) with the pending socialisation charge deducted."""
        st = self.s.engine.account_state(acct)
        return st.equity, st.initial_margin, st.maintenance_margin, st.pending_charge

    def health(self, acct) -> int:
        eq, _im, mm, _p = self.state(acct)
        return eq - mm

    def params(self) -> LiquidationParams:
        lq = self.liquidator
        return LiquidationParams(
            im_factor=self.s.engine.im_factor(),
            penalty_rate=lq.penalty_rate(),
            liquidator_share=lq.liquidator_share(),
            min_fraction=lq.min_fraction(),
            min_remaining_mm=lq.min_remaining_mm(),
            collateral_discount=lq.collateral_discount(),
            fund_share=lq.fund_share(),
        )

    def account(self, acct) -> AccountInt:
        """The reference account of `acct`: cash, positions in engine order, collateral keyed by
        vault asset index."""
        e = self.s.engine
        ids, sizes = e.positions_of(acct)
        coll = {}
        for token in (self.s.weth, self.s.wbtc):
            amount = e.collateral(token, acct)
            if amount:
                coll[e.asset_index(token) - 1] = amount
        return AccountInt(e.cash(acct), dict(zip(ids, sizes, strict=True)), coll, e.vm_basis(acct))

    def market_int(self, *accounts: AccountInt) -> MarketInt:
        """Oracle state of every instrument the accounts hold, as the reference market."""
        o, e, ov = self.s.oracle, self.s.engine, self.s.oracle_views
        ins, unds = {}, {}
        for a in accounts:
            for j in a.positions:
                if j in ins:
                    continue
                mark, exp, _ts, entries = ov.risk_array(j)
                _serial, kind, u, _expiry = id_fields(j)
                ins[j] = InstrumentInt(u, Kind(kind), mark, exp, tuple(entries))
                if u not in unds:
                    spot, psr, _t = o.underlying_state(u)
                    lin = tuple(scenario_lin_wad(self.s.grids[u], psr))
                    unds[u] = UnderlyingInt(
                        spot, SOM_RATE, self.s.n_scenarios[u], lin, o.funding_index(u)
                    )
        colls = {}
        now = self.s.now()
        for token, dec in ((self.s.weth, 18), (self.s.wbtc, 8)):
            price, t = ov.asset_price(token)
            if t == 0 or t + o.max_age() < now:
                price = 0  # a liquidation values collateral without a fresh price at zero
            # linked (a spot leg of its underlying's scan) or not
            und = self.s.engine_admin.asset_underlying(token) or None
            colls[e.asset_index(token) - 1] = CollateralInt(price, e.asset_haircut(token), dec, und)
        return MarketInt(ins, unds, colls)

    def ledger(self, instruments) -> LossLedger:
        """Fund cash, open interest and loss indices of the given instruments."""
        e, lq = self.s.engine, self.liquidator
        oi = {j: e.open_interest(j) for j in instruments}
        index = {}
        for j in instruments:
            w = lq.loss_index(j)
            index[j] = (w >> 128, w & (2**128 - 1))
        return LossLedger(
            fund=e.cash(lq),
            open_interest=oi,
            index=index,
            bad_debt=lq.bad_debt(),
            fund_payouts=lq.fund_payouts(),
            socialised=lq.socialised(),
        )

    def check_bad_debt_split(self) -> None:
        lq = self.liquidator
        assert lq.fund_payouts() + lq.socialised() == lq.bad_debt()


def reference(liq, account, liquidator_acct, max_fraction=WAD):
    """The reference liquidation of the chain's current state, pending socialisation charges of
    both accounts realised first (paid to the fund), as `Liquidator.liquidate` does."""
    a = liq.account(account)
    lacct = liq.account(liquidator_acct)
    pa = liq.liquidator.pending_charge(account)
    pl = liq.liquidator.pending_charge(liquidator_acct)
    a = AccountInt(a.cash - pa, a.positions, a.collateral, a.vm_basis)
    lacct = AccountInt(lacct.cash - pl, lacct.positions, lacct.collateral, lacct.vm_basis)
    market = liq.market_int(a, lacct)
    b = liq.ledger(set(a.positions) | set(lacct.positions))
    ledger = LossLedger(
        b.fund + pa + pl, b.open_interest, b.index, b.bad_debt, b.fund_payouts, b.socialised
    )
    return a, lacct, ref_liquidate(a, lacct, market, liq.params(), ledger, max_fraction)


def assert_matches(liq, account, liquidator_acct, r):
    """The chain's state after a liquidation equals the reference result `r`."""
    a = liq.account(account)
    lacct = liq.account(liquidator_acct)
    assert a.cash == r.account.cash
    assert dict(a.positions) == dict(r.account.positions)
    assert dict(a.collateral) == dict(r.account.collateral)
    assert a.vm_basis == r.account.vm_basis
    assert lacct.cash == r.liquidator.cash
    assert lacct.vm_basis == r.liquidator.vm_basis
    assert dict(lacct.positions) == dict(r.liquidator.positions)
    assert dict(lacct.collateral) == dict(r.liquidator.collateral)
    ledger = liq.ledger(set(r.taken))
    assert ledger.fund == r.ledger.fund
    assert dict(ledger.open_interest) == {j: r.ledger.open_interest[j] for j in r.taken}
    assert dict(ledger.index) == {j: r.ledger.index.get(j, (0, 0)) for j in r.taken}
    assert (ledger.bad_debt, ledger.fund_payouts, ledger.socialised) == (
        r.ledger.bad_debt,
        r.ledger.fund_payouts,
        r.ledger.socialised,
    )


def spot_of(s, u) -> int:
    return s.oracle.underlying_state(u)[0]


__all__ = [
    "BIG",
    "Liq",
    "SPOTS",
    "assert_matches",
    "bystander",
    "hedger",
    "liq",
    "liquidator",
    "liquidator_account",
    "lviews",
    "reference",
    "spot_of",
]
