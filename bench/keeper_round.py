"""Off-chain time of one keeper round at scale: 1,000 instruments and 10,000 accounts.

Run: ``python -m bench.keeper_round`` (a benchmark: it prints a table, writes it to
docs/benchmarks.md, section "Keeper round", and asserts nothing). What it
times is the keeper's own work per round (``offchain.keeper.runner``), without the node:

1. ``compute_quotes``: marks and 35-scenario risk arrays of 1,000 instruments (2 underlyings,
   4 expiries, futures and 60 strikes of calls and puts each), WAD conversion and encoding;
2. ``plan_round``: threshold / heartbeat selection and gas batching of all of them;
3. ``health_by_account``: the integer reference margin (``account_margin_int``, bit-equal to
   the chain) of 10,000 accounts holding 6 positions each.

Each step is the best of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from bench.doc import write_section
from offchain.fixed_point import WAD, futures_risk_array_wad, to_wad
from offchain.keeper.config import KeeperConfig, UnderlyingInfo
from offchain.keeper.policy import health_by_account
from offchain.keeper.quotes import compute_quotes, plan_round
from offchain.margin import AccountInt, InstrumentInt, Kind, MarketInt
from offchain.scenarios import CRYPTO_35
from offchain.sdk import ChainMarket, InstrumentMeta, decode_market

T0 = 1_700_000_000
DAY = 86_400


def instruments() -> list[InstrumentMeta]:
    out = []
    serial = 0
    for und, spot in ((1, 60_000.0), (2, 3_000.0)):
        for days in (7, 30, 90, 180):
            expiry = T0 + days * DAY
            serial += 1
            out.append(InstrumentMeta(serial, und, Kind.FUTURE, 0, expiry))
            for k in range(62):
                strike = spot * (0.5 + k / 61)
                for kind in (Kind.CALL, Kind.PUT):
                    serial += 1
                    if serial > 1_000:
                        return out
                    out.append(InstrumentMeta(serial, und, kind, to_wad(round(strike)), expiry))
    return out


def best(fn, repeat: int) -> tuple[float, object]:
    fn()
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    metas = instruments()
    unds = [
        UnderlyingInfo("BTC", 1, CRYPTO_35, 0.04, 0.5),
        UnderlyingInfo("ETH", 2, CRYPTO_35, 0.04, 0.5),
    ]
    names = {m.id: m.name({1: "BTC", 2: "ETH"}) for m in metas}
    spots = {"BTC": 60_000.0, "ETH": 3_000.0}
    vols = {"BTC": 0.6, "ETH": 0.8}
    psr = {"BTC": 0.1, "ETH": 0.12}

    t_quotes, quotes = best(
        lambda: compute_quotes(T0, spots, vols, psr, unds, metas, names), args.repeat
    )
    t_plan, batches = best(lambda: plan_round(T0, quotes, {}, KeeperConfig()), args.repeat)

    # the market as the chain would hold it after that post
    ins = {}
    for m in metas:
        _, item = quotes[names[m.id]]
        if m.kind is Kind.FUTURE:
            ra = futures_risk_array_wad(
                item.arg[1],
                CRYPTO_35.linear_coefficients_wad(),
                to_wad(psr["BTC" if m.underlying == 1 else "ETH"]),
            )
            ins[m.id] = InstrumentInt.from_wad_array(m.underlying, m.kind, item.arg[1], ra)
        else:
            ins[m.id] = InstrumentInt.from_wad_array(
                m.underlying, m.kind, item.arg[1], list(quotes[names[m.id]][0].risk_array)
            )
    base = decode_market(
        {}, {1: [60_000 * WAD, 35, WAD // 10], 2: [3_000 * WAD, 35, WAD // 10]}, {}, {}, WAD
    )
    market = ChainMarket(MarketInt(ins, base.market.underlyings), {}, {}, 125 * WAD // 100, {})
    rng = random.Random(7)
    ids = [m.id for m in metas]
    accounts = {
        f"0x{a:040x}": AccountInt(
            rng.randrange(10**4, 10**6) * WAD,
            {j: rng.choice((-1, 1)) * rng.randrange(1, 50) * WAD // 10 for j in rng.sample(ids, 6)},
        )
        for a in range(args.accounts)
    }
    t_health, health = best(lambda: health_by_account(market, accounts), args.repeat)
    below = sum(1 for eq, _, mm in health.values() if eq < mm)

    rows = [
        (f"compute_quotes ({len(metas):,} instruments x 35 scenarios)", t_quotes),
        (f"plan_round ({sum(len(b) for b in batches):,} items, {len(batches)} batches)", t_plan),
        (f"health_by_account ({len(accounts):,} accounts x 6 positions)", t_health),
    ]
    print(f"{'step':<62} {'seconds':>8}")
    for name, t in rows:
        print(f"{name:<62} {t:>8.3f}")
    print(f"{'one round, off-chain part':<62} {sum(t for _, t in rows):>8.3f}")
    print(f"({below:,} of {len(accounts):,} random accounts below MM; numpy {np.__version__})")
    table = ["| step | seconds |", "| --- | ---: |"]
    table += [f"| {name} | {t:.3f} |" for name, t in rows]
    table.append(f"| **one round, off-chain part** | **{sum(t for _, t in rows):.3f}** |")
    write_section(
        "Keeper round",
        "Command: `python -m bench.keeper_round` (in `make bench`). The keeper's own work in "
        "one round, without the node: marks and 35-scenario arrays of 1,000 instruments, their "
        "selection and gas batching, and the integer reference margin (bit-equal to the chain) of "
        f"{len(accounts):,} accounts of 6 positions ({below:,} below MM). Best of {args.repeat} "
        f"runs after a warm-up, numpy {np.__version__}.\n\n" + "\n".join(table),
    )


if __name__ == "__main__":
    main()
