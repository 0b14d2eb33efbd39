"""Replaying history on a chain whose clock is later (the demo, a rehearsal on a fork): ticks
moved by a whole number of days (``ShiftedSource``) and the PSR calibrated on the daily history
as it was known at each tick (``CalibratedPsr``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from offchain.calibration import CalibrationParams, psr_series
from offchain.data import load_asset
from offchain.keeper.sources import Tick

__all__ = ["CalibratedPsr", "ShiftedSource"]


class CalibratedPsr:
    """PSR per underlying from ``offchain.calibration.psr_series`` on the history in ``data/``:
    the PSR in force is the one calibrated at the last close before the tick (no look-ahead);
    ticks after the history use its last value. ``time_offset`` is subtracted from tick
    timestamps first (the demo replays 2020 on a later chain clock). ``until`` (unix seconds of
    the history) leaves out the closes after it: a replay that ends there gets the same PSR, and
    the calibration, a t fit every few weeks of history, takes a fraction of the time."""

    def __init__(
        self,
        underlyings: Sequence[str],
        params: CalibrationParams | None = None,
        time_offset: int = 0,
        until: int | None = None,
    ) -> None:
        params = params or CalibrationParams()
        self.time_offset = time_offset
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for u in underlyings:
            prices = load_asset(u)
            # each file's own date convention (data.CLOSE_OFFSET_DAYS): a Yahoo close of day d
            # is known at the end of d, a CoinGecko snapshot of d at d 00:00 UTC
            known = prices.known_at
            n = len(known) if until is None else int(np.searchsorted(known, until, side="right"))
            n = max(n, params.warmup_days + 2)  # psr_series needs its warm-up
            known = known[:n]
            ps = psr_series(prices.close[:n], params)
            ok = np.isfinite(ps.psr)
            self._series[u] = (known[ok], ps.psr[ok])

    def __call__(self, underlying: str, ts: int) -> float:
        known, psr = self._series[underlying]
        i = int(np.searchsorted(known, ts - self.time_offset, side="right")) - 1
        return float(psr[max(i, 0)])


class ShiftedSource:
    """A market data source whose tick timestamps are moved by ``offset`` seconds (replaying
    history on a chain whose clock is later). ``first_ts`` / ``last_ts`` track what passed."""

    def __init__(self, source: Any, offset: int) -> None:
        self.source = source
        self.offset = offset

    def next_tick(self) -> Tick | None:
        t = self.source.next_tick()
        if t is None:
            return None
        return Tick(t.timestamp + self.offset, t.spots, t.realised_vol, t.implied_vol)
