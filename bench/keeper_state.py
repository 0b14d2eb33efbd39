"""What one save of the keeper's state costs with a long ledger: the whole-file JSON rewrite
earlier versions did against the SQLite store's one-row upsert.

Run: ``python -m bench.keeper_state`` (a benchmark: it prints a table, writes it to
docs/benchmarks.md, section "Keeper state", and asserts nothing). With ``--records`` final
ledger records of ``--calldata`` bytes of calldata each (one post batch):

1. **JSON, whole file** (what ``StateStore`` did before the database): serialise the state,
   write a temporary file, fsync, rename over the old one, fsync the directory; once per change
   of any record. Best of ``--repeat``.
2. **SQLite, one record**: ``StateStore.save_record`` of one changed record (one upsert, one
   transaction, ``synchronous=FULL``: on disk when it returns). Median of ``--saves``.

It also times opening the store (the JSON files are migrated on that first start), loading
the state, saving the state with one changed quote, and pruning the whole ledger, and prints
the sizes on disk. Files go to a temporary folder under ``--dir`` (default: the system's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.doc import write_section
from offchain.keeper.policy import Posted, Quote
from offchain.keeper.runner_state import RunnerState
from offchain.keeper.state import DB_NAME, KeeperState, StateStore, TxRecord, TxStatus

SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
T0 = 1_700_000_000
WAD = 10**18


def ledger(n: int, calldata: int) -> dict[str, TxRecord]:
    """``n`` confirmed post batches, ten seconds apart, as ``TxManager`` records them."""
    out = {}
    for i in range(n):
        key = f"post:{T0 + 10 * i}:0"
        out[key] = TxRecord(
            key=key,
            sender=SIGNER,
            nonce=i,
            chain_id=1,
            to="0x5FbDB2315678afecb367f032d93F642f64180aa3",
            value=0,
            data="0x" + os.urandom(calldata).hex(),
            gas=400_000 + i % 1_000,
            max_fee=31 * 10**9,
            priority_fee=10**9,
            raw="0x02f9" + os.urandom(calldata + 120).hex(),
            hashes=["0x" + os.urandom(32).hex()],
            status=TxStatus.CONFIRMED,
            created_at=T0 + 10.0 * i,
            sent_at=T0 + 10.0 * i + 0.2,
            sent_block=19_000_000 + i,
            mined_hash="0x" + os.urandom(32).hex(),
            block_number=19_000_001 + i,
            block_hash="0x" + os.urandom(32).hex(),
        )
    return out


def save_json(path: Path, state: KeeperState) -> None:
    """The whole-file save of earlier versions: temp file, fsync, rename, fsync of the dir."""
    text = json.dumps(state.to_json(), sort_keys=True, indent=1)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--calldata", type=int, default=320, help="calldata bytes per record")
    ap.add_argument("--repeat", type=int, default=3, help="JSON saves (best of)")
    ap.add_argument("--saves", type=int, default=200, help="SQLite saves (median of)")
    ap.add_argument("--dir", default=None, help="where the temporary files go")
    args = ap.parse_args()
    load = os.getloadavg()[0]

    state = KeeperState(
        posted={f"I{i}": Posted(Quote(i * WAD, tuple(range(35))), T0) for i in range(1_000)},
        ledger=ledger(args.records, args.calldata),
        last_block=19_000_000 + args.records,
    )
    rec = state.ledger[f"post:{T0}:0"]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        legacy = folder / f"{SIGNER}.json"
        os.sync()
        t_json = min(timed(lambda: save_json(legacy, state)) for _ in range(args.repeat))
        json_mb = legacy.stat().st_size / 1e6

        # the first start of the store migrates that file (one transaction)
        t_open = timed(lambda: StateStore(folder, SIGNER).close())
        store = StateStore(folder, SIGNER)
        try:
            t_load = timed(store.load)
            os.sync()  # the setup's hundreds of MB out of the page cache: fsyncs as in service
            saves = []
            for i in range(args.saves):
                rec.bumps = i  # a change to one record, as a fee bump or a receipt makes
                saves.append(timed(lambda: store.save_record(rec)))
            t_record = statistics.median(saves)
            quote_saves = []
            for i in range(20):
                state.posted["I7"] = Posted(Quote(i * WAD, tuple(range(35))), T0 + i)
                quote_saves.append(timed(lambda: store.save(state)))
            t_quote = statistics.median(quote_saves)
            db_mb = sum(p.stat().st_size for p in folder.glob(DB_NAME + "*")) / 1e6
            # every round of the ledger completed: all of it may go
            store.runner_store().save(RunnerState(set(), None, T0 + 10 * args.records))
            t = time.perf_counter()
            pruned = store.prune(state, T0 + 10.0 * args.records)
            t_prune = time.perf_counter() - t
        finally:
            store.close()
        # the same upsert without an fsync per commit: what is left is SQLite's own work
        with StateStore(folder, SIGNER, synchronous="NORMAL") as store:
            rec.status = TxStatus.PENDING
            store.save_record(rec)
            nosync = []
            for i in range(args.saves):
                rec.bumps = i
                nosync.append(timed(lambda: store.save_record(rec)))
            t_nosync = statistics.median(nosync)

    n = f"{args.records:,}"
    rows = [
        (f"save after one record changed, JSON whole file ({n} records)", fmt_time(t_json)),
        (f"save after one record changed, SQLite upsert ({n} records)", fmt_time(t_record)),
        ("ratio", f"{t_json / t_record:,.0f}x"),
        ("the same upsert with synchronous=NORMAL (no fsync per commit)", fmt_time(t_nosync)),
        ("save of one changed quote (SQLite, 1,000 posted)", fmt_time(t_quote)),
        (f"first start: open and migrate the {json_mb:.0f} MB JSON file", fmt_time(t_open)),
        (f"load at start ({n} records)", fmt_time(t_load)),
        (f"prune {pruned:,} final records (one transaction)", fmt_time(t_prune)),
        ("size on disk: JSON / SQLite", f"{json_mb:.0f} MB / {db_mb:.0f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")
    table = ["| step | time |", "| --- | ---: |"] + [f"| {a} | {b} |" for a, b in rows]
    write_section(
        "Keeper state",
        "Command: `python -m bench.keeper_state` (in `make bench`). What one save of the "
        f"keeper's state costs with a ledger of {n} final records (post batches of "
        f"{args.calldata} bytes of calldata, about "
        f"{json_mb * 1e6 / args.records / 1e3:.1f} KB each as JSON): a JSON state file "
        "rewritten whole on every change (temporary file, fsync, rename; best of "
        f"{args.repeat}), against the SQLite store's upsert of the one record that changed "
        f"(median of {args.saves}; WAL, `synchronous=FULL`, so each save is on disk when it "
        "returns). The database's save does not grow with the ledger, and pruning keeps the "
        "ledger to the records of the last `TxConfig.prune_after` seconds "
        "(`tests/test_keeper_state.py::test_the_ledger_stays_bounded_over_10k_rounds`). "
        f"Wall-clock times vary with the disk and the host's load ({os.cpu_count()} CPUs, load "
        f"average {load:.1f} at the start of this run); an upsert's time is mostly the disk's "
        "fsync, as the `NORMAL` row shows.\n\n" + "\n".join(table),
        after="Keeper round",
    )


if __name__ == "__main__":
    main()
