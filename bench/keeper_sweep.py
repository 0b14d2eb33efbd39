"""The keeper's health pass at 1,000 instruments and 100k / 1M accounts of 16 positions.

Run: ``python -m bench.keeper_sweep`` (a benchmark: it prints a table, writes it to
docs/benchmarks.md, section "Keeper health sweep", and asserts nothing). For each book size,
well funded and thinly funded (a stress round with about 1.4% of the accounts below MM), it
times one round's health pass (``offchain.keeper.sweep.sweep_health``: the float pass over every
account, then the integer reference on the accounts within the float error bound of zero or
below it), the re-indexing of 1% of the accounts (what the round does for the accounts the
engine's events touched), and today's integer-only sweep (``policy.health_by_account``) on a
sample of accounts, extrapolated per account to the whole book. The market is the 1,000
instruments of ``bench.keeper_round`` (2 underlyings, 35 scenarios) with their posted arrays;
a quarter of the accounts also hold WETH collateral.

Each timing is the best of ``--repeat`` runs after one warm-up; each book is built once. Peak
RSS is the process's so far.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator, Mapping

import numpy as np

from bench.doc import write_section
from bench.keeper_round import WETH, best, market
from offchain.fixed_point import WAD
from offchain.keeper.policy import health_by_account
from offchain.keeper.sweep import PositionBook, float_health, sweep_health
from offchain.sdk import ChainMarket

K = 16


class Book(Mapping):
    """``address -> (cash, {instrument: size}, {token: amount})`` generated from integer arrays
    on access, so that 1M accounts do not sit in memory as dictionaries."""

    def __init__(self, ids: list[int], n: int, seed: int, cash=(5 * 10**5, 2 * 10**6)) -> None:
        rng = np.random.default_rng(seed)
        n_ins = len(ids)
        self.ids = np.array(ids, dtype=object)
        # 16 distinct instruments per account: sorted draws shifted by their rank
        self.pick = np.sort(rng.integers(0, n_ins - K + 1, (n, K)), axis=1) + np.arange(K)
        self.units = rng.choice([-1, 1], (n, K)) * rng.integers(1, 50, (n, K))  # 0.1 contract
        self.cash = rng.integers(*cash, n)  # USD
        self.weth = np.where(rng.random(n) < 0.25, rng.integers(1, 100, n), 0)  # 0.1 WETH
        self.n = n

    def address(self, i: int) -> str:
        return f"0x{i:040x}"

    def __getitem__(self, addr: str) -> tuple[int, dict[int, int], dict[str, int]]:
        i = int(addr, 16)
        positions = {
            int(j): int(u) * 10**17
            for j, u in zip(self.ids[self.pick[i]], self.units[i], strict=True)
        }
        coll = {WETH: int(self.weth[i]) * 10**17} if self.weth[i] else {}
        return int(self.cash[i]) * WAD, positions, coll

    def batch(self, a0: int, a1: int) -> dict[str, tuple[int, dict[int, int], dict[str, int]]]:
        """Rows ``a0 .. a1 - 1`` at once (what ``__getitem__`` gives, built faster)."""
        ids = self.ids[self.pick[a0:a1]].tolist()
        sizes = (self.units[a0:a1] * 10**17).tolist()
        cash = (self.cash[a0:a1].astype(object) * WAD).tolist()
        weth = (self.weth[a0:a1].astype(object) * 10**17).tolist()
        return {
            self.address(a0 + i): (cash[i], dict(zip(ids[i], sizes[i], strict=True)), {WETH: w})
            if w
            else (cash[i], dict(zip(ids[i], sizes[i], strict=True)), {})
            for i, w in enumerate(weth)
        }

    def __iter__(self) -> Iterator[str]:
        return (self.address(i) for i in range(self.n))

    def __len__(self) -> int:
        return self.n


# cash per account (USD): well funded (about 0.01% end below MM), or thin (about 1.4%: a
# stress round, where every account below MM costs an integer check)
BOOKS = {"funded": (5 * 10**5, 2 * 10**6), "thin": (2 * 10**5, 10**6)}


def one_book(cm: ChainMarket, ids: list[int], n: int, kind: str, sample: int, repeat: int) -> dict:
    raws = Book(ids, n, seed=n, cash=BOOKS[kind])
    book = PositionBook()
    t = time.perf_counter()
    for a0 in range(0, n, 50_000):
        book.update(raws.batch(a0, min(n, a0 + 50_000)))
    t_load = time.perf_counter() - t
    t_sweep, sweep = best(lambda: sweep_health(cm, book, raws), repeat)
    touched = {raws.address(i): raws[raws.address(i)] for i in range(0, n, 100)}
    t_float, _ = best(lambda: float_health(cm, book), repeat)
    t_reindex, _ = best(lambda: book.update(touched), repeat)
    # today's model: the integer reference on every account, timed on a sample
    step = max(1, n // sample)
    picked = {raws.address(i): cm.account(*raws[raws.address(i)]) for i in range(0, n, step)}
    t_int, exact = best(lambda: health_by_account(cm, picked), repeat)
    per_account = t_int / len(picked)
    agree = all(sweep.health[a] == v for a, v in exact.items())
    return {
        "n": n,
        "book": kind,
        "load": t_load,
        "sweep": t_sweep,
        "float": t_float,
        "reindex": t_reindex,
        "reindexed": len(touched),
        "today": per_account * n,
        "sample": len(picked),
        "below": len(sweep.below_mm),
        "checked": sweep.checked,
        "agree": agree,
        "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--sample", type=int, default=2_000, help="accounts timed in today's model")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cm, ids = market()
    results = [
        one_book(cm, ids, n, kind, args.sample, args.repeat)
        for n in args.accounts
        for kind in BOOKS
    ]
    head = (
        "| accounts x 16 positions | book | health pass (s) | float pass alone (s) "
        "| integer checks "
        "| below MM | re-index 1% (s) | today's integer sweep (s, extrapolated) | speed-up "
        "| peak RSS (GB) |"
    )
    table = [head, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        table.append(
            f"| {r['n']:,} | {r['book']} | {r['sweep']:.2f} | {r['float']:.2f} | {r['checked']:,} "
            f"| {r['below']:,} "
            f"| {r['reindex']:.2f} ({r['reindexed']:,} accounts) | {r['today']:.0f} "
            f"(on {r['sample']:,}) | x{r['today'] / r['sweep']:.0f} | {r['rss_gb']:.1f} |"
        )
        print(
            f"{r['n']:>9,} accounts ({r['book']}): sweep {r['sweep']:.3f} s "
            f"(float pass {r['float']:.3f} s, "
            f"{r['checked']:,} exact, "
            f"{r['below']:,} below MM), re-index {r['reindexed']:,} in {r['reindex']:.3f} s, "
            f"today {r['today']:.1f} s (extrapolated from {r['sample']:,}), "
            f"x{r['today'] / r['sweep']:.0f}; book built in {r['load']:.1f} s; "
            f"sample agrees: {r['agree']}; peak RSS {r['rss_gb']:.1f} GB"
        )
    write_section(
        "Keeper health sweep",
        "Command: `python -m bench.keeper_sweep` (in `make bench`). One round's health pass "
        "(`offchain.keeper.sweep.sweep_health`) over books of accounts holding 16 of the 1,000 "
        "instruments of the keeper round above (2 underlyings, 35 scenarios), a quarter of them "
        "with WETH collateral: the float pass over every account, then the integer reference "
        "on the accounts whose float health is within its error bound of zero or below it. "
        "A funded book holds 500k to 2M USD of cash per account (about 0.01% end below MM), a "
        "thin one 200k to 1M (about 1.4%: a stress round, each account below MM costing one "
        "integer check of about 0.2 ms). "
        "Re-indexing rewrites the rows of 1% of the accounts, as the round does for those the "
        "engine's events touched. Today's integer-only sweep (`policy.health_by_account`) is "
        f"timed on a sample of about {args.sample:,} accounts and extrapolated per account; its "
        "values equal the sweep's on that sample. Each timing is the best of "
        f"{args.repeat} runs after a warm-up; numpy {np.__version__}, one thread, on a 2-core "
        "machine. Targets: under 1 s at 100k accounts, under 10 s at 1M.\n\n" + "\n".join(table),
        after="Keeper round",
    )


if __name__ == "__main__":
    main()
