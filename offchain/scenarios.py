"""Scenario grids: price moves, volatility shocks and weights of a SPAN-style scan.

The grids and the volatility shock rule are those of docs/design.md §5.

A grid is data. Each scenario has a price move (in price scan ranges, ``unit="psr"``, or as a
fraction of the price, ``unit="price"``), a volatility shock direction (up / none / down, applied
with the grid's ``VolShockRule``) and a weight rule (``fixed``: the loss counts ``weight`` times;
``psr_over_move``: it counts ``weight * PSR / |move|``, so a far tail move is scaled to a loss of
about ``weight`` scan ranges). ``ScenarioGrid.from_dict`` builds any grid from a JSON-style dict.

Every grid has an exact *linear coefficient* per scenario, ``c[s]`` = the weighted price move in
units of the scan range (``docs/fixed-point.md`` §3); the chain computes a future's risk array as
``mark * c[s] * psr``. Example: the CME extreme move of 2 scan ranges counted at 35% has
``c = 2 * 0.35 = 0.7``; a crypto tail of +300% weighted ``0.7 * PSR / 3`` has ``c = +0.7``.
A scenario may also carry a forward-curve *tilt* ``t`` in [-1, 1]: the forward of each expiry
then moves by an extra ``t * h``, ``h`` the expiry's curve shift (basis times time to expiry,
minus up to one scan range for a leg about to expire; ``fixed_point.curve_shift_wad``).

Presets: ``CRYPTO_35`` (the default) and ``CME_SPAN_16`` (CME SPAN's classic 16 scenarios:
thirds of the scan range with vol up/down, and two extreme moves of two scan ranges counted at
35%; see CME Group, "SPAN Methodology Overview").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from offchain.fixed_point import MAX_SCENARIOS, MAX_TILTS, WAD
from offchain.params import margin_params

__all__ = [
    "VOL_DIRECTIONS",
    "VolShockRule",
    "Scenario",
    "ScenarioGrid",
    "CRYPTO_35",
    "CME_SPAN_16",
    "PRESETS",
]

VOL_DIRECTIONS = {"up": 1, "none": 0, "down": -1}
_UNITS = ("psr", "price")
_WEIGHT_RULES = ("fixed", "psr_over_move")


def _fraction(name: str, value: object) -> Fraction:
    """Exact value of a number or a string (``"1/3"``, ``"0.35"``, ``"-66%"``).

    Floats go through their shortest decimal repr, so ``0.35`` is exactly 7/20.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got bool")
    try:
        if isinstance(value, Fraction | int):
            return Fraction(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("not finite")
            return Fraction(repr(value))
        if isinstance(value, str):
            text = value.strip()
            if text.endswith("%"):
                return Fraction(text[:-1].strip()) / 100
            return Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"{name} must be a finite number, got {value!r} ({exc})") from None
    raise ValueError(f"{name} must be a number or a string like '1/3', got {type(value).__name__}")


@dataclass(frozen=True)
class VolShockRule:
    """Multiplicative volatility shocks that shrink with days to expiry (docs/design.md §5).

    With ``f = (ref_days / max(DTE, min_days)) ** p`` up to ``ref_days`` and
    ``(ref_days / DTE) ** p_long`` beyond (``p_long`` None: ``p`` throughout)::

        up   = max(sigma * (1 + a * f), floor_vol)
        down = sigma * max(0, 1 - b * f)

    A second power for long expiries is Derive's form (its ``shortTermPower`` and
    ``longTermPower``): the shock decays fast over the first month and slowly after it.

    Defaults: at 30 days the vol is shocked +25% / -20% (relative), short expiries more (the
    square-root rule, ``p = 0.5``: at 7.5 days +50% / -40%), long expiries less (at 120 days
    +12.5% / -10%); the up-shocked vol is never below 10 vol points; DTE is floored at one day so
    an expiring option's shock stays finite (f <= sqrt(30) = 5.48).

    >>> round(float(VolShockRule().shocked(0.6, 7.5, "up")), 4)
    0.9
    """

    a: float = 0.25
    b: float = 0.20
    p: float = 0.5
    floor_vol: float = 0.10
    ref_days: float = 30.0
    min_days: float = 1.0
    p_long: float | None = None

    def __post_init__(self) -> None:
        for name in ("a", "b", "p", "floor_vol", "ref_days", "min_days", "p_long"):
            value = getattr(self, name)
            if name == "p_long" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"vol rule {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"vol rule {name} must be finite and >= 0, got {value}")
        if self.ref_days <= 0 or self.min_days <= 0:
            raise ValueError("vol rule ref_days and min_days must be > 0")

    def factor(self, dte_days: float | np.ndarray) -> np.ndarray:
        """``(ref_days / max(DTE, min_days)) ** p`` (``** p_long`` beyond ``ref_days``)."""
        dte = np.asarray(dte_days, dtype=np.float64)
        ratio = self.ref_days / np.maximum(dte, self.min_days)
        if self.p_long is None:
            return ratio**self.p
        return np.where(ratio >= 1.0, ratio**self.p, ratio**self.p_long)

    def shocked(
        self, sigma: float | np.ndarray, dte_days: float | np.ndarray, direction: str
    ) -> np.ndarray:
        """Shocked volatility for ``direction`` in ``up``/``none``/``down`` (broadcasts)."""
        if direction not in VOL_DIRECTIONS:
            raise ValueError(
                f"direction must be one of {sorted(VOL_DIRECTIONS)}, got {direction!r}"
            )
        return self._shock(
            np.asarray(sigma, dtype=np.float64), self.factor(dte_days), VOL_DIRECTIONS[direction]
        )

    def _shock(self, sigma: np.ndarray, f: np.ndarray, code: np.ndarray | int) -> np.ndarray:
        up = np.maximum(sigma * (1.0 + self.a * f), self.floor_vol)
        down = sigma * np.maximum(0.0, 1.0 - self.b * f)
        return np.where(code > 0, up, np.where(code < 0, down, sigma))


@dataclass(frozen=True)
class Scenario:
    """One scenario of a grid (see the module docstring for the meaning of the fields)."""

    move: Fraction
    unit: str = "psr"
    vol: str = "none"
    weight: Fraction = Fraction(1)
    weight_rule: str = "fixed"
    tilt: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "move", _fraction("move", self.move))
        object.__setattr__(self, "weight", _fraction("weight", self.weight))
        object.__setattr__(self, "tilt", _fraction("tilt", self.tilt))
        if abs(self.tilt) > 1:
            raise ValueError(f"tilt must be in [-1, 1], got {self.tilt}")
        if self.tilt and (self.weight_rule != "fixed" or self.weight != 1):
            raise ValueError(
                "a tilted scenario needs weight 1 and weight_rule 'fixed': the chain adds the "
                "tilt to a future's move unweighted"
            )
        if self.unit not in _UNITS:
            raise ValueError(f"unit must be one of {_UNITS}, got {self.unit!r}")
        if self.vol not in VOL_DIRECTIONS:
            raise ValueError(f"vol must be one of {tuple(VOL_DIRECTIONS)}, got {self.vol!r}")
        if self.weight_rule not in _WEIGHT_RULES:
            raise ValueError(
                f"weight_rule must be one of {_WEIGHT_RULES}, got {self.weight_rule!r}"
            )
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.unit == "price" and self.move <= -1:
            raise ValueError(f"move of unit 'price' must be > -1 (-100%), got {self.move}")
        if self.weight_rule == "psr_over_move" and self.move == 0:
            raise ValueError("weight_rule 'psr_over_move' needs a non-zero move")
        if self.unit == "price" and self.weight_rule == "fixed" and self.move != 0:
            raise ValueError(
                "a move of unit 'price' needs weight_rule 'psr_over_move': with a fixed weight its "
                "weighted move is not linear in the scan range, so the chain cannot price futures"
            )

    @property
    def linear_coefficient(self) -> Fraction:
        """Exact ``c``: weighted price move in scan ranges (``docs/fixed-point.md`` §3)."""
        if self.weight_rule == "psr_over_move":
            return self.weight if self.move > 0 else -self.weight
        return self.move * self.weight

    @property
    def label(self) -> str:
        """Readable name, e.g. ``+1/3 PSR, vol up, w 1`` or ``+300%, vol up, w 7/10 PSR/|move|``."""
        sign = "+" if self.move > 0 else ""
        if self.unit == "psr":
            move = f"{sign}{self.move} PSR"
        else:
            move = f"{sign}{float(self.move) * 100:g}%"
        rule = " PSR/|move|" if self.weight_rule == "psr_over_move" else ""
        tilt = f", tilt {'+' if self.tilt > 0 else ''}{self.tilt}" if self.tilt else ""
        return f"{move}, vol {self.vol}, w {self.weight}{rule}{tilt}"

    def to_dict(self) -> dict[str, str]:
        out = {
            "move": str(self.move),
            "unit": self.unit,
            "vol": self.vol,
            "weight": str(self.weight),
            "weight_rule": self.weight_rule,
        }
        if self.tilt:
            out["tilt"] = str(self.tilt)
        return out


@dataclass(frozen=True)
class ScenarioGrid:
    """A named scenario grid with its volatility shock rule.

    >>> [str(c) for c in CME_SPAN_16.linear_coefficients()[-4:]]
    ['-1', '-1', '7/10', '-7/10']
    """

    name: str
    scenarios: tuple[Scenario, ...]
    vol_rule: VolShockRule = field(default_factory=VolShockRule)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("grid name must be a non-empty string")
        scenarios = tuple(self.scenarios)
        if not 0 < len(scenarios) <= MAX_SCENARIOS:
            raise ValueError(f"a grid needs 1..{MAX_SCENARIOS} scenarios, got {len(scenarios)}")
        for i, sc in enumerate(scenarios):
            if not isinstance(sc, Scenario):
                raise ValueError(f"scenarios[{i}] must be a Scenario")
        if sum(1 for sc in scenarios if sc.tilt) > MAX_TILTS:
            raise ValueError(f"a grid may tilt at most {MAX_TILTS} scenarios")
        object.__setattr__(self, "scenarios", scenarios)
        if not isinstance(self.vol_rule, VolShockRule):
            raise ValueError("vol_rule must be a VolShockRule")

    def __len__(self) -> int:
        return len(self.scenarios)

    def linear_coefficients(self) -> tuple[Fraction, ...]:
        """Exact linear coefficients ``c[s]`` (scan ranges)."""
        return tuple(sc.linear_coefficient for sc in self.scenarios)

    def linear_coefficients_wad(self) -> list[int]:
        """``c[s]`` in WAD as the admin registers them on-chain, rounded away from zero.

        Rounding away from zero makes every future's scenario move at least the exact one, so a
        future's loss is never understated by the coefficient (1/3 -> 333333333333333334).
        """
        out = []
        for c in self.linear_coefficients():
            mag = -((-abs(c) * WAD).numerator // (abs(c) * WAD).denominator)
            out.append(mag if c >= 0 else -mag)
        return out

    def tilts(self) -> tuple[Fraction, ...]:
        """Exact tilts ``t[s]`` (``docs/fixed-point.md`` §3)."""
        return tuple(sc.tilt for sc in self.scenarios)

    def tilt_coefficients_wad(self) -> list[int]:
        """``t[s]`` in WAD as the admin registers them, rounded away from zero like ``c[s]``."""
        out = []
        for t in self.tilts():
            mag = -((-abs(t) * WAD).numerator // (abs(t) * WAD).denominator)
            out.append(mag if t >= 0 else -mag)
        return out

    # Vectorised views used by the risk-array kernel -----------------------------------------

    def _column(self, attr: str) -> np.ndarray:
        return np.array([float(getattr(sc, attr)) for sc in self.scenarios])

    def _linear_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Columns such that ``move = psr * mv_psr + mv_abs`` and ``w = w_abs + psr * w_psr``."""
        is_psr = np.array([sc.unit == "psr" for sc in self.scenarios])
        tail = np.array([sc.weight_rule == "psr_over_move" for sc in self.scenarios])
        move = self._column("move")
        w = self._column("weight")
        with np.errstate(divide="ignore"):
            w_per_move = np.where(tail, w / np.where(tail, np.abs(move), 1.0), 0.0)
        mv_psr = np.where(is_psr, move, 0.0)
        mv_abs = np.where(is_psr, 0.0, move)
        # A tail on a PSR move: w * PSR / |move * PSR| = w / |move| (independent of PSR).
        w_abs = np.where(tail, np.where(is_psr, w_per_move, 0.0), w)
        w_psr = np.where(tail & ~is_psr, w_per_move, 0.0)
        return mv_psr, mv_abs, w_abs, w_psr

    def price_moves(self, psr: float | np.ndarray) -> np.ndarray:
        """Price move of every scenario as a fraction of the price, shape ``psr.shape + (S,)``."""
        mv_psr, mv_abs, _, _ = self._linear_parts()
        return np.asarray(psr, dtype=np.float64)[..., None] * mv_psr + mv_abs

    def weights(self, psr: float | np.ndarray) -> np.ndarray:
        """Effective weight of every scenario, shape ``psr.shape + (S,)``."""
        _, _, w_abs, w_psr = self._linear_parts()
        return np.asarray(psr, dtype=np.float64)[..., None] * w_psr + w_abs

    def vol_codes(self) -> np.ndarray:
        """+1 / 0 / -1 per scenario for vol up / none / down."""
        return np.array([VOL_DIRECTIONS[sc.vol] for sc in self.scenarios], dtype=np.int64)

    def shocked_vols(self, sigma: np.ndarray, dte_days: np.ndarray) -> np.ndarray:
        """Scenario volatilities, shape ``(n, S)`` for ``n`` instruments.

        An instrument has only three distinct scenario vols (down, unchanged, up): they are
        computed per instrument and gathered into the scenario columns.
        """
        sigma = np.asarray(sigma, dtype=np.float64)
        f = self.vol_rule.factor(dte_days)
        three = self.vol_rule._shock(sigma[:, None], f[:, None], np.array([-1, 0, 1])[None, :])
        return three[:, self.vol_codes() + 1]

    # Data round trip ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        rule = self.vol_rule
        return {
            "name": self.name,
            "vol_rule": {k: getattr(rule, k) for k in VolShockRule.__dataclass_fields__},
            "scenarios": [sc.to_dict() for sc in self.scenarios],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioGrid:
        """Build a grid from ``{"name", "vol_rule": {...}, "scenarios": [{...}, ...]}``.

        Scenario keys: ``move`` (number or string: ``"1/3"``, ``"-66%"``), ``unit`` (``psr`` |
        ``price``, default ``psr``), ``vol`` (``up`` | ``none`` | ``down``, default ``none``),
        ``weight`` (default 1), ``weight_rule`` (``fixed`` | ``psr_over_move``, default
        ``fixed``), ``tilt`` (forward-curve tilt in [-1, 1], default 0). ``vol_rule`` keys are
        the fields of ``VolShockRule`` (defaults if absent).

        Raises:
            ValueError: naming the offending field (``scenarios[3].vol: ...``).
        """
        if not isinstance(data, dict):
            raise ValueError("grid must be a dict")
        unknown = set(data) - {"name", "vol_rule", "scenarios"}
        if unknown:
            raise ValueError(f"grid: unknown keys {sorted(unknown)}")
        rule_data = data.get("vol_rule", {})
        if not isinstance(rule_data, dict):
            raise ValueError("vol_rule must be a dict")
        try:
            rule = VolShockRule(**rule_data)
        except TypeError as exc:
            raise ValueError(f"vol_rule: {exc}") from None
        raw = data.get("scenarios")
        if not isinstance(raw, list):
            raise ValueError("scenarios must be a list")
        scenarios = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or "move" not in item:
                raise ValueError(f"scenarios[{i}] must be a dict with a 'move'")
            try:
                scenarios.append(Scenario(**item))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"scenarios[{i}]: {exc}") from None
        return cls(name=data.get("name", ""), scenarios=tuple(scenarios), vol_rule=rule)

    @classmethod
    def from_json(cls, path: str | Path) -> ScenarioGrid:
        """Load a grid from a JSON file (the ``from_dict`` format)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _crypto_35() -> ScenarioGrid:
    # the two unmoved vol shocks also tilt the forward curve (+1 with vol up, -1 with vol down)
    tilt = {"up": 1, "none": 0, "down": -1}
    scenarios = [
        Scenario(move=m, unit="psr", vol=v, tilt=tilt[v] if m == 0 else 0)
        for m in (Fraction(0), *(s * Fraction(i, 4) for i in range(1, 5) for s in (1, -1)))
        for v in ("up", "none", "down")
    ]
    tails = ("-66%", "-33%", "50%", "100%", "200%", "300%", "400%", "500%")
    scenarios += [
        Scenario(
            move=_fraction("move", t),
            unit="price",
            vol="up",
            weight=Fraction(7, 10),
            weight_rule="psr_over_move",
        )
        for t in tails
    ]
    # the vol shocks of the parameter set (params/margin.json: Derive's, docs/parameters.md)
    return ScenarioGrid("crypto-35", tuple(scenarios), VolShockRule(**margin_params().vol_rule))


def _cme_span_16() -> ScenarioGrid:
    scenarios = [Scenario(move=0, vol=v) for v in ("up", "down")]
    for i in (1, 2, 3):
        for sign in (1, -1):
            scenarios += [Scenario(move=sign * Fraction(i, 3), vol=v) for v in ("up", "down")]
    scenarios += [Scenario(move=m, vol="none", weight=Fraction(35, 100)) for m in (2, -2)]
    # CME posts a volatility scan range per product; as a default we shock vol by 15% relative,
    # independent of time to expiry (p = 0), and no floor.
    rule = VolShockRule(a=0.15, b=0.15, p=0.0, floor_vol=0.0)
    return ScenarioGrid("cme-span-16", tuple(scenarios), rule)


CRYPTO_35: ScenarioGrid = _crypto_35()
"""docs/design.md §5: {0, +-1/4, +-1/2, +-3/4, +-1} PSR x vol up/none/down (27) + 8 tails, vol up,
weighted 0.7 * PSR / |move| (like CME's extreme 2 x 35%). The unmoved vol-up scenario tilts the
forward curve by +1, the unmoved vol-down one by -1 (``docs/fixed-point.md`` §3)."""

CME_SPAN_16: ScenarioGrid = _cme_span_16()
"""CME SPAN's 16 scenarios in CME's order: 0, +1/3, -1/3, +2/3, -2/3, +1, -1 PSR each with vol
up then down (14), then +2 and -2 PSR with vol unchanged counted at 35%."""

PRESETS: dict[str, ScenarioGrid] = {g.name: g for g in (CRYPTO_35, CME_SPAN_16)}
