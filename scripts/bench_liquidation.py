"""Gas benchmark of liquidation: `ape run bench_liquidation`.

Deploys RiskOracle, MarginEngine and Liquidator on the local anvil, lists one underlying on the
35-scenario crypto grid with 16 options and 16 futures, and liquidates an account holding 1, 8,
16 and 32 of them (half futures, half options, all long, equity just above IM) after an 8 %
drop: a partial liquidation (the closed-form fraction) and, after a 30 % drop, a full one of an
insolvent account (empty fund: the loss is socialised over the instruments taken). Three
liquidators: a fresh margin account (every position it receives is a new storage slot), a
market maker that already holds every one of the 32 instruments (its position words are updated
in place, but its own margin check covers 32 positions), and a matched book that holds exactly
the account's instruments (the cheapest case: updates in place, a check over the same data).
Prints a markdown table and writes it to docs/benchmarks.md (section "Liquidation"). The
16-position partial liquidation into the matched book is also traced (anvil's
`debug_traceTransaction`, call tracer) and split into intrinsic gas, each external call the
Liquidator makes (named by its selector in the contracts' ABIs, with the calls nested in it) and
the Liquidator's own gas (section "Where the gas of a 16-position partial liquidation goes").
"""

from __future__ import annotations

from scripts import _anvil

_anvil.install()  # before ape connects: anvil without --steps-tracing

import click  # noqa: E402
from ape import accounts, chain, project  # noqa: E402

from bench.doc import write_section  # noqa: E402
from offchain.codec import pack_entries, pack_post  # noqa: E402
from offchain.fixed_point import WAD, encode_risk_array  # noqa: E402
from offchain.oracle_bounds import CAP_PERIOD, clamp_price, gap_rate, price_cap  # noqa: E402
from offchain.sdk import deploy_liquidator  # noqa: E402
from scripts._bench_setup import PSR, SPOT, deploy_bench_market  # noqa: E402
from scripts._common import ScriptCommand  # noqa: E402

SIZES = (1, 8, 16, 32)
TRACED = (16, "partial", "matched book")
TRACE_TITLE = "Where the gas of a 16-position partial liquidation goes"


def _option_item(iid: int, spot: int, coeffs: list[int], k: int) -> tuple:
    # a long call: delta ~0.5 of the future's array plus convexity (gains on large moves)
    ra = []
    for c in coeffs:
        lin = spot * PSR // WAD * c // WAD
        # a long option loses at most its premium (the oracle refuses a larger loss)
        ra.append(max(lin * (40 + k % 20) // 100 + abs(lin) // 10, -(spot // 25)))
    e, entries = encode_risk_array(ra)
    return (iid, spot // 20, e, pack_entries(entries))


def _intrinsic_gas(calldata: bytes) -> int:
    # EIP-2028 calldata prices; no access list, not a creation
    return 21_000 + sum(4 if byte == 0 else 16 for byte in calldata)


def _call_namer(contracts: list, roles: dict[str, str]):
    """A function naming a call-tracer frame `Contract.method(role, ...)`: the contract by its
    address, the method by the 4-byte selector in that contract's ABI, and each address argument
    that belongs to one of ``roles`` by its role."""
    ecosystem = chain.provider.network.ecosystem
    by_address = {}
    for contract in contracts:
        methods = {
            bytes(ecosystem.get_method_selector(abi)): abi for abi in contract.contract_type.methods
        }
        by_address[contract.address.lower()] = (contract.contract_type.name, methods)
    role_of = {address.lower(): role for address, role in roles.items()}

    def name(frame: dict) -> str:
        contract, methods = by_address.get(frame["to"].lower(), (frame["to"], {}))
        calldata = bytes.fromhex(frame.get("input", "0x")[2:])
        abi = methods.get(calldata[:4])
        if abi is None:
            return f"`{contract}` selector 0x{calldata[:4].hex()}"
        args = ecosystem.decode_calldata(abi, calldata[4:]).values()
        known = [role_of[a.lower()] for a in args if isinstance(a, str) and a.lower() in role_of]
        return f"`{contract}.{abi.name}`" + (f" ({', '.join(known)})" if known else "")

    return name


def _gas_breakdown(tx, contracts: list, roles: dict[str, str]) -> list[tuple[str, int, int]]:
    """Rows (part, depth, gas) of ``tx`` from anvil's call tracer: intrinsic gas, each call the
    entry contract makes (depth 1) with the calls nested in it (depth 2 and more, their gas
    already counted in their parent's), and the entry contract's own gas."""
    trace = chain.provider.make_request(
        "debug_traceTransaction", [tx.txn_hash, {"tracer": "callTracer"}]
    )
    total = int(trace["gasUsed"], 16)
    assert total == tx.gas_used, (total, tx.gas_used)  # the top frame counts the whole tx
    name = _call_namer(contracts, roles)
    intrinsic = _intrinsic_gas(bytes(tx.transaction.data))
    rows = [("intrinsic (21,000 + calldata)", 0, intrinsic)]

    def add(frame: dict, depth: int) -> None:
        rows.append((name(frame), depth, int(frame["gasUsed"], 16)))
        for child in frame.get("calls", []):
            add(child, depth + 1)

    for call in trace.get("calls", []):
        add(call, 1)
    called = sum(gas for _, depth, gas in rows if depth == 1)
    entry = next(c for c in contracts if c.address.lower() == trace["to"].lower())
    rows.append((f"`{entry.contract_type.name}` itself (the rest)", 0, total - intrinsic - called))
    return rows


def _breakdown_table(rows: list[tuple[str, int, int]], total: int) -> str:
    table = ["| part | gas | share |", "| --- | ---: | ---: |"]
    for part, depth, gas in rows:
        if depth > 1:  # nested: already in its parent's gas
            indent = "&nbsp;&nbsp;" * (depth - 1)
            table.append(f"| {indent}inside it: {part} | ({gas:,}) | |")
        else:
            table.append(f"| {part} | {gas:,} | {100 * gas / total:.1f} % |")
    table.append(f"| **total (transaction gas used)** | **{total:,}** | 100 % |")
    return "\n".join(table)


@click.command(cls=ScriptCommand)
def cli():
    admin, keeper, venue, usdc, oracle, engine, coeffs, opts, futs, client, perp = (
        deploy_bench_market(16)
    )
    # the book's first future is the BTC perp, funded: its funding stays with the account
    futs = [perp, *futs[1:]]
    trader, maker, mm_liq, fresh_liq, matched = (accounts.test_accounts[i] for i in (4, 5, 7, 8, 9))
    liquidator = deploy_liquidator(project, admin, client.engine_admin, engine)
    book = [x for pair in zip(futs, opts, strict=True) for x in pair]

    def post_at(spot: int, dt: int):
        chain.pending_timestamp = chain.blocks.head.timestamp + dt
        chain.mine()
        items = [_option_item(i, spot, coeffs, k) for k, i in enumerate(opts)]
        items += [(i, spot, 0, []) for i in futs]
        oracle.post(
            chain.blocks.head.timestamp, [(1, spot, PSR)], *pack_post(items), [], sender=keeper
        )

    def post(spot: int):
        """Post at `spot`, walking a move beyond one post's gap rate in capped posts a cap
        period apart, as the keeper does."""
        old = int(oracle.underlying_state(1)[0])
        rate = gap_rate(int(oracle.underlying_params(1).max_deviation), PSR)
        while old and price_cap(old, rate, CAP_PERIOD) < abs(spot - old):
            old = clamp_price(spot, (old, 0), rate, CAP_PERIOD)
            post_at(old, CAP_PERIOD)
        post_at(spot, CAP_PERIOD if old else 1)

    post(SPOT)
    oracle.post_funding([(1, WAD // 10_000)], sender=keeper)
    for acct in (trader, maker, mm_liq, fresh_liq, matched):
        usdc.mint(acct, 10**16, sender=admin)
        usdc.approve(engine, 2**256 - 1, sender=acct)
        client.engine_admin.authorise_venue(venue, True, sender=acct)
    for acct in (maker, mm_liq, fresh_liq, matched):
        engine.deposit(usdc, 10**15, sender=acct)
    # the market maker liquidator holds a small long in every instrument
    for iid in book:
        mark = client.oracle_views.risk_array(iid)[0]
        engine.trade(mm_liq, maker, iid, WAD // 100, mark, sender=venue)

    rows = []
    for n in SIZES:
        for drop, kind in ((8, "partial"), (30, "full")):
            for who, liq_acct in (
                ("fresh liquidator", fresh_liq),
                ("market maker", mm_liq),
                ("matched book", matched),
            ):
                snap = chain.snapshot()
                if liq_acct == matched:
                    for iid in book[:n]:
                        engine.trade(
                            matched,
                            maker,
                            iid,
                            WAD // 100,
                            client.oracle_views.risk_array(iid)[0],
                            sender=venue,
                        )
                # the account: n long positions, equity just above IM
                # n long positions at the marks; then again from the same state with the last
                # one bought at the price that leaves equity at 1.01 x IM (same positions, so
                # the same IM)
                excess = 0
                for attempt in range(2):
                    inner = chain.snapshot()
                    engine.deposit(usdc, 10**12, sender=trader)  # 1M USD
                    for k, iid in enumerate(book[:n]):
                        price = client.oracle_views.risk_array(iid)[0] + (
                            excess if k == n - 1 else 0
                        )
                        engine.trade(trader, maker, iid, WAD, price, sender=venue)
                    state = client.account_state(trader)
                    if attempt == 0:
                        excess = state.equity - state.initial_margin * 101 // 100
                        chain.restore(inner)
                post(SPOT * (100 - drop) // 100)
                tx = liquidator.liquidate(trader, sender=liq_acct)
                frac = tx.return_value
                rows.append((n, kind, who, frac, tx.gas_used))
                if (n, kind, who) == TRACED:
                    contracts = [liquidator, engine, oracle, client.engine_admin, usdc]
                    roles = {trader.address: "account", liq_acct.address: "liquidator"}
                    breakdown = (_gas_breakdown(tx, contracts, roles), tx.gas_used)
                chain.restore(snap)
    table = [
        "| positions | liquidation | liquidator | fraction | gas |",
        "| ---: | --- | --- | ---: | ---: |",
    ]
    table += [f"| {n} | {k} | {w} | {f / WAD:.3f} | {g:,} |" for n, k, w, f, g in rows]
    text = "\n".join(table)
    click.echo(text)
    write_section(
        "Liquidation",
        "Command: `ape run bench_liquidation` (local anvil, Vyper 0.4.3, "
        "default optimizer). Transaction gas of `Liquidator.liquidate` for an account holding n "
        "long positions (half options, half futures, the first future the BTC perp with its "
        "funding accruing, 35 scenarios) with equity just above IM: "
        "partial after an 8 % drop (closed-form fraction, post-condition checked on-chain), "
        "full after a 30 % drop (insolvent, empty fund: the loss is socialised). A fresh "
        "liquidator receives every position in a new storage slot; a market maker holding all "
        "32 instruments is updated in place but checks 32 positions; a matched book holds "
        "exactly the account's instruments.\n\n" + text,
    )

    traced = _breakdown_table(*breakdown)
    click.echo("\n" + traced)
    write_section(
        TRACE_TITLE,
        "Command: `ape run bench_liquidation`, the 16-position partial "
        "liquidation into the matched book above, traced with anvil's `debug_traceTransaction` "
        "(call tracer). Each call the Liquidator makes is named by its selector in the contracts' "
        "ABIs and by the accounts it is passed; the gas of a call is what the callee spends "
        "(its calldata, cold-access and memory costs in the caller are the Liquidator's); "
        "indented rows are calls nested in the row above, already counted in it. The "
        "Liquidator's own gas is the rest: its three portfolio computations, the plan, the ABI "
        "decoding of the inputs, the `Liquidated` log and any refund.\n\n" + traced,
        after="Liquidation",
    )
