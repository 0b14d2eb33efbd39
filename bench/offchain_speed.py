"""Speed of the vectorised off-chain kernels against straightforward Python loops.

Run: ``python -m bench.offchain_speed`` (also ``make bench``). A benchmark, not a test: it prints a
table, writes it to docs/benchmarks.md (section "Off-chain speed") and asserts nothing about time.

1. Risk arrays for 10,000 options x 35 scenarios (CRYPTO_35): ``risk_arrays`` against a per-option,
   per-scenario pure-Python Black-76 loop (``math.erf``) run on a subset and extrapolated.
2. Margin for 100,000 accounts x 16 positions (scipy CSR): ``margin_of_accounts`` against a
   per-account loop (numpy per account and underlying) run on a subset and extrapolated; plus the
   integer model (``account_margin_int``, what the chain computes) per account, also extrapolated.

Timings are the best of ``--repeat`` runs (default 5) after one warm-up run.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

import offchain.risk_arrays as ra_module
from bench.doc import write_section
from offchain.fixed_point import WAD
from offchain.margin import AccountInt, MarketArrays, account_margin_int, margin_of_accounts
from offchain.risk_arrays import (
    SECONDS_PER_YEAR,
    Instruments,
    MarketState,
    VolSurface,
    forwards,
    implied_vols,
    market_arrays,
    market_int,
    risk_arrays,
    risk_arrays_wad,
)
from offchain.scenarios import CRYPTO_35, ScenarioGrid

T0 = 1_700_000_000
SPOT = np.array([60_000.0, 3_000.0, 150.0, 0.6])
ATM = np.array([0.6, 0.75, 0.9, 0.8])
SKEW = np.array([-0.1, -0.08, -0.05, 0.0])
PSR = np.array([0.16, 0.2, 0.25, 0.22])
SOM = np.array([0.01, 0.01, 0.02, 0.02])


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_book(n: int, rng: np.random.Generator, futures_share: float = 0.0) -> Instruments:
    und = rng.integers(0, SPOT.shape[0], n)
    kind = rng.integers(1, 3, n)
    kind[rng.random(n) < futures_share] = 0
    strike = np.round(SPOT[und] * np.exp(rng.normal(0.0, 0.25, n)), 6)
    expiry = T0 + 3600 * rng.integers(1, 24 * 365, n)
    return Instruments(und, kind, strike, expiry)


def market() -> MarketState:
    return MarketState(T0, SPOT, VolSurface(ATM, SKEW), rate=0.03)


def _n(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _black76(F: float, K: float, T: float, s: float, r: float, call: bool) -> float:
    df = math.exp(-r * T)
    v = s * math.sqrt(T)
    if v == 0.0:
        return df * max(F - K, 0.0) if call else df * max(K - F, 0.0)
    d1 = (math.log(F / K) + 0.5 * v * v) / v
    d2 = d1 - v
    if call:
        return df * (F * _n(d1) - K * _n(d2))
    return df * (K * _n(-d2) - F * _n(-d1))


def loop_risk_arrays(
    ins: Instruments, mkt: MarketState, grid: ScenarioGrid, psr: np.ndarray
) -> list[list[float]]:
    """Per option, per scenario: the definition in plain Python."""
    fwd = forwards(ins, mkt)
    vol = implied_vols(ins, mkt, fwd)
    rule = grid.vol_rule
    out = []
    for j in range(len(ins)):
        F, K, s0 = float(fwd[j]), float(ins.strike[j]), float(vol[j])
        T = (int(ins.expiry[j]) - mkt.valuation_time) / SECONDS_PER_YEAR
        call = int(ins.kind[j]) == 1
        p = float(psr[ins.underlying[j]])
        base = _black76(F, K, T, s0, mkt.rate, call)
        ratio = rule.ref_days / max(T * 365.0, rule.min_days)
        long_dated = rule.p_long is not None and ratio < 1.0
        f = ratio ** (rule.p_long if long_dated else rule.p)
        row = []
        for sc in grid.scenarios:
            move = float(sc.move) * p if sc.unit == "psr" else float(sc.move)
            w = float(sc.weight)
            if sc.weight_rule == "psr_over_move":
                w = w * p / abs(move)
            if sc.vol == "up":
                s = max(s0 * (1 + rule.a * f), rule.floor_vol)
            elif sc.vol == "down":
                s = s0 * max(0.0, 1 - rule.b * f)
            else:
                s = s0
            row.append((_black76(F * (1 + move), K, T, s, mkt.rate, call) - base) * w)
        out.append(row)
    return out


def make_positions(
    n_acc: int, per_acc: int, und: np.ndarray, rng: np.random.Generator
) -> sp.csr_matrix:
    """Each account: ``per_acc`` distinct instruments, on one underlying (half the accounts) or
    split over two."""
    by_u = [np.flatnonzero(und == u) for u in range(int(und.max()) + 1)]
    cols = np.empty((n_acc, per_acc), dtype=np.int64)
    two = rng.random(n_acc) < 0.5
    u1 = rng.integers(0, len(by_u), n_acc)
    u2 = (u1 + rng.integers(1, len(by_u), n_acc)) % len(by_u)
    half = per_acc // 2
    for u, ids in enumerate(by_u):
        m = ids.shape[0]
        gap = max(1, m // per_acc)
        for sel, lo, hi in (
            (~two & (u1 == u), 0, per_acc),
            (two & (u1 == u), 0, half),
            (two & (u2 == u), half, per_acc),
        ):
            rows = np.flatnonzero(sel)
            k = hi - lo
            start = rng.integers(0, m, rows.shape[0])[:, None]
            steps = np.cumsum(rng.integers(1, gap + 1, (rows.shape[0], k)), axis=1)
            cols[rows, lo:hi] = ids[(start + steps) % m]
    q = np.round(rng.normal(0.0, 5.0, (n_acc, per_acc)), 3)
    q[q == 0] = 1.0
    rows = np.repeat(np.arange(n_acc), per_acc)
    return sp.csr_matrix((q.ravel(), (rows, cols.ravel())), shape=(n_acc, und.shape[0]))


def loop_margin(pos: sp.csr_matrix, m: MarketArrays) -> np.ndarray:
    """Per account: group positions by underlying, scan with numpy, add the SOM floor."""
    mm = np.empty(pos.shape[0])
    for a in range(pos.shape[0]):
        lo, hi = pos.indptr[a], pos.indptr[a + 1]
        by_u: dict[int, list[tuple[int, float]]] = {}
        for j, q in zip(pos.indices[lo:hi], pos.data[lo:hi], strict=True):
            by_u.setdefault(int(m.underlying[j]), []).append((int(j), float(q)))
        total = 0.0
        for u, legs in by_u.items():
            idx = [j for j, _ in legs]
            q = np.array([q for _, q in legs])
            losses = -(q @ m.risk_arrays[idx, : m.n_scenarios[u]])
            short = -sum(qq for j, qq in legs if qq < 0 and m.is_option[j])
            total += max(max(losses.max(), 0.0), short * m.spot[u] * m.som_rate[u])
        mm[a] = total
    return mm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--options", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=16)
    parser.add_argument("--instruments", type=int, default=2_000)
    args = parser.parse_args()
    rng = np.random.default_rng(20261121)
    mkt = market()
    rows = []

    # 1. Risk arrays
    book = make_book(args.options, rng)
    t_vec = best_of(lambda: risk_arrays(book, mkt, CRYPTO_35, PSR), args.repeat)
    threshold = ra_module._PARALLEL_MIN
    ra_module._PARALLEL_MIN = 10**12  # the same kernel on one thread, for comparison
    try:
        t_one = best_of(lambda: risk_arrays(book, mkt, CRYPTO_35, PSR), args.repeat)
    finally:
        ra_module._PARALLEL_MIN = threshold
    sub = max(1, args.options // 20)
    sub_book = Instruments(
        book.underlying[:sub], book.kind[:sub], book.strike[:sub], book.expiry[:sub]
    )
    t0 = time.perf_counter()
    ref = loop_risk_arrays(sub_book, mkt, CRYPTO_35, PSR)
    t_loop = (time.perf_counter() - t0) * args.options / sub
    err = np.max(np.abs(np.array(ref) - risk_arrays(sub_book, mkt, CRYPTO_35, PSR)))
    rows.append(
        (
            f"risk arrays {args.options:,} options x {len(CRYPTO_35)}, 1 thread",
            t_one,
            t_loop,
            f"per-option loop on {sub:,}, x{args.options / sub:g}",
            "",
        )
    )
    rows.append(
        (
            f"risk arrays {args.options:,} x {len(CRYPTO_35)}, {ra_module._WORKERS} threads",
            t_vec,
            t_loop,
            f"per-option loop on {sub:,}, x{args.options / sub:g}",
            "< 50 ms",
        )
    )

    # 2. Margin, float model
    ins = make_book(args.instruments, rng, futures_share=0.1)
    ra = risk_arrays(ins, mkt, CRYPTO_35, PSR)
    fm = market_arrays(ins, mkt, ra, SOM)
    pos = make_positions(args.accounts, args.positions, ins.underlying, rng)
    t_vec_m = best_of(lambda: margin_of_accounts(pos, fm), args.repeat)
    sub_a = max(1, args.accounts // 50)
    t0 = time.perf_counter()
    mm_loop = loop_margin(pos[:sub_a], fm)
    t_loop_m = (time.perf_counter() - t0) * args.accounts / sub_a
    mm_err = np.max(np.abs(mm_loop - margin_of_accounts(pos[:sub_a], fm).maintenance_margin))
    rows.append(
        (
            f"margin {args.accounts:,} accounts x {args.positions} (float)",
            t_vec_m,
            t_loop_m,
            f"per-account loop on {sub_a:,}, x{args.accounts / sub_a:g}",
            "< 1 s",
        )
    )

    # 3. Integer model (exact chain arithmetic), per account
    im = market_int(ins, mkt, risk_arrays_wad(ins, mkt, CRYPTO_35, PSR), SOM)
    sub_i = max(1, args.accounts // 100)
    accounts = []
    for a in range(sub_i):
        lo, hi = pos.indptr[a], pos.indptr[a + 1]
        qs = {
            int(j): int(round(q * 1000)) * WAD // 1000
            for j, q in zip(pos.indices[lo:hi], pos.data[lo:hi], strict=True)
        }
        accounts.append(AccountInt(0, qs))
    t0 = time.perf_counter()
    for acc in accounts:
        account_margin_int(acc, im, 125 * 10**16)
    t_int = (time.perf_counter() - t0) * args.accounts / sub_i

    rows.append(
        (
            f"margin {args.accounts:,} accounts (integer model)",
            None,
            t_int,
            f"account_margin_int on {sub_i:,}, x{args.accounts / sub_i:g}",
            "",
        )
    )

    print(f"offchain speed ({os.cpu_count()} CPUs, numpy {np.__version__}); best of {args.repeat}")
    cols = ("task", "vectorised", "loop (extrap.)", "ratio", "target", "loop basis")
    header = f"{cols[0]:<44} {cols[1]:>11} {cols[2]:>15} {cols[3]:>8}  {cols[4]:<8} {cols[5]}"
    print(header)
    print("-" * len(header))
    for name, tv, tl, basis, target in rows:
        vec = _fmt(tv) if tv is not None else ""
        ratio = f"{tl / tv:.0f}x" if tv is not None else ""
        print(f"{name:<44} {vec:>11} {_fmt(tl):>15} {ratio:>8}  {target:<8} {basis}")
    print(f"check: max |loop - vectorised| risk array {err:.2e} USD, margin {mm_err:.2e} USD")
    table = [
        "| task | vectorised | per-item Python loop (extrapolated) | ratio | target | loop basis |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name, tv, tl, basis, target in rows:
        vec = _fmt(tv) if tv is not None else ""
        ratio = f"{tl / tv:.0f}x" if tv is not None else ""
        table.append(f"| {name} | {vec} | {_fmt(tl)} | {ratio} | {target} | {basis} |")
    write_section(
        "Off-chain speed",
        "Command: `python -m bench.offchain_speed` (in `make bench`). Best of "
        f"{args.repeat} runs after a warm-up, {os.cpu_count()} CPUs, numpy {np.__version__}; the "
        "loops run on a subset and are scaled up. Wall-clock times vary with the host and its "
        "load.\n\n" + "\n".join(table) + "\n\nThe loops and the vectorised kernels agree: max "
        f"difference {err:.2e} USD per risk-array entry, {mm_err:.2e} USD per margin. The "
        "integer model is for exact checks of the accounts a keeper acts on; sweeps over many "
        "accounts use the float model, whose MM differs from the chain's by at most the "
        "precision pad (`tests/test_margin.py` states and tests the bound).",
    )


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
