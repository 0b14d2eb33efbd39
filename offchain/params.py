"""The one margin parameter set: ``params/margin.json``.

Every published number reads it: the deploy config (``offchain/sdk/config.py`` fills an omitted
value and refuses a differing one), the what-if CLI's market files, the backtest, the
capital-efficiency table, the crash replay and the demo. Each value carries a ``source``: the
venue anchor or the data that chose it (docs/parameters.md has the reasoning).

The reading is strict like the deploy config's: an unknown key is refused with the closest valid
one named, a missing key or a value out of range with the field named, each in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from offchain import funding
from offchain.data import InputError
from offchain.jsonfields import Fields, read_json

__all__ = [
    "PARAMS_FILE",
    "UNDERLYING_PARAMS",
    "FundingParams",
    "MarginParams",
    "load_params",
    "margin_params",
    "parse_params",
]

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params" / "margin.json"

#: Per-underlying keys of the deploy config that the parameter set fills.
UNDERLYING_PARAMS = ("som_rate", "psr_min", "psr_max", "basis", "roll")
VOL_KEYS = ("a", "b", "p", "p_long", "floor_vol", "ref_days", "min_days")
FUNDING_KEYS = ("cap_per_hour", "interest", "dampener", "im_reserve_hours")
TOP_KEYS = (*UNDERLYING_PARAMS, "im_factor", "vol_rule", "funding")
ENTRY_KEYS = ("value", "source")

# The bounds the contracts and the models accept (RiskOracle; the basis/roll bounds on-chain:
# MAX_BASIS 0.5 per year, MAX_ROLL 14 days).
_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "som_rate": (Decimal(0), Decimal(1)),
    "psr_min": (Decimal("0.001"), Decimal(1)),
    "psr_max": (Decimal("0.001"), Decimal(1)),
    "basis": (Decimal(0), Decimal("0.5")),
    "roll": (Decimal(0), Decimal(14 * 86_400)),
    "im_factor": (Decimal(1), Decimal(3)),
}
# RiskOracle.list_instrument takes a perp's hourly cap in (0, MAX_FUNDING_CAP] as a multiple of
# 10**-6 (10**12 WAD); interest and dampener are per 8 hours; the reserve at most the 8 hours
# the oracle lets funding accrue without a post (FUNDING_GAP).
MAX_FUNDING_CAP = Decimal(funding.MAX_FUNDING_CAP) / 10**18
FUNDING_CAP_STEP = Decimal("0.000001")
_FUNDING_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "cap_per_hour": (FUNDING_CAP_STEP, MAX_FUNDING_CAP),
    "interest": (Decimal("-0.01"), Decimal("0.01")),
    "dampener": (Decimal(0), Decimal("0.01")),
    "im_reserve_hours": (Decimal(0), Decimal(8)),
}


@dataclass(frozen=True)
class FundingParams:
    """Perpetual funding (docs/parameters.md, "Funding"): the hourly cap, the interest and the
    dampener per 8 hours (``offchain.funding_rate``), and the hours of funding at the current
    rate that initial margin reserves. Fractions; ``wad`` gives the integers the chain takes."""

    cap_per_hour: Decimal
    interest: Decimal
    dampener: Decimal
    im_reserve_hours: int

    def wad(self, key: str) -> int:
        """``cap_per_hour``, ``interest`` or ``dampener`` as WAD (exact)."""
        return int(getattr(self, key) * 10**18)


@dataclass(frozen=True)
class MarginParams:
    """The parameter set (human units: fractions, seconds) and each value's source."""

    som_rate: Decimal
    psr_min: Decimal
    psr_max: Decimal
    basis: Decimal
    roll: int
    im_factor: Decimal
    vol_rule: dict[str, float]
    funding: FundingParams
    sources: dict[str, str]

    def value(self, key: str) -> Decimal:
        """A per-underlying or top-level value by its deploy-config name."""
        return Decimal(self.roll) if key == "roll" else getattr(self, key)


def _entry(path: str, where: str, obj: Any) -> tuple[Decimal, str]:
    f = Fields(path, where, obj, ENTRY_KEYS)
    return f.decimal("value"), f.text("source")


def parse_params(data: Any, source: str | Path = "params") -> MarginParams:
    """Build and validate a ``MarginParams`` from the JSON structure of ``params/margin.json``.

    Raises:
        InputError: one line naming the file and the field (an unknown key names the closest).
    """
    path = str(source)
    top = Fields(path, "", data, TOP_KEYS)
    values: dict[str, Decimal] = {}
    sources: dict[str, str] = {}
    for key in (*UNDERLYING_PARAMS, "im_factor"):
        values[key], sources[key] = _entry(path, key, top.raw(key))
        lo, hi = _RANGES[key]
        if not lo <= values[key] <= hi:
            raise top.fail(key, f"value must be in [{lo}, {hi}], got {values[key]}")
    if values["psr_min"] > values["psr_max"]:
        raise top.fail("psr_min", f"must be <= psr_max ({values['psr_max']})")
    if values["roll"] != values["roll"].to_integral_value():
        raise top.fail("roll", f"value must be whole seconds, got {values['roll']}")
    vol = Fields(path, "vol_rule", top.raw("vol_rule"), VOL_KEYS)
    rule: dict[str, float] = {}
    for key in VOL_KEYS:
        value, sources[f"vol_rule.{key}"] = _entry(path, f"vol_rule.{key}", vol.raw(key))
        if value < 0:
            raise vol.fail(key, f"value must be >= 0, got {value}")
        rule[key] = float(value)
    if rule["ref_days"] <= 0 or rule["min_days"] <= 0:
        raise vol.fail("ref_days", "ref_days and min_days must be > 0")
    fund = Fields(path, "funding", top.raw("funding"), FUNDING_KEYS)
    funding: dict[str, Decimal] = {}
    for key in FUNDING_KEYS:
        funding[key], sources[f"funding.{key}"] = _entry(path, f"funding.{key}", fund.raw(key))
        lo, hi = _FUNDING_RANGES[key]
        if not lo <= funding[key] <= hi:
            raise fund.fail(key, f"value must be in [{lo}, {hi}], got {funding[key]}")
    if funding["cap_per_hour"] % FUNDING_CAP_STEP:
        raise fund.fail(
            "cap_per_hour", f"value must be a multiple of 0.000001, got {funding['cap_per_hour']}"
        )
    for key in ("interest", "dampener"):
        if funding[key] * 10**18 % 1:
            raise fund.fail(key, f"value has more than 18 decimals: {funding[key]}")
    if funding["im_reserve_hours"] % 1:
        raise fund.fail(
            "im_reserve_hours", f"value must be whole hours, got {funding['im_reserve_hours']}"
        )
    return MarginParams(
        som_rate=values["som_rate"],
        psr_min=values["psr_min"],
        psr_max=values["psr_max"],
        basis=values["basis"],
        roll=int(values["roll"]),
        im_factor=values["im_factor"],
        vol_rule=rule,
        funding=FundingParams(
            cap_per_hour=funding["cap_per_hour"],
            interest=funding["interest"],
            dampener=funding["dampener"],
            im_reserve_hours=int(funding["im_reserve_hours"]),
        ),
        sources=sources,
    )


def load_params(path: str | Path = PARAMS_FILE) -> MarginParams:
    """``parse_params`` of a JSON file; errors name the file."""
    p = Path(path)
    return parse_params(read_json(p), p)


@cache
def margin_params() -> MarginParams:
    """The product's parameter set (``params/margin.json``), read once.

    Raises:
        InputError: if the file is missing or malformed (one line naming the field).
    """
    if not PARAMS_FILE.is_file():
        raise InputError(PARAMS_FILE, "", "missing: the margin parameter set ships with the repo")
    return load_params(PARAMS_FILE)
