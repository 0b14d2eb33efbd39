"""Gas benchmark of the on-chain core: `ape run bench_gas`.

Deploys RiskOracle, MarginEngine and MarginViews with mock tokens on the local anvil, lists one
underlying on the 35-scenario crypto grid and 50 options + 50 futures, and measures: the margin
check (`account_state` sent as a transaction: gas used minus the 21,000 intrinsic gas and
calldata; estimateGas in the note) at 1, 4, 16 and 32 positions; a trade and margin-checked
withdrawals at 16 and 32 positions; posting 1 and 50 instruments (options with packed arrays,
futures with arrays computed on-chain), per instrument, as updates in which every storage word of
every posted instrument changes (checked: an unchanged word would cost 2,200 gas instead of
5,000). Prints a markdown table and writes it to docs/benchmarks.md (section "Gas").
"""

from __future__ import annotations

from scripts import _anvil

_anvil.install()  # before ape connects: anvil without --steps-tracing

import click  # noqa: E402
from ape import accounts, chain  # noqa: E402

from bench.doc import write_section  # noqa: E402
from offchain.codec import pack_entries, pack_post  # noqa: E402
from offchain.fixed_point import WAD, encode_risk_array  # noqa: E402
from scripts._bench_setup import PSR, SPOT, deploy_bench_market  # noqa: E402
from scripts._common import ScriptCommand  # noqa: E402


def _calldata_gas(data: bytes) -> int:
    return sum(4 if b == 0 else 16 for b in data)


def _option_item(iid: int, mark: int, coeffs: list[int], k: int) -> tuple:
    # a realistic-looking option array: convex in the move, of the order of spot * psr, losing
    # less than the mark (SPOT // 4: the oracle bounds a long option's loss by its premium)
    ra = [(SPOT // (4 + k % 5)) * c // WAD + abs(c) * SPOT // (40 * WAD) for c in coeffs]
    e, entries = encode_risk_array(ra)
    return (iid, mark, e, pack_entries(entries))


@click.command(cls=ScriptCommand)
def cli():
    admin, keeper, venue, usdc, oracle, engine, coeffs, opts, futs, client, perp = (
        deploy_bench_market(50)
    )
    trader, maker = (accounts.test_accounts[i] for i in (4, 5))

    def post(items, unds=()):
        # 100 s between posts: the futures below move 1 % a post, which the oracle's cap (the
        # gap rate 0.75 * PSR = 12 % per 900 s, linear in the time since the previous post)
        # allows after 75 s
        chain.pending_timestamp = chain.blocks.head.timestamp + 100
        chain.mine()
        ts = chain.blocks.head.timestamp
        return oracle.post(ts, list(unds), *pack_post(items), [], sender=keeper)

    def words(ids):
        return {i: [oracle.instrument_word(i, k) for k in range(3)] for i in ids}

    def timed_post(items, unds=()):
        """Post, checking that every storage word of every instrument changes: an unchanged
        word costs 2,200 gas instead of 5,000 and would flatter the benchmark."""
        ids = [item[0] for item in items]
        before = words(ids)
        tx = post(items, unds)
        after = words(ids)
        for i in ids:
            same = [k for k in range(3) if before[i][k] == after[i][k]]
            assert not same, f"instrument {i}: words {same} unchanged, the benchmark is not fair"
        return tx

    def fut(i, pct):
        return (i, SPOT * pct // 100, 0, [])

    rows = []
    # first posts (zero -> non-zero slots) set the stage; the benchmark posts are updates
    post([_option_item(i, SPOT // 4, coeffs, k) for k, i in enumerate(opts)], [(1, SPOT, PSR)])
    post([fut(i, 100) for i in futs])
    g1 = timed_post([_option_item(opts[0], SPOT // 4 + WAD, coeffs, 2)]).gas_used
    g50 = timed_post([_option_item(i, SPOT // 4 + WAD, coeffs, k + 1) for k, i in enumerate(opts)])
    # futures move by 1 %, enough to change every entry word (a 1-USD move would leave most
    # int16 entries as they were)
    f1 = timed_post([fut(futs[0], 101)]).gas_used
    f50 = timed_post([fut(i, 102) for i in futs])
    rows.append(("post 1 option (35 entries, 3 slots)", g1, "tx total"))
    rows.append(("post 50 options, per instrument", g50.gas_used // 50, "tx total / 50"))
    rows.append(("post 1 future (array computed on-chain)", f1, "tx total"))
    rows.append(("post 50 futures, per instrument", f50.gas_used // 50, "tx total / 50"))
    mixed = [_option_item(i, SPOT // 4 + 2 * WAD, coeffs, k) for k, i in enumerate(opts[:25])]
    mixed += [fut(i, 103) for i in futs[:25]]
    gm = timed_post(mixed, [(1, SPOT + WAD, PSR)])
    rows.append(("post 25 options + 25 futures + spot, per instrument", gm.gas_used // 50, ""))
    # the spot appends an observation (one new slot): its share per option
    opts_spot = [_option_item(i, SPOT // 4 + 3 * WAD, coeffs, k + 2) for k, i in enumerate(opts)]
    gs = timed_post(opts_spot, [(1, SPOT + 2 * WAD, PSR)])
    rows.append(("post 50 options + spot, per instrument", gs.gas_used // 50, "tx total / 50"))

    for acct in (trader, maker):
        usdc.mint(acct, 10**15, sender=admin)
        usdc.approve(engine, 2**256 - 1, sender=acct)
        engine.deposit(usdc, 10**15, sender=acct)
        client.engine_admin.authorise_venue(venue, True, sender=acct)
    book = [x for pair in zip(opts[:16], futs[:16], strict=True) for x in pair]
    held = 0
    margin = {}
    trade16 = None
    withdrawals = {}
    for n in (1, 4, 16, 32):
        while held < n:
            iid = book[held]
            tx = engine.trade(trader, maker, iid, WAD + held, SPOT // 20, sender=venue)
            if held == 15:
                trade16 = tx.gas_used
            held += 1
        est = engine.account_state.estimate_gas_cost(trader)
        data = engine.account_state.encode_input(trader)
        # the view sent as a transaction: gas actually used, minus intrinsic and calldata
        used = engine.account_state.transact(trader, sender=maker).gas_used
        margin[n] = (est, used - 21_000 - _calldata_gas(bytes.fromhex(data.hex()[2:])))
        if n in (16, 32):
            withdrawals[n] = engine.withdraw(usdc, 10**6, sender=trader).gas_used

    # the same 32-position account holding linked WBTC (priced, so its spot leg enters the
    # BTC scan): the leg's cost is the difference
    def margin_check():
        data = engine.account_state.encode_input(trader)
        used = engine.account_state.transact(trader, sender=maker).gas_used
        return used - 21_000 - _calldata_gas(bytes.fromhex(data.hex()[2:]))

    without_leg = margin_check()
    wbtc = client.tokens["WBTC"]
    wbtc.mint(trader, 10**8, sender=admin)
    wbtc.approve(engine, 2**256 - 1, sender=trader)
    engine.deposit(wbtc, 10**8, sender=trader)
    chain.pending_timestamp = chain.blocks.head.timestamp + 100
    chain.mine()
    oracle.post(chain.blocks.head.timestamp, [], [], [], [(wbtc, SPOT)], sender=keeper)
    with_leg = margin_check()
    for n, (est, exe) in margin.items():
        rows.append((f"account_state, {n} positions (35 scenarios)", exe, f"estimateGas {est:,}"))
    per = (margin[32][1] - margin[16][1]) // 16
    rows.append(("margin check, marginal cost per position (16 -> 32)", per, ""))
    rows.append(
        (
            "margin check, + a linked collateral (price, balance, spot leg; 32 positions)",
            with_leg - without_leg,
            "",
        )
    )
    rows.append(("trade opening the 16th position (both sides checked)", trade16, "tx total"))
    for n, gas in withdrawals.items():
        rows.append((f"withdraw with {n} positions held (margin-checked)", gas, "tx total"))

    # perps: a second pair of accounts, 16 positions with the BTC perp among them (8 calls,
    # 7 futures and the perp), funding accruing for an hour since its last post
    hedger, dealer = (accounts.test_accounts[i] for i in (6, 7))
    for acct in (hedger, dealer):
        usdc.mint(acct, 10**15, sender=admin)
        usdc.approve(engine, 2**256 - 1, sender=acct)
        engine.deposit(usdc, 10**15, sender=acct)
        client.engine_admin.authorise_venue(venue, True, sender=acct)
    post([fut(perp, 100)])
    oracle.post_funding([(1, WAD // 10_000)], sender=keeper)
    book2 = [x for pair in zip(opts[16:24], futs[16:23] + [perp], strict=True) for x in pair]
    for k, iid in enumerate(book2):
        tx = engine.trade(hedger, dealer, iid, WAD + k, SPOT // 20, sender=venue)
    perp_trade = tx.gas_used
    chain.pending_timestamp = chain.blocks.head.timestamp + 3_600
    chain.mine()
    data = engine.account_state.encode_input(hedger)
    used = engine.account_state.transact(hedger, sender=maker).gas_used
    rows.append(
        (
            "account_state, 16 positions with a perp (funding accruing)",
            used - 21_000 - _calldata_gas(bytes.fromhex(data.hex()[2:])),
            f"estimateGas {engine.account_state.estimate_gas_cost(hedger):,}",
        )
    )
    rows.append(("trade of a perp opening the 16th position (both sides)", perp_trade, "tx total"))
    realised = engine.settle(hedger, sender=hedger)
    rows.append(
        (
            "settle: variation margin and funding realised, 16 positions",
            realised.gas_used,
            "tx total",
        )
    )
    funding = oracle.post_funding([(1, WAD // 5_000)], sender=keeper)
    rows.append(("post_funding, 1 underlying", funding.gas_used, "tx total"))

    # settlement at the TWAP: a put expiring in two hours, spot posted every 10 minutes until a
    # post after expiry; two binary searches over the observations
    now = chain.blocks.head.timestamp
    put = oracle.list_instrument(1, 2, SPOT, now + 7_200, WAD, sender=admin).return_value
    for k in range(13):
        post([], [(1, SPOT + k * WAD, PSR)])
        chain.pending_timestamp = chain.blocks.head.timestamp + 600
        chain.mine()
    post([], [(1, SPOT, PSR)])
    n_obs = client.oracle_views.observation_count(1)
    settle = oracle.settle_expired(put, sender=venue)
    rows.append(
        ("settle_expired (TWAP + payoff on-chain)", settle.gas_used, f"{n_obs} observations")
    )
    # the most a settlement can cost: a spot every second of the window, so it integrates
    # TWAP_WINDOW + 1 observations (timestamps strictly increase: there cannot be more)
    first = chain.blocks.head.timestamp + 1
    dense = oracle.list_instrument(1, 2, SPOT, first + 1_800, WAD, sender=admin).return_value
    for ts in range(first, first + 1_803):
        chain.pending_timestamp = ts
        oracle.post(ts, [(1, SPOT + ts % 7 * WAD, PSR)], [], [], [], sender=keeper)
    worst = oracle.settle_expired(dense, sender=venue)
    rows.append(
        ("settle_expired, a spot every second (worst case)", worst.gas_used, "1,801 in window")
    )

    table = ["| measurement | gas | note |", "| --- | ---: | --- |"]
    table += [f"| {name} | {gas:,} | {note} |" for name, gas, note in rows]
    text = "\n".join(table)
    click.echo(text)
    write_section(
        "Gas",
        "Command: `ape run bench_gas` (local anvil, Vyper 0.4.3, default optimizer). "
        "Margin check = gas used by `account_state` sent as a transaction - 21,000 intrinsic "
        "- calldata (estimateGas in the note). `account_state` runs the assembler and the scan "
        "that a trade's or a withdrawal's check runs, with collateral valued by liquidation's rule "
        "and the pending socialised charge read.\n\n" + text,
    )
