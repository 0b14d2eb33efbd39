"""The keeper against the real contracts on anvil: its off-chain margin equals the engine's, a price
shock it posts puts exactly the right accounts below MM, expired instruments get settled, a keeper
killed mid-round resumes without double posts, and two keepers racing on one round post once.

Each test opens its own keeper (state database in ``tmp_path``) on a module-wide deployment; Ape's
isolation rolls the chain back after every test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from faulty_rpc import FaultyRpcProxy
from web3 import Web3

from offchain.fixed_point import WAD, to_wad
from offchain.keeper.config import KeeperConfig
from offchain.keeper.policy import Posted, Quote
from offchain.keeper.runner import deployment_folder, open_keeper
from offchain.keeper.sources import Tick
from offchain.keeper.state import DB_NAME, StateStore
from offchain.keeper.tx import TxConfig, TxManager
from offchain.margin import settlement_cash
from offchain.oracle_bounds import CAP_PERIOD, clamp_price, gap_rate
from offchain.sdk import ROLE_KEEPER, Client, deploy_system, parse_config

HOUR = 3_600
USD = 10**6
CONFIG = {
    "grids": {"crypto-35": 1},
    "cash": {"symbol": "USDC", "decimals": 6, "deposit_cap": 10**11},
    "collateral": [
        {"symbol": "WETH", "decimals": 18, "haircut": 0.2, "deposit_cap": 10**6, "priced_by": "ETH"}
    ],
    "underlyings": [
        {
            "name": n,
            "id": i,
            "grid": "crypto-35",
            "max_deviation": 0.5,
            "max_array_ratio": 2,
        }
        for n, i in (("BTC", 1), ("ETH", 2))
    ],
    "instruments": [
        {"underlying": "BTC", "kind": "future", "expiry": 30},
        {"underlying": "BTC", "kind": "call", "strike": 60000, "expiry": 30},
        {"underlying": "BTC", "kind": "put", "strike": 55000, "expiry": 30},
        {"underlying": "BTC", "kind": "future", "expiry": 2},
        {"underlying": "ETH", "kind": "future", "expiry": 30},
        {"underlying": "ETH", "kind": "put", "strike": 2800, "expiry": 30},
    ],
    "max_age": 86_400,
}
PSR = {"BTC": 0.1, "ETH": 0.12}


def dated(config: dict, now: int) -> dict:
    """``config`` with each instrument's ``expiry`` (whole days after ``now``'s day) written as
    the date a config file gives (08:00 UTC that day)."""

    def day(n: int) -> str:
        return datetime.fromtimestamp((now // 86_400 + n) * 86_400, UTC).date().isoformat()

    return {
        **config,
        "instruments": [{**i, "expiry": day(i["expiry"])} for i in config["instruments"]],
    }


FAST = TxConfig(
    confirmations=1,
    poll_interval=0.01,
    stuck_after_blocks=1_000,
    stuck_after_seconds=3_600,
    rpc_backoff=0.01,
)


@pytest.fixture(scope="module")
def sysm(project, chain, admin, keeper, venue, accounts):
    cfg = parse_config(dated(CONFIG, chain.blocks.head.timestamp))
    return deploy_system(project, chain, admin, cfg, keepers=[keeper], venues=[venue])


def by_kind(c: Client, und: str, kind: str, strike: int | None = None, near: bool = False) -> int:
    """An instrument id by underlying, kind ("F", "C", "P"), strike, nearest or farthest expiry."""
    found = []
    for name, iid in c.deployment.instruments.items():
        parts = name.split("-")
        if parts[0] == und and parts[2] == kind and (strike is None or parts[3] == str(strike)):
            found.append((iid >> 56, iid))
    found.sort()
    return found[0][1] if near else found[-1][1]


def keeper_for(c, acct, tmp_path, **kw):
    return open_keeper(
        c,
        acct,
        str(tmp_path),
        tx_config=FAST,
        psr=lambda u, ts: PSR[u],
        cfg=kw.pop("cfg", KeeperConfig(heartbeat=12 * HOUR, heartbeat_margin=HOUR)),
        **kw,
    )


def advance(chain, seconds: int) -> int:
    ts = chain.blocks.head.timestamp + seconds
    chain.mine(timestamp=ts)
    return ts


def tick(ts: int, btc: float, eth: float) -> Tick:
    return Tick(ts, {"BTC": btc, "ETH": eth}, {"BTC": 0.6, "ETH": 0.8})


def open_books(c, admin, venue, trader, maker, thin, chain):
    """trader: long BTC future + short BTC call (covered call); thin: thinly funded long BTC
    future and short ETH put; maker: the other side of everything, well funded."""
    market = c.market_int()
    for acct, usd in ((trader, 60_000), (maker, 5_000_000), (thin, 20_000)):
        chain.set_balance(acct.address, 10**21)
        c.fund(admin, acct, "cash", usd * USD)
        c.deposit(acct, "cash", usd * USD)
        c.authorise(acct, venue)
    fut, call = by_kind(c, "BTC", "F"), by_kind(c, "BTC", "C")
    eput = by_kind(c, "ETH", "P")
    mark = market.market.instruments
    c.trade(venue, trader, maker, fut, 2 * WAD, mark[fut].mark)
    c.trade(venue, maker, trader, call, 2 * WAD, mark[call].mark)
    c.trade(venue, thin, maker, fut, WAD, mark[fut].mark)
    c.trade(venue, maker, thin, eput, 10 * WAD, mark[eput].mark)


def test_off_chain_margin_equals_the_engine(
    sysm, chain, admin, keeper, venue, trader, maker, accounts, tmp_path
):
    c = sysm
    k = keeper_for(c, keeper, tmp_path)
    report = k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    assert report.batches == 1 and len(report.posted) == 9  # 2 spots, 1 price, 6 instruments
    open_books(c, admin, venue, trader, maker, accounts[7], chain)
    report = k.round(tick(advance(chain, HOUR), 59_000.0, 2_950.0))
    assert set(report.health) == {trader.address, maker.address, accounts[7].address}
    for addr, (eq, im, mm) in report.health.items():
        state = c.account_state(addr)
        assert (eq, im, mm) == (state.equity, state.initial_margin, state.maintenance_margin)
        ref = k.last_market.account_margin(k.accounts[addr])
        worst = {int(r.underlying): int(r.worst_scenario) for r in c.worst_scenarios(addr)}
        assert worst == {u: r.worst_scenario for u, r in ref.per_underlying.items()}
    k.close()


def test_a_shock_puts_exactly_the_engine_s_under_margin_accounts_below_mm(
    sysm, chain, admin, keeper, venue, trader, maker, accounts, tmp_path
):
    c = sysm
    k = keeper_for(c, keeper, tmp_path)
    k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    open_books(c, admin, venue, trader, maker, accounts[7], chain)
    seen_below = set()
    for btc, eth in ((54_000.0, 2_700.0), (48_000.0, 2_300.0), (42_000.0, 1_900.0)):
        report = k.round(tick(advance(chain, HOUR), btc, eth))
        engine_below = {a for a in report.health if c.account_state(a).health < 0}
        assert set(report.below_mm) == engine_below
        seen_below |= engine_below
    assert accounts[7].address in seen_below and maker.address not in seen_below
    k.close()


def test_expired_instruments_are_settled(
    sysm, chain, admin, keeper, venue, trader, maker, accounts, tmp_path
):
    c = sysm
    k = keeper_for(c, keeper, tmp_path)
    k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    near = by_kind(c, "BTC", "F", near=True)
    for acct in (trader, maker):
        chain.set_balance(acct.address, 10**21)
        c.fund(admin, acct, "cash", 100_000 * USD)
        c.deposit(acct, "cash", 100_000 * USD)
        c.authorise(acct, venue)
    c.trade(venue, trader, maker, near, WAD, 60_000 * WAD)
    cash_before = {a.address: int(c.engine.cash(a)) for a in (trader, maker)}
    expiry = near >> 56
    ts = expiry + HOUR
    chain.mine(timestamp=ts)
    report = k.round(tick(ts, 61_000.0, 3_000.0))
    assert report.settlement_prices == [k.names[near]]
    # the TWAP of the 30 minutes before expiry: the spot posted in the first round, not the
    # tick's 61,000 posted after expiry
    mark, e, _, _ = c.oracle_views.risk_array(near)
    assert (mark, e) == (to_wad(60_000.0), 255)
    assert sorted(a for a, _ in report.settled) == sorted([trader.address, maker.address])
    for acct, q in ((trader, WAD), (maker, -WAD)):
        assert c.positions(acct) == {}
        assert int(c.engine.cash(acct)) == cash_before[acct.address] + settlement_cash(q, mark)
    again = k.round(tick(advance(chain, HOUR), 61_000.0, 3_000.0))
    assert again.settlement_prices == [] and again.settled == []
    k.close()


def posted_items(c: Client, ts: int) -> list[int]:
    """Instrument ids in every Posted event for data timestamp ``ts``."""
    head = c.chain_manager.provider.web3.eth.block_number
    batches = c.posted_batches(c.deployment.block, head)
    return [i for b in batches if b.timestamp == ts for i in b.instruments]


class Killed(RuntimeError):
    pass


def test_a_keeper_killed_mid_round_resumes_without_double_posts(sysm, chain, keeper, tmp_path):
    c = sysm
    cfg = KeeperConfig(
        block_gas_limit=700_000, gas_fraction=0.5, heartbeat=12 * HOUR, heartbeat_margin=HOUR
    )
    k = keeper_for(c, keeper, tmp_path, cfg=cfg)
    real_send = k.sender.tx.send

    def die_on_second(key, *args, **kw):
        if key.endswith(":1"):
            raise Killed(key)  # the process dies after the first batch was sent
        return real_send(key, *args, **kw)

    k.sender.tx.send = die_on_second
    w3 = chain.provider.web3
    nonce0 = w3.eth.get_transaction_count(keeper.address)
    ts = advance(chain, 60)
    with pytest.raises(Killed):
        k.round(tick(ts, 60_000.0, 3_000.0))
    k.close()
    assert w3.eth.get_transaction_count(keeper.address) == nonce0 + 1  # one batch landed

    k2 = keeper_for(c, keeper, tmp_path, cfg=cfg)
    plan = k2.runner_state.plan
    assert plan is not None and plan.ts == ts and len(plan.batches) > 1
    k2.round(tick(ts, 60_000.0, 3_000.0))  # the same tick again after the restart
    items = posted_items(c, ts)
    assert len(items) == len(set(items)) == 6  # every instrument once
    sent = w3.eth.get_transaction_count(keeper.address) - nonce0
    keys = [key for key in k2.state.ledger if key.startswith(f"post:{ts}:")]
    assert sent == len(keys) == len(plan.batches)  # one transaction per key, none twice
    assert k2.runner_state.plan is None and k2.runner_state.last_ts == ts
    k2.close()


def test_two_keepers_racing_on_one_round_post_once(sysm, chain, admin, keeper, outsider, tmp_path):
    c = sysm
    c.oracle.grant_role(outsider, ROLE_KEEPER, sender=admin)
    a = keeper_for(c, keeper, tmp_path / "a")
    b = keeper_for(c, outsider, tmp_path / "b")
    ts = advance(chain, 60)
    ra = a.round(tick(ts, 60_000.0, 3_000.0))
    rb = b.round(tick(ts, 60_000.0, 3_000.0))
    assert ra.batches == 1 and rb.batches == 0 and rb.rejected == [f"post:{ts}:0"]
    assert sorted(posted_items(c, ts)) == sorted(set(posted_items(c, ts)))
    a.close()
    b.close()


def test_the_oracle_refuses_the_second_of_two_racing_posts(
    sysm, chain, admin, keeper, outsider, tmp_path
):
    """Both posts of the same timestamp in the pool at once (automine off): one lands, the
    other reverts on-chain with "oracle: not newer"."""
    c = sysm
    c.oracle.grant_role(outsider, ROLE_KEEPER, sender=admin)
    ts = advance(chain, 60)
    data = c.post_calldata(ts, [(1, 60_000 * WAD, to_wad(0.1))], [], [])
    w3 = Web3(Web3.HTTPProvider(chain.provider.uri))
    managers = []
    for who in (keeper, outsider):
        store = StateStore(tmp_path, who.address)
        managers.append((TxManager(w3, who, store, store.load(), FAST), store))
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        for m, _ in managers:
            m.send(f"post:{ts}:0", c.oracle.address, data=data, gas=300_000)
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    statuses = sorted(str(m.wait(f"post:{ts}:0", 30).status) for m, _ in managers)
    assert statuses == ["confirmed", "reverted"]
    assert c.oracle.underlying_state(1)[2] == ts
    for _, store in managers:
        store.close()


def test_rpc_faults_between_keeper_and_node_lose_nothing_and_double_nothing(
    sysm, chain, keeper, tmp_path
):
    """Every second send, receipt and nonce request of the keeper's transaction manager is
    answered 502 after the node acted on it (the worst case: a send that landed but looks
    failed)."""
    c = sysm
    methods = frozenset(
        {"eth_sendRawTransaction", "eth_getTransactionReceipt", "eth_getTransactionCount"}
    )
    proxy = FaultyRpcProxy(
        chain.provider.uri, fail_every=2, mode="lost", only_methods=methods
    ).start()
    try:
        k = keeper_for(c, keeper, tmp_path, rpc_url=proxy.url)
        w3 = chain.provider.web3
        nonce0 = w3.eth.get_transaction_count(keeper.address)
        stamps = []
        for btc, eth in ((60_000.0, 3_000.0), (61_000.0, 3_050.0), (62_000.0, 3_100.0)):
            ts = advance(chain, HOUR)
            stamps.append(ts)
            report = k.round(tick(ts, btc, eth))
            assert report.batches == 1
            items = posted_items(c, ts)
            assert len(items) == len(set(items)) == 6
        assert proxy.faults >= 3
        keys = [key for key in k.state.ledger if key.startswith("post:")]
        assert w3.eth.get_transaction_count(keeper.address) - nonce0 == len(keys) == 3
        assert c.oracle.underlying_state(1)[2] == stamps[-1]
        k.close()
    finally:
        proxy.stop()


def test_the_same_key_keeps_one_state_per_deployment(sysm, chain, keeper, tmp_path):
    """A key reused on another network or deployment must not inherit the first one's posts."""
    c = sysm
    k = keeper_for(c, keeper, tmp_path)
    report = k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    k.close()
    assert report.posted
    folder = tmp_path / deployment_folder(chain.chain_id, c.oracle.address)
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [DB_NAME]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
    assert deployment_folder(5, "0xAbC") != deployment_folder(1, "0xAbC") == "1-0xabc"


def test_a_keeper_upgraded_from_json_state_goes_on_without_double_posts(
    sysm, chain, keeper, tmp_path
):
    """State left by a keeper that kept JSON files: the next start migrates it and the same
    tick is not posted again; the next one is."""
    c = sysm
    k = keeper_for(c, keeper, tmp_path)
    ts = advance(chain, 60)
    assert k.round(tick(ts, 60_000.0, 3_000.0)).batches == 1
    k.close()
    folder = tmp_path / deployment_folder(chain.chain_id, c.oracle.address)
    with StateStore(folder, keeper.address) as store:  # the same state as JSON files
        legacy, runner = store.load(), store.load_runner()
    (folder / f"{keeper.address}.json").write_text(json.dumps(legacy.to_json()))
    (folder / f"{keeper.address}.runner.json").write_text(json.dumps(runner.to_json()))
    for p in folder.glob(DB_NAME + "*"):
        p.unlink()
    w3 = chain.provider.web3
    nonce = w3.eth.get_transaction_count(keeper.address)
    k2 = keeper_for(c, keeper, tmp_path)
    assert k2.runner_state.last_ts == ts and k2.state.ledger.keys() == legacy.ledger.keys()
    assert k2.round(tick(ts, 60_000.0, 3_000.0)).batches == 0
    assert w3.eth.get_transaction_count(keeper.address) == nonce
    assert k2.round(tick(advance(chain, HOUR), 61_000.0, 3_050.0)).batches == 1
    k2.close()
    assert (folder / f"{keeper.address}.json.migrated").exists()
    assert not (folder / f"{keeper.address}.json").exists()


def test_dry_run_reports_and_sends_nothing(sysm, chain, keeper, tmp_path):
    c = sysm
    k = open_keeper(c, keeper, str(tmp_path), dry_run=True, psr=lambda u, ts: PSR[u])
    nonce = chain.provider.web3.eth.get_transaction_count(keeper.address)
    report = k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    assert len(report.posted) == 9 and report.gas_used == 0
    assert chain.provider.web3.eth.get_transaction_count(keeper.address) == nonce
    assert list(tmp_path.iterdir()) == []
    k.close()


def test_a_shock_gets_every_account_below_mm_liquidated_within_the_round(
    sysm, chain, admin, keeper, venue, trader, maker, accounts, tmp_path
):
    c = sysm
    chain.set_balance(keeper.address, 10**21)
    c.fund(admin, keeper, "cash", 5_000_000 * USD)  # the keeper liquidates into its own account
    c.deposit(keeper, "cash", 5_000_000 * USD)
    k = keeper_for(c, keeper, tmp_path)
    k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    thin = accounts[7]
    open_books(c, admin, venue, trader, maker, thin, chain)
    liquidated = set()
    for btc, eth in ((54_000.0, 2_700.0), (48_000.0, 2_300.0), (42_000.0, 1_900.0)):
        ts = advance(chain, HOUR)
        report = k.round(tick(ts, btc, eth))
        post_block = k.sender.tx.record(f"post:{ts}:0").block_number
        assert set(report.liquidations) == set(report.below_mm)
        for n, addr in enumerate(report.below_mm):
            # worst first, one block each, right after the post that revealed it
            assert k.sender.tx.record(f"liq:{ts}:{addr}").block_number == post_block + 1 + n
        liquidated |= set(report.liquidations)
        for addr in k.known_accounts:  # nobody is left below MM after the round
            state = c.account_state(addr)
            assert state.health >= 0
    assert thin.address in liquidated and maker.address not in liquidated
    k.close()


def fund_keeper(c, admin, keeper, chain) -> None:
    """The keeper liquidates into its own margin account, which must hold cash."""
    chain.set_balance(keeper.address, 10**21)
    c.fund(admin, keeper, "cash", 5_000_000 * USD)
    c.deposit(keeper, "cash", 5_000_000 * USD)


def open_account(c, admin, venue, chain, acct, usd: int, weth: int = 0) -> None:
    chain.set_balance(acct.address, 10**21)
    c.fund(admin, acct, "cash", usd * USD)
    c.deposit(acct, "cash", usd * USD)
    if weth:
        c.fund(admin, acct, "WETH", weth * WAD)
        c.deposit(acct, "WETH", weth * WAD)
    c.authorise(acct, venue)


def test_a_settled_put_writer_owing_cash_against_weth_is_liquidated_when_eth_falls(
    sysm, chain, admin, keeper, venue, maker, accounts, tmp_path
):
    """25 ETH puts (strike 3,000) written against 10 WETH and 1,000 USD settle in the money at
    2,400 (ETH's spot over the 30 minutes before expiry): the writer has no positions, owes
    cash, and its WETH covers it. ETH then falls to 1,800 (still covered) and 1,300: equity goes
    negative, and the keeper liquidates it in that very round."""
    c, writer = sysm, accounts[7]
    fund_keeper(c, admin, keeper, chain)
    expiry = by_kind(c, "BTC", "F", near=True) >> 56
    tx = c.oracle.list_instrument(2, 2, 3_000 * WAD, expiry, WAD, sender=admin)
    put = int(tx.events.filter(c.oracle.InstrumentListed)[0].instrument)
    c.engine_admin.set_instrument_limits(put, 1_000 * WAD, 100 * WAD, sender=admin)
    k = keeper_for(c, keeper, tmp_path)
    k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    open_account(c, admin, venue, chain, writer, 1_000, weth=10)
    open_account(c, admin, venue, chain, maker, 1_000_000)
    premium = c.market_int([put]).market.instruments[put].mark
    c.trade(venue, maker, writer, put, 25 * WAD, premium)

    # ETH at 2,400 from before the settlement window on, posted by a second keeper outside a
    # round (the first one's sweep would meet the live puts at 2,400)
    # (walked there at the gap rate, a post a CAP_PERIOD apart)
    before_window = expiry - 1_800 - 60
    c.oracle.grant_role(accounts[8], ROLE_KEEPER, sender=admin)
    spot, psr, _ts = (int(x) for x in c.oracle.underlying_state(2))
    rate = gap_rate(int(c.oracle.underlying_params(2).max_deviation), psr)
    walk = [spot]
    while walk[-1] != to_wad(2_400.0):
        walk.append(clamp_price(to_wad(2_400.0), (walk[-1], 0), rate, CAP_PERIOD))
    for n, x in enumerate(walk[1:]):
        t = before_window - CAP_PERIOD * (len(walk) - 2 - n)
        chain.mine(timestamp=t)
        c.post(accounts[8], t, [(2, x, psr)], [], [])
    # the first keeper clamps its spots from its own record of the chain: it learns the spot
    k.state.posted["U:ETH"] = Posted(Quote(to_wad(2_400.0), (psr,)), before_window)
    chain.mine(timestamp=expiry + HOUR)
    report = k.round(tick(expiry + HOUR, 60_000.0, 2_400.0))
    assert c.oracle_views.risk_array(put)[0] == 600 * WAD
    assert (writer.address, k.names[put]) in report.settled
    cash, positions, weth, _basis = c.account_raw(writer)
    assert positions == {} and cash < 0 < weth[c.tokens["WETH"].address]
    assert c.account_state(writer).health >= 0 and writer.address not in report.below_mm

    report = k.round(tick(advance(chain, HOUR), 60_000.0, 1_800.0))
    assert c.account_state(writer).health >= 0 and report.liquidations == []
    report = k.round(tick(advance(chain, HOUR), 60_000.0, 1_300.0))
    assert report.below_mm == [writer.address] and report.liquidations == [writer.address]
    assert c.account_state(writer).health >= 0
    k.close()


def test_a_book_whose_hedge_settles_is_liquidated_in_the_same_round(
    sysm, chain, admin, keeper, venue, maker, accounts, tmp_path, caplog
):
    """A BTC calendar (long the 2-day future, short the 30-day) margins at almost nothing on an
    underlying without basis and roll window (with them it would carry the naked leg's margin
    before the near leg expires: test_differential). Every mark is older than max_age when the
    near leg expires: the round posts, settles the near leg, then finds the naked short below MM
    and liquidates it, and no liquidation meets a stale expired mark on the way."""
    c, hedged = sysm, accounts[7]
    p = c.oracle.underlying_params(1)
    c.oracle.set_underlying_params(
        1, p.psr_min, p.psr_max, p.som_rate, p.max_deviation, p.max_array_ratio, 0, 0, sender=admin
    )
    fund_keeper(c, admin, keeper, chain)
    k = keeper_for(c, keeper, tmp_path)
    k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    open_account(c, admin, venue, chain, hedged, 20_000)
    open_account(c, admin, venue, chain, maker, 1_000_000)
    near, far = by_kind(c, "BTC", "F", near=True), by_kind(c, "BTC", "F")
    marks = c.market_int([near, far]).market.instruments
    c.trade(venue, hedged, maker, near, WAD, marks[near].mark)
    c.trade(venue, maker, hedged, far, WAD, marks[far].mark)
    c.withdraw(hedged, "cash", 17_000 * USD)  # the calendar needs far less than a naked leg

    ts = (near >> 56) + HOUR
    assert ts - c.oracle.underlying_state(1)[2] > int(c.oracle.max_age())  # every mark stale
    chain.mine(timestamp=ts)
    with caplog.at_level("INFO", logger="offchain.keeper"):
        report = k.round(tick(ts, 63_000.0, 3_000.0))
    assert report.settlement_prices == [k.names[near]]
    assert (hedged.address, k.names[near]) in report.settled
    assert report.below_mm == [hedged.address] and report.liquidations == [hedged.address]
    assert c.account_state(hedged).health >= 0
    assert not [r for r in caplog.records if "stale oracle" in r.getMessage()]
    assert not [r for r in caplog.records if "tx_would_revert" in r.getMessage()]
    k.close()


def test_after_a_wind_down_the_keeper_settles_and_liquidates_everyone_and_posts_nothing(
    sysm, chain, admin, keeper, venue, trader, maker, accounts, outsider, tmp_path
):
    """The keeper posts a crash without liquidating, then stops. After the escape delay an
    outsider winds the system down; the next round posts nothing, settles every holder at the
    last marks and liquidates the account left with negative equity on the last prices."""
    c = sysm
    fund_keeper(c, admin, keeper, chain)
    k = keeper_for(c, keeper, tmp_path, liquidate=False)
    k.round(tick(advance(chain, 60), 60_000.0, 3_000.0))
    thin = accounts[7]
    open_books(c, admin, venue, trader, maker, thin, chain)
    # the last prices twice more: the keeper catches up at the gap rate (0.75 x PSR a post)
    for btc, eth in ((54_000.0, 2_700.0), (48_000.0, 2_300.0), *[(42_000.0, 1_900.0)] * 3):
        k.round(tick(advance(chain, HOUR), btc, eth))
    k.close()
    assert c.account_state(thin).equity < 0
    advance(chain, c.escape_hatch().opens_at - chain.blocks.head.timestamp)
    c.wind_down(outsider)
    k = keeper_for(c, keeper, tmp_path)
    report = k.round(tick(advance(chain, 60), 40_000.0, 1_800.0))
    assert report.posted == [] and report.batches == 0 and report.settlement_prices == []
    assert {a for a, _ in report.settled} == {trader.address, maker.address, thin.address}
    assert report.liquidations == [thin.address]
    for acct in (trader, maker, thin, keeper):
        assert c.positions(acct) == {}
        state = c.account_state(acct)
        assert state.maintenance_margin == 0 and state.equity >= 0
    again = k.round(tick(advance(chain, HOUR), 39_000.0, 1_700.0))
    assert again.transactions == 0
    k.close()
