"""Off-chain time of one keeper round at scale: 1,000 instruments and 10,000 accounts.

Run: ``python -m bench.keeper_round`` (a benchmark: it prints a table, writes it to
docs/benchmarks.md, section "Keeper round", and asserts nothing). What it
times is the keeper's own work per round (``offchain.keeper.runner``), without the node:

1. ``compute_quotes``: marks and 35-scenario risk arrays of 1,000 instruments (2 underlyings,
   4 expiries, futures and 60 strikes of calls and puts each), WAD conversion and encoding;
2. ``plan_round``: threshold / heartbeat selection and gas batching of all of them;
3. the health pass (``sweep.sweep_health``: the float pass over every account, then the
   integer reference, bit-equal to the chain, where the float health is near or below MM) of
   10,000 accounts holding 6 positions each; the integer reference on all of them
   (``policy.health_by_account``) is timed beside it for comparison.

Each step is the best of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from bench.doc import write_section
from offchain.codec import instrument_id
from offchain.fixed_point import WAD, futures_risk_array_wad, to_wad
from offchain.keeper.config import KeeperConfig, UnderlyingInfo
from offchain.keeper.policy import health_by_account
from offchain.keeper.quotes import compute_quotes, plan_round
from offchain.keeper.sweep import PositionBook, sweep_health
from offchain.margin import CollateralInt, InstrumentInt, Kind, MarketInt
from offchain.scenarios import CRYPTO_35
from offchain.sdk import ChainMarket, InstrumentMeta, decode_market

T0 = 1_700_000_000
DAY = 86_400
WETH = "0x" + "e" * 40
UNDERLYINGS = [
    UnderlyingInfo("BTC", 1, CRYPTO_35, 0.04, 0.5),
    UnderlyingInfo("ETH", 2, CRYPTO_35, 0.04, 0.5),
]
SPOTS = {"BTC": 60_000.0, "ETH": 3_000.0}
VOLS = {"BTC": 0.6, "ETH": 0.8}
PSR = {"BTC": 0.1, "ETH": 0.12}


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


def quote_all(metas: list[InstrumentMeta]) -> dict:
    names = {m.id: m.name({1: "BTC", 2: "ETH"}) for m in metas}
    return compute_quotes(T0, SPOTS, VOLS, PSR, UNDERLYINGS, metas, names)


def chain_market(metas: list[InstrumentMeta], quotes: dict) -> tuple[ChainMarket, list[int]]:
    """The market as the oracle holds it after posting ``quotes`` (instruments under the ids it
    lists them by, WETH collateral priced by ETH), and those ids."""
    names = {m.id: m.name({1: "BTC", 2: "ETH"}) for m in metas}
    ins = {}
    for m in metas:
        _, item = quotes[names[m.id]]
        iid = instrument_id(m.id, int(m.kind), m.underlying, m.expiry)
        if m.kind is Kind.FUTURE:
            p = PSR["BTC" if m.underlying == 1 else "ETH"]
            ra = futures_risk_array_wad(item.arg[1], CRYPTO_35.linear_coefficients_wad(), to_wad(p))
        else:
            ra = list(quotes[names[m.id]][0].risk_array)
        ins[iid] = InstrumentInt.from_wad_array(m.underlying, m.kind, item.arg[1], ra)
    btc, eth = to_wad(SPOTS["BTC"]), to_wad(SPOTS["ETH"])
    base = decode_market({}, {1: [btc, 35, WAD // 10], 2: [eth, 35, WAD // 10]}, {}, {}, WAD)
    weth = CollateralInt(eth, WAD // 5, 18)
    m = MarketInt(ins, base.market.underlyings, {0: weth})
    return ChainMarket(m, {}, {}, 125 * WAD // 100, {WETH: 0}), sorted(ins)


def market() -> tuple[ChainMarket, list[int]]:
    """The 1,000 instruments as the oracle holds them after one post (ids as it lists them)."""
    metas = instruments()
    return chain_market(metas, quote_all(metas))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    metas = instruments()
    t_quotes, quotes = best(lambda: quote_all(metas), args.repeat)
    t_plan, batches = best(lambda: plan_round(T0, quotes, {}, KeeperConfig()), args.repeat)

    market, ids = chain_market(metas, quotes)
    rng = random.Random(7)
    raws = {
        f"0x{a:040x}": (
            rng.randrange(10**4, 10**6) * WAD,
            {j: rng.choice((-1, 1)) * rng.randrange(1, 50) * WAD // 10 for j in rng.sample(ids, 6)},
            {},
        )
        for a in range(args.accounts)
    }
    book = PositionBook()
    book.update(raws)
    t_health, sweep = best(lambda: sweep_health(market, book, raws), args.repeat)
    accounts = {a: market.account(*raw) for a, raw in raws.items()}
    t_exact, health = best(lambda: health_by_account(market, accounts), args.repeat)
    below = len(sweep.below_mm)
    assert below == sum(1 for eq, _, mm in health.values() if eq < mm)  # the sweep decides alike

    rows = [
        (f"compute_quotes ({len(metas):,} instruments x 35 scenarios)", t_quotes),
        (f"plan_round ({sum(len(b) for b in batches):,} items, {len(batches)} batches)", t_plan),
        (f"health pass, sweep_health ({len(raws):,} accounts x 6 positions)", t_health),
    ]
    reference = (f"for comparison: health_by_account, integer only ({len(raws):,})", t_exact)
    print(f"{'step':<66} {'seconds':>8}")
    for name, t in rows:
        print(f"{name:<66} {t:>8.3f}")
    print(f"{'one round, off-chain part':<66} {sum(t for _, t in rows):>8.3f}")
    print(f"{reference[0]:<66} {reference[1]:>8.3f}")
    print(
        f"({below:,} of {len(raws):,} random accounts below MM, {sweep.checked:,} checked "
        f"exactly; numpy {np.__version__})"
    )
    table = ["| step | seconds |", "| --- | ---: |"]
    table += [f"| {name} | {t:.3f} |" for name, t in rows]
    table.append(f"| **one round, off-chain part** | **{sum(t for _, t in rows):.3f}** |")
    table.append(f"| {reference[0]} | {reference[1]:.3f} |")
    write_section(
        "Keeper round",
        "Command: `python -m bench.keeper_round` (in `make bench`). The keeper's own work in "
        "one round, without the node: marks and 35-scenario arrays of 1,000 instruments, their "
        "selection and gas batching, and the health pass (float sweep, then the integer "
        f"reference, bit-equal to the chain, on the {sweep.checked:,} accounts near or below "
        f"MM) of {len(raws):,} accounts of 6 positions ({below:,} below MM); the integer "
        f"reference on every account is timed beside it. Best of {args.repeat} "
        f"runs after a warm-up, numpy {np.__version__}.\n\n" + "\n".join(table),
    )


if __name__ == "__main__":
    main()
