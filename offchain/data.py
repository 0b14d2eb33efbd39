"""Daily price history for calibration and backtests.

The files live in the repo's ``data/`` folder (``paths.data_dir()``, described in its SOURCES.md):
``btc_usd_daily.csv`` (date, open, high, low, close), ``btc_usd_daily_coingecko.csv`` and
``eth_usd_daily.csv`` (date, close). ``load_asset`` reads the replay files (``ASSET_FILES``: BTC
with OHLC bars), ``load_backtest_series`` the longest daily-close history of each asset
(``BACKTEST_FILES``: CoinGecko for both, so BTC reaches past 2021 into the out-of-sample window).
Every loader validates once, at the edge, and reports the first problem as a single ``InputError``
that names the file, the row and the field, so the command line can print one line and exit 2.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offchain.errors import UserError

__all__ = [
    "ASSET_FILES",
    "BACKTEST_FILES",
    "CLOSE_OFFSET_DAYS",
    "InputError",
    "PriceSeries",
    "backtest_file",
    "close_offset_days",
    "load_asset",
    "load_backtest_series",
    "load_prices",
]

#: Asset name -> file name inside ``data/``: the bars the replays and the crash study use.
ASSET_FILES: dict[str, str] = {"BTC": "btc_usd_daily.csv", "ETH": "eth_usd_daily.csv"}

#: Asset name -> file name inside ``data/``: the longest daily-close history, one source for both
#: assets (CoinGecko snapshots at 00:00 UTC), which the backtest and the capital-efficiency table
#: read.
BACKTEST_FILES: dict[str, str] = {"BTC": "btc_usd_daily_coingecko.csv", "ETH": "eth_usd_daily.csv"}

#: File name -> days from a row's date to the instant its close is known (its date convention,
#: data/SOURCES.md). Yahoo's BTC bar of day d closes at the end of d (= d+1 00:00 UTC); a CoinGecko
#: snapshot of day d is taken at d 00:00 UTC. Every reader that turns rows into instants (the
#: keeper's replay, the replayed calibration) reads this one table.
CLOSE_OFFSET_DAYS: dict[str, int] = {
    "btc_usd_daily.csv": 1,
    "btc_usd_daily_coingecko.csv": 0,
    "eth_usd_daily.csv": 0,
}

_OHLC = ("open", "high", "low")


class InputError(UserError, ValueError):
    """A bad input file: which file, where in it (row / field), and what is wrong.

    ``str(err)`` is the one line the command line prints, for example
    ``data/eth.csv: row 12, field 'close': 'abc' is not a number``.
    """

    def __init__(self, path: str | Path, where: str, message: str) -> None:
        self.path = str(path)
        self.where = where
        self.message = message
        location = f"{self.path}: {where}: " if where else f"{self.path}: "
        super().__init__(location + message)


@dataclass(frozen=True)
class PriceSeries:
    """One asset's daily closes (USD), dates strictly increasing.

    ``open``/``high``/``low`` are present only when the file carries them (BTC does, ETH does not).
    ``offset_days`` is the file's date convention (``CLOSE_OFFSET_DAYS``): the close of row d is
    known ``offset_days`` after d 00:00 UTC.
    """

    asset: str
    dates: np.ndarray  # datetime64[D]
    close: np.ndarray  # float64, > 0
    open: np.ndarray | None = None
    high: np.ndarray | None = None
    low: np.ndarray | None = None
    offset_days: int = 0

    def __len__(self) -> int:
        return int(self.close.shape[0])

    @property
    def known_at(self) -> np.ndarray:
        """Unix seconds (int64) at which each row's close is known."""
        return (self.dates.astype("datetime64[s]").astype(np.int64)) + self.offset_days * 86_400

    def window(self, start: str | None = None, end: str | None = None) -> PriceSeries:
        """The sub-series with ``start <= date <= end`` (ISO dates, either bound optional)."""
        mask = np.ones(len(self), dtype=bool)
        if start is not None:
            mask &= self.dates >= np.datetime64(start, "D")
        if end is not None:
            mask &= self.dates <= np.datetime64(end, "D")

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[mask]

        return PriceSeries(
            self.asset,
            self.dates[mask],
            self.close[mask],
            cut(self.open),
            cut(self.high),
            cut(self.low),
            self.offset_days,
        )


def _parse_price(path: Path, row: int, field: str, text: str | None) -> float:
    if text is None or text.strip() == "":
        raise InputError(path, f"row {row}, field '{field}'", "missing value")
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"row {row}, field '{field}'", f"{text!r} is not a number") from None
    if not np.isfinite(value) or value <= 0.0:
        raise InputError(path, f"row {row}, field '{field}'", f"{text!r} is not a positive price")
    return value


def load_prices(path: str | Path, asset: str | None = None) -> PriceSeries:
    """Load a daily price CSV with header ``date,close`` (optionally ``open,high,low`` too).

    Rows are numbered as in a spreadsheet (the header is row 1). Dates must be ISO ``YYYY-MM-DD``
    and strictly increasing (gaps are allowed: the data has a few missing days); prices must be
    finite and positive; with OHLC, ``low <= open, close <= high``. The date convention is the
    file name's entry in ``CLOSE_OFFSET_DAYS`` (0, a snapshot at the day's start, for other names).
    """
    path = Path(path)
    name = asset or path.stem.split("_")[0].upper()
    try:
        handle = path.open(newline="")
    except OSError as err:
        raise InputError(path, "", err.strerror or "cannot be opened") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        for required in ("date", "close"):
            if required not in header:
                raise InputError(path, "header", f"missing column '{required}'")
        has_ohlc = any(f in header for f in _OHLC)
        if has_ohlc:
            for f in _OHLC:
                if f not in header:
                    raise InputError(path, "header", f"missing column '{f}' (OHLC needs all four)")
        reader.fieldnames = header
        dates: list[np.datetime64] = []
        cols: dict[str, list[float]] = {f: [] for f in ("close", *(_OHLC if has_ohlc else ()))}
        for row_no, rec in enumerate(reader, start=2):
            text = (rec.get("date") or "").strip()
            try:
                day = np.datetime64(text, "D")
                if len(text) != 10:
                    raise ValueError(text)
            except ValueError:
                raise InputError(
                    path, f"row {row_no}, field 'date'", f"{text!r} is not a YYYY-MM-DD date"
                ) from None
            if dates and day <= dates[-1]:
                raise InputError(
                    path, f"row {row_no}, field 'date'", f"{text} does not follow {dates[-1]}"
                )
            dates.append(day)
            for f, values in cols.items():
                values.append(_parse_price(path, row_no, f, rec.get(f)))
            if has_ohlc:
                lo, hi = cols["low"][-1], cols["high"][-1]
                for f in ("open", "close"):
                    if not lo <= cols[f][-1] <= hi:
                        raise InputError(
                            path, f"row {row_no}, field '{f}'", "outside the day's low..high range"
                        )
    if len(dates) < 2:
        raise InputError(path, "", "needs at least two rows of prices")
    arrays = {f: np.asarray(v, dtype=np.float64) for f, v in cols.items()}
    return PriceSeries(
        name,
        np.asarray(dates, dtype="datetime64[D]"),
        arrays["close"],
        arrays.get("open"),
        arrays.get("high"),
        arrays.get("low"),
        close_offset_days(path),
    )


def close_offset_days(path: str | Path) -> int:
    """Days from a row's date to the instant its close is known, for the file at ``path``."""
    return CLOSE_OFFSET_DAYS.get(Path(path).name, 0)


def load_asset(asset: str, data_dir: str | Path | None = None) -> PriceSeries:
    """Load the replay history of ``asset`` ("BTC" or "ETH") from ``ASSET_FILES``.

    ``data_dir`` defaults to ``paths.data_dir()`` (the repo's ``data/``, env ``PM_DATA_DIR`` first).
    """
    return _load_from(ASSET_FILES, asset, data_dir)


def load_backtest_series(asset: str, data_dir: str | Path | None = None) -> PriceSeries:
    """Load the backtest history of ``asset`` ("BTC" or "ETH") from ``BACKTEST_FILES``.

    ``data_dir`` defaults to ``paths.data_dir()`` as in ``load_asset``.
    """
    return _load_from(BACKTEST_FILES, asset, data_dir)


def backtest_file(asset: str, data_dir: str | Path | None = None) -> Path:
    """The path ``load_backtest_series`` reads for ``asset``."""
    return _file_of(BACKTEST_FILES, asset, data_dir)


def _file_of(files: dict[str, str], asset: str, data_dir: str | Path | None) -> Path:
    key = asset.upper()
    if key not in files:
        raise ValueError(f"asset: unknown {asset!r}, expected one of {sorted(files)}")
    if data_dir is None:
        from offchain.paths import data_dir as paths_data_dir

        data_dir = paths_data_dir()
    return Path(data_dir) / files[key]


def _load_from(files: dict[str, str], asset: str, data_dir: str | Path | None) -> PriceSeries:
    return load_prices(_file_of(files, asset, data_dir), asset=asset.upper())
