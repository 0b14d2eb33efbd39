"""Market data for the keeper, behind one interface: ``MarketDataSource.next_tick()``.

``None`` from ``next_tick`` means "nothing new now". Finite sources (CSV replay, JSON file, a
simulation with a step count) return ``None`` for ever once exhausted; live sources (HTTP,
on-chain feeds) return ``None`` while nothing newer than their last tick is available, and the
runner polls them again later.

Implementations:
- ``CsvReplaySource``: real daily history from the repo's ``data/`` (see SOURCES.md), aligned across
  underlyings by instant, optionally split into intraday steps by geometric interpolation.
- ``SimulatedSource``: seeded GBM with GARCH(1,1) variance and common Poisson jumps, several
  correlated underlyings; the same seed gives the same path.
- ``JsonFileSource`` / ``HttpJsonSource``: ticks as JSON from a file or an http(s) URL.
- ``AggregatorV3Source``: Chainlink-style ``latestRoundData()`` feeds read on-chain.
"""

from __future__ import annotations

import csv
import http.client
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from offchain.data import ASSET_FILES, CLOSE_OFFSET_DAYS
from offchain.paths import data_dir

__all__ = [
    "HISTORY_FILES",
    "AggregatorV3Source",
    "CsvReplaySource",
    "FeedError",
    "HttpJsonSource",
    "JsonFileSource",
    "MarketDataSource",
    "SimulatedSource",
    "SimulationConfig",
    "SourceError",
    "Tick",
    "parse_tick",
]

SECONDS_PER_DAY = 86_400
SECONDS_PER_YEAR = 31_536_000  # docs/design.md §3: year fraction = seconds / 31_536_000


class SourceError(RuntimeError):
    """Market data that cannot be used: unreadable, malformed, or failing a sanity check."""


class FeedError(SourceError):
    """An on-chain feed answer that must not be used (stale, non-positive, incomplete round)."""

    def __init__(self, underlying: str, feed: str, reason: str) -> None:
        self.underlying = underlying
        self.feed = feed
        self.reason = reason
        super().__init__(f"feed {underlying} at {feed}: {reason}")


@dataclass(frozen=True)
class Tick:
    """One market snapshot: unix seconds, spot per underlying (USD), optional vol hints
    (annualised, e.g. 0.8 = 80%)."""

    timestamp: int
    spots: Mapping[str, float]
    realised_vol: Mapping[str, float] = field(default_factory=dict)
    implied_vol: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class MarketDataSource(Protocol):
    def next_tick(self) -> Tick | None:
        """The next snapshot, or ``None`` when nothing new is available (see module doc)."""
        ...


# --------------------------------------------------------------------------- CSV replay

#: Underlying -> (file in ``data/``, days from the row's date to the instant its close
#: refers to), the date convention read from ``offchain.data.CLOSE_OFFSET_DAYS``. Yahoo's BTC bar
#: of day d closes at the end of d (= d+1 00:00 UTC); CoinGecko's ETH snapshot of day d is taken
#: at d 00:00 UTC. Aligning by instant pairs BTC(d) with ETH(d+1).
HISTORY_FILES: dict[str, tuple[str, int]] = {
    u: (name, CLOSE_OFFSET_DAYS[name]) for u, name in ASSET_FILES.items()
}


def _load_closes(path: Path, offset_days: int) -> dict[int, float]:
    """Instant (unix seconds) -> close, validated: dates increasing, closes positive and finite."""
    out: dict[int, float] = {}
    previous: date | None = None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"date", "close"} <= set(reader.fieldnames):
                raise SourceError(f"{path}: header must contain 'date' and 'close'")
            for line, row in enumerate(reader, start=2):
                try:
                    day = date.fromisoformat(row["date"])
                    close = float(row["close"])
                except (TypeError, ValueError) as exc:
                    raise SourceError(f"{path}: line {line}: {exc}") from exc
                if not (math.isfinite(close) and close > 0):
                    raise SourceError(f"{path}: line {line}: close {close} is not positive")
                if previous is not None and day <= previous:
                    raise SourceError(f"{path}: line {line}: date {day} not after {previous}")
                previous = day
                instant = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    days=offset_days
                )
                out[int(instant.timestamp())] = close
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc}") from exc
    return out


def _day_start(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


class CsvReplaySource:
    """Replay of daily history for ``underlyings`` with instants in ``[start, end]`` (UTC dates).

    Only instants where every underlying has a close are used (BTC misses 4 days). The first
    instant is emitted as is; each later interval between aligned instants ``t0 -> t1`` is split
    into ``steps_per_day`` posts at ``t0 + k (t1 - t0) / n`` with prices on the geometric path
    ``p0 (p1 / p0)^(k / n)``, k = 1..n, so a crash day becomes several smaller moves ending on the
    real close. ``realised_vol`` carries the annualised standard deviation of the last
    ``vol_window`` aligned daily log returns before the tick's interval (sqrt(365) per year:
    crypto trades every day), once at least two returns exist.

    Example: BTC closed 7_911.43 on 2020-03-11 and 4_970.79 on 2020-03-12 (instants 03-12 and
    03-13 00:00 UTC); with ``steps_per_day=4`` the crash day is posted as 7_043.6, 6_271.0,
    5_583.2, 4_970.79 at 06:00, 12:00, 18:00 and 24:00 (price k = 7_911.43 r^(k/4),
    r = 4_970.79 / 7_911.43), together with ETH going from 194.22 to 110.60 on the same path.
    """

    def __init__(
        self,
        underlyings: Sequence[str],
        start: date | str,
        end: date | str,
        steps_per_day: int = 1,
        vol_window: int = 30,
        data_folder: Path | None = None,
    ) -> None:
        if not underlyings:
            raise ValueError("at least one underlying")
        unknown = [u for u in underlyings if u not in HISTORY_FILES]
        if unknown:
            raise ValueError(f"no history for {unknown}; known: {sorted(HISTORY_FILES)}")
        if steps_per_day < 1 or vol_window < 2:
            raise ValueError("steps_per_day >= 1 and vol_window >= 2 required")
        start_d = date.fromisoformat(start) if isinstance(start, str) else start
        end_d = date.fromisoformat(end) if isinstance(end, str) else end
        if end_d < start_d:
            raise ValueError(f"end {end_d} before start {start_d}")
        folder = data_folder if data_folder is not None else data_dir()
        series = {
            u: _load_closes(folder / HISTORY_FILES[u][0], HISTORY_FILES[u][1]) for u in underlyings
        }
        common = sorted(set.intersection(*(set(s) for s in series.values())))
        lo, hi = _day_start(start_d), _day_start(end_d) + SECONDS_PER_DAY - 1
        # Keep `vol_window` earlier instants for the vol hint; emit only those in range.
        first = next((i for i, t in enumerate(common) if t >= lo), len(common))
        last = max((i for i, t in enumerate(common) if t <= hi), default=-1)
        if first > last:
            raise ValueError(
                f"no common data for {list(underlyings)} between {start_d} and {end_d}"
            )
        self.underlyings = tuple(underlyings)
        self.steps_per_day = steps_per_day
        self._vol_window = vol_window
        offset = max(0, first - vol_window)
        self._instants = common[offset : last + 1]
        self._first = first - offset
        self._prices = {u: np.array([series[u][t] for t in self._instants]) for u in underlyings}
        self._iter = self._generate()

    def __len__(self) -> int:
        """How many ticks the replay emits in total."""
        return 1 + (len(self._instants) - 1 - self._first) * self.steps_per_day

    def _vol(self, i: int) -> dict[str, float]:
        """Annualised vol of the daily log returns ending at instant index ``i`` (inclusive)."""
        lo = max(0, i - self._vol_window)
        if i - lo < 2:
            return {}
        out = {}
        for u, p in self._prices.items():
            r = np.diff(np.log(p[lo : i + 1]))
            out[u] = float(np.std(r, ddof=1) * math.sqrt(365))
        return out

    def _generate(self) -> Iterator[Tick]:
        i0 = self._first
        yield Tick(
            self._instants[i0], {u: float(p[i0]) for u, p in self._prices.items()}, self._vol(i0)
        )
        n = self.steps_per_day
        for i in range(i0 + 1, len(self._instants)):
            t0, t1 = self._instants[i - 1], self._instants[i]
            vol = self._vol(i - 1)
            for k in range(1, n + 1):
                spots = {
                    u: float(p[i] if k == n else p[i - 1] * (p[i] / p[i - 1]) ** (k / n))
                    for u, p in self._prices.items()
                }
                yield Tick(t0 + (t1 - t0) * k // n, spots, vol)

    def next_tick(self) -> Tick | None:
        return next(self._iter, None)


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of ``SimulatedSource``; rates and vols annualised (year = 31_536_000 s).

    Per step of ``dt`` seconds and underlying i, with ``h`` the conditional variance of the
    diffusive part over one step (GARCH(1,1), Bollerslev 1986):

        r_i = (mu - h_i / 2) dt_y + sqrt(h_i) z_i + sum of N jumps J_i
        h_i' = omega + alpha e_i^2 + beta h_i,   omega = vol^2 dt_y (1 - alpha - beta)

    where ``z`` ~ N(0, corr), ``N`` ~ Poisson(jump_intensity dt_y) is common to all underlyings
    (crypto crashes are market-wide), ``J_i`` = jump_mean + jump_std x_i with x ~ N(0, corr), and
    ``e_i`` is the whole shock of the step (jumps included, so a crash raises later variance).
    """

    underlyings: tuple[str, ...] = ("BTC", "ETH")
    spot0: tuple[float, ...] = (60_000.0, 3_000.0)
    vol: tuple[float, ...] = (0.6, 0.8)
    correlation: tuple[tuple[float, ...], ...] = ((1.0, 0.8), (0.8, 1.0))
    mu: float = 0.0
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    jump_intensity: float = 4.0  # jumps per year
    jump_mean: float = -0.08
    jump_std: float = 0.05
    dt: int = 3_600
    start: int = 1_700_000_000
    steps: int | None = None  # moves after the first tick (steps + 1 ticks); None = unbounded

    def __post_init__(self) -> None:
        n = len(self.underlyings)
        if n == 0 or len(self.spot0) != n or len(self.vol) != n:
            raise ValueError("underlyings, spot0 and vol must have the same non-zero length")
        if any(s <= 0 for s in self.spot0) or any(v <= 0 for v in self.vol):
            raise ValueError("spot0 and vol must be positive")
        corr = np.asarray(self.correlation, dtype=float)
        if (
            corr.shape != (n, n)
            or not np.allclose(corr, corr.T)
            or not np.allclose(np.diag(corr), 1.0)
        ):
            raise ValueError(f"correlation must be a symmetric {n}x{n} matrix with unit diagonal")
        if np.linalg.eigvalsh(corr).min() <= 0:
            raise ValueError("correlation matrix must be positive definite")
        a, b = self.garch_alpha, self.garch_beta
        if not (a >= 0 and b >= 0 and a + b < 1):
            raise ValueError("GARCH needs alpha, beta >= 0 and alpha + beta < 1")
        if self.jump_intensity < 0 or self.jump_std < 0 or self.dt <= 0:
            raise ValueError("jump_intensity, jump_std >= 0 and dt > 0 required")
        if self.steps is not None and self.steps < 0:
            raise ValueError("steps must be >= 0 or None")


class SimulatedSource:
    """Seeded simulation (see ``SimulationConfig``); deterministic per seed.

    The first tick is ``spot0`` at ``start``; ``realised_vol`` carries the conditional
    (GARCH) volatility of the next step, annualised.
    """

    def __init__(self, config: SimulationConfig, seed: int) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)
        self._chol = np.linalg.cholesky(np.asarray(config.correlation, dtype=float))
        self._dt_y = config.dt / SECONDS_PER_YEAR
        self._long_var = np.asarray(config.vol, dtype=float) ** 2 * self._dt_y
        self._omega = self._long_var * (1 - config.garch_alpha - config.garch_beta)
        self._h = self._long_var.copy()
        self._spot = np.asarray(config.spot0, dtype=float)
        self._step = 0

    def _tick(self) -> Tick:
        names = self.config.underlyings
        spots = self._spot
        vols = np.sqrt(self._h / self._dt_y)
        return Tick(
            self.config.start + self._step * self.config.dt,
            {u: float(s) for u, s in zip(names, spots, strict=True)},
            {u: float(v) for u, v in zip(names, vols, strict=True)},
        )

    def next_tick(self) -> Tick | None:
        c = self.config
        if c.steps is not None and self._step > c.steps:
            return None
        if self._step > 0:
            n = len(c.underlyings)
            z = self._chol @ self._rng.standard_normal(n)
            jumps = self._rng.poisson(c.jump_intensity * self._dt_y)
            jump = np.zeros(n)
            for _ in range(jumps):
                jump += c.jump_mean + c.jump_std * (self._chol @ self._rng.standard_normal(n))
            shock = np.sqrt(self._h) * z + jump
            drift = (c.mu - 0.5 * self._h / self._dt_y) * self._dt_y
            self._spot = self._spot * np.exp(drift + shock)
            self._h = self._omega + c.garch_alpha * shock**2 + c.garch_beta * self._h
        tick = self._tick()
        self._step += 1
        return tick


# --------------------------------------------------------------------------- JSON file / HTTP


def _positive_map(obj: Any, what: str, where: str) -> dict[str, float]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: '{what}' must be an object")
    out = {}
    for name, value in obj.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SourceError(f"{where}: {what}[{name!r}] = {value!r} is not a number")
        if not (math.isfinite(value) and value > 0):
            raise SourceError(f"{where}: {what}[{name!r}] = {value!r} must be positive")
        out[str(name)] = float(value)
    return out


def parse_tick(obj: Any, where: str = "tick") -> Tick:
    """A ``Tick`` from its JSON form, validated.

    ``{"timestamp": 1584057600, "spots": {"BTC": 4970.79, "ETH": 110.6},
    "realised_vol": {"BTC": 0.9}, "implied_vol": {"BTC": 1.1}}`` (vol maps optional).
    """
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: a tick must be an object")
    ts = obj.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise SourceError(f"{where}: timestamp must be a non-negative integer, got {ts!r}")
    spots = _positive_map(obj.get("spots"), "spots", where)
    if not spots:
        raise SourceError(f"{where}: spots must hold at least one price")
    return Tick(
        ts,
        spots,
        _positive_map(obj.get("realised_vol"), "realised_vol", where),
        _positive_map(obj.get("implied_vol"), "implied_vol", where),
    )


def _parse_ticks(payload: Any, where: str) -> list[Tick]:
    """A list of ticks from a bare list, ``{"ticks": [...]}`` or one tick object, in order."""
    if isinstance(payload, dict) and "ticks" in payload:
        payload = payload["ticks"]
    items = payload if isinstance(payload, list) else [payload]
    ticks = [parse_tick(obj, f"{where}[{i}]") for i, obj in enumerate(items)]
    for a, b in zip(ticks, ticks[1:], strict=False):
        if b.timestamp <= a.timestamp:
            raise SourceError(
                f"{where}: timestamps must increase ({a.timestamp} then {b.timestamp})"
            )
    return ticks


class JsonFileSource:
    """Ticks from a JSON file (a list, ``{"ticks": [...]}``, or one tick), read once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise SourceError(f"{self.path}: not valid JSON: {exc}") from exc
        self._ticks = deque(_parse_ticks(payload, str(self.path)))

    def next_tick(self) -> Tick | None:
        return self._ticks.popleft() if self._ticks else None


class HttpJsonSource:
    """Ticks polled from an http(s) URL serving the same JSON as ``JsonFileSource``.

    Each ``next_tick`` returns the oldest tick newer than the last one returned; when the URL
    serves nothing newer it fetches again on the next call and returns ``None`` meanwhile. Only
    ``http`` and ``https`` URLs are accepted. A server that is down, answers with an error, takes
    longer than ``timeout`` seconds for the whole answer, or serves anything but valid ticks
    raises ``SourceError``.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"only http(s) URLs are supported, got {url!r}")
        self.url = url
        self.timeout = timeout
        self._queue: deque[Tick] = deque()
        self._last: int | None = None

    def _fetch(self) -> list[Tick]:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        # urllib's timeout bounds each socket read; the deadline bounds the whole answer, so a
        # server sending a byte at a time cannot hold the keeper
        deadline = time.monotonic() + self.timeout
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                chunks = []
                while chunk := response.read1(65_536):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no complete answer within {self.timeout} s")
                body = b"".join(chunks)
        except urllib.error.HTTPError as exc:
            raise SourceError(f"{self.url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise SourceError(f"{self.url}: {exc}") from exc
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"{self.url}: not valid JSON: {exc}") from exc
        return _parse_ticks(payload, self.url)

    def next_tick(self) -> Tick | None:
        if not self._queue:
            self._queue.extend(
                t for t in self._fetch() if self._last is None or t.timestamp > self._last
            )
        if not self._queue:
            return None
        tick = self._queue.popleft()
        self._last = tick.timestamp
        return tick


# --------------------------------------------------------------------------- AggregatorV3

AGGREGATOR_V3_ABI: list[dict[str, Any]] = [
    {
        "name": "decimals",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "name": "latestRoundData",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [
            {"name": "roundId", "type": "uint80"},
            {"name": "answer", "type": "int256"},
            {"name": "startedAt", "type": "uint256"},
            {"name": "updatedAt", "type": "uint256"},
            {"name": "answeredInRound", "type": "uint80"},
        ],
    },
]


class AggregatorV3Source:
    """Spots read from Chainlink-style ``AggregatorV3`` feeds, one per underlying.

    Each answer must be positive, complete (``updatedAt`` > 0, ``answeredInRound >= roundId``),
    not in the future and at most ``max_age`` seconds old; otherwise ``FeedError`` names the
    feed and the reason, and no tick is produced. A node that cannot be reached, or a feed that
    answers nothing readable, raises ``SourceError``. "Now" is the latest block's timestamp unless
    ``clock`` is given. The tick's timestamp is the oldest ``updatedAt`` in it (the data is no
    fresher than that). ``None`` when no feed has a new round since the last tick.

    Example: answer 6_012_345_000_000 with 8 decimals is a spot of 60_123.45.
    """

    def __init__(
        self,
        w3: Any,
        feeds: Mapping[str, str],
        max_age: int = 3_600,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if not feeds:
            raise ValueError("at least one feed")
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self._w3 = w3
        self.max_age = max_age
        self._clock = clock
        self._contracts = {
            u: w3.eth.contract(address=w3.to_checksum_address(a), abi=AGGREGATOR_V3_ABI)
            for u, a in feeds.items()
        }
        self._decimals: dict[str, int] = {}
        self._last_rounds: dict[str, int] | None = None

    def _now(self) -> int:
        if self._clock is not None:
            return self._clock()
        return int(self._w3.eth.get_block("latest")["timestamp"])

    def read(self, underlying: str, now: int) -> tuple[float, int, int]:
        """(spot, updatedAt, roundId) of one feed, validated against ``now``."""
        contract = self._contracts[underlying]
        feed = contract.address
        if underlying not in self._decimals:
            decimals = int(contract.functions.decimals().call())
            if decimals > 36:
                raise FeedError(underlying, feed, f"implausible decimals {decimals}")
            self._decimals[underlying] = decimals
        round_id, answer, _started, updated_at, answered_in = (
            contract.functions.latestRoundData().call()
        )
        if answer <= 0:
            raise FeedError(underlying, feed, f"answer {answer} is not positive (round {round_id})")
        if updated_at == 0:
            raise FeedError(underlying, feed, f"round {round_id} is incomplete (updatedAt = 0)")
        if answered_in < round_id:
            raise FeedError(
                underlying, feed, f"answeredInRound {answered_in} < roundId {round_id} (stale)"
            )
        if updated_at > now:
            raise FeedError(underlying, feed, f"updatedAt {updated_at} is after now {now}")
        if now - updated_at > self.max_age:
            raise FeedError(
                underlying,
                feed,
                f"stale: updated {now - updated_at} s ago, max_age {self.max_age} s",
            )
        return answer / 10 ** self._decimals[underlying], int(updated_at), int(round_id)

    def next_tick(self) -> Tick | None:
        from requests.exceptions import RequestException
        from web3.exceptions import Web3Exception

        try:
            now = self._now()
            reads = {u: self.read(u, now) for u in self._contracts}
        except (Web3Exception, RequestException, OSError) as exc:
            # the node is unreachable or a feed address answers nothing readable
            raise SourceError(f"feeds unreadable: {exc}") from exc
        rounds = {u: r[2] for u, r in reads.items()}
        if rounds == self._last_rounds:
            return None
        self._last_rounds = rounds
        return Tick(min(r[1] for r in reads.values()), {u: r[0] for u, r in reads.items()})
