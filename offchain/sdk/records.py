"""What the SDK hands to people: named records in human units (USD and token amounts as exact
``Decimal``, instruments and tokens by name, outcomes as enum names), the contracts' outcome codes
as enums, and the conversions between human input and the contracts' integers.

Each record prints as a person reads it (``repr`` and ``str`` alike, so ``ape console`` and a
doctest show the same text). WAD values convert exactly, and human input converts exactly or is
refused:

>>> usd(1_234_500_000_000_000_000_000)
Decimal('1234.5')
>>> usd(10**23)
Decimal('100000')
>>> Position("BTC-20270326-F", usd(-3 * 10**18))
-3 BTC-20270326-F
>>> to_token_units("0.1", 6, "amount", "10")
100000
>>> to_token_units("0.0000001", 6, "amount", "10")
Traceback (most recent call last):
offchain.sdk.records.InputError: amount '0.0000001' has more than 6 decimals: round it to 6 places
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from offchain.errors import UserError

__all__ = [
    "CONTRACT_CODES",
    "Authorisation",
    "Balances",
    "Holding",
    "InputError",
    "Instrument",
    "LiquidationPreview",
    "LiquidationStatus",
    "MarginOutcome",
    "MarginReport",
    "MarginStatus",
    "Position",
    "TradePreview",
    "TradeRecord",
    "UnderlyingRisk",
    "WithdrawPreview",
    "parse_number",
    "positions",
    "to_token_units",
    "to_wad",
    "units",
    "usd",
]

WAD_DIGITS = 18
_EXACT = Context(prec=100)  # every uint256/int256 fits: conversions never round


class InputError(UserError, ValueError):
    """Bad input from a person: the message is one line, the problem and then the fix."""


# --------------------------------------------------------------------------- outcome codes


class MarginOutcome(enum.IntEnum):
    """Outcome codes of ``MarginViews.trade_preview`` / ``withdraw_preview`` (and of the engine's
    own checks): the constants of ``contracts/modules/margin.vy``, by the same names."""

    ALLOWED = 0
    DENIED_PAUSED = 1
    DENIED_STALE = 2
    DENIED_MARGIN = 3
    DENIED_LIMIT = 4
    DENIED_COUNT = 5
    DENIED_BALANCE = 6

    @property
    def meaning(self) -> str:
        return _MARGIN_MEANING[self]


_MARGIN_MEANING = {
    MarginOutcome.ALLOWED: "allowed",
    MarginOutcome.DENIED_PAUSED: "the engine is paused",
    MarginOutcome.DENIED_STALE: "oracle data is stale: the keeper has to post first",
    MarginOutcome.DENIED_MARGIN: "equity would be below initial margin",
    MarginOutcome.DENIED_LIMIT: "over the instrument's position limit",
    MarginOutcome.DENIED_COUNT: "too many open positions",
    MarginOutcome.DENIED_BALANCE: "more than the account holds",
}


class LiquidationStatus(enum.IntEnum):
    """Status codes of ``LiquidationViews.liquidation_preview`` (and of ``Liquidator``): the
    constants of ``contracts/modules/liquidation.vy``, by the same names."""

    OK = 0
    HEALTHY = 1
    STALE = 2
    BELOW_MINIMUM = 3
    BAD_CAP = 4
    UNPRICED = 5
    NOT_AN_ACCOUNT = 6

    @property
    def meaning(self) -> str:
        return _LIQUIDATION_MEANING[self]


_LIQUIDATION_MEANING = {
    LiquidationStatus.OK: "liquidatable",
    LiquidationStatus.HEALTHY: "healthy: equity is at or above MM",
    LiquidationStatus.STALE: "stale oracle data: the keeper posts before anyone liquidates",
    LiquidationStatus.BELOW_MINIMUM: "the cap is below the minimum fraction",
    LiquidationStatus.BAD_CAP: "the cap is outside (0, 1]",
    LiquidationStatus.UNPRICED: "insolvent, holding collateral without a fresh price: waits for it",
    LiquidationStatus.NOT_AN_ACCOUNT: "a system contract (insurance fund, engine, admin, oracle)",
}

# The one place that says which contract source defines each enum's codes (checked by a test).
CONTRACT_CODES: dict[type[enum.IntEnum], str] = {
    MarginOutcome: "contracts/modules/margin.vy",
    LiquidationStatus: "contracts/modules/liquidation.vy",
}


class MarginStatus(enum.StrEnum):
    """Where an account stands, from its equity, IM, MM and the freshness of its data."""

    OK = "ok"
    BELOW_IM = "below IM: no new risk"
    LIQUIDATABLE = "below MM: liquidatable"
    BELOW_MM_STALE = "below MM on stale data: liquidatable once the keeper posts"


# --------------------------------------------------------------------------- conversions


def usd(wad: int) -> Decimal:
    """A WAD integer as an exact Decimal (USD values, sizes and fractions alike)."""
    return units(wad, WAD_DIGITS)


def units(amount: int, decimals: int) -> Decimal:
    """Token units as an exact Decimal amount without trailing zeros: ``units(1_500_000, 6)`` is
    ``Decimal("1.5")``, ``units(10**23, 18)`` is ``Decimal("100000")``."""
    d = Decimal(int(amount)).scaleb(-decimals, _EXACT).normalize(_EXACT)
    return d if d.as_tuple().exponent <= 0 else d.quantize(Decimal(1), context=_EXACT)


def parse_number(value: Any, what: str, example: str) -> Decimal:
    """A finite number a person typed (int, float, Decimal or numeric string) as a Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InputError(
            f"{what} must be a number, not {type(value).__name__} {value!r}: give e.g. {example}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what} must be finite, not {value}: give e.g. {example}")
    try:
        d = Decimal(str(value).replace("_", "").replace(",", "")) if value != "" else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        raise InputError(f"{what} {value!r} is not a number: give e.g. {example}")
    return d


def _scaled(value: Any, decimals: int, what: str, example: str) -> int:
    d = parse_number(value, what, example)
    scaled = d.scaleb(decimals, _EXACT)
    if scaled != scaled.to_integral_value():
        raise InputError(
            f"{what} {value!r} has more than {decimals} decimals: round it to {decimals} places"
        )
    return int(scaled)


def to_wad(value: Any, what: str, example: str) -> int:
    """A human number (USD, contracts, fraction) as a WAD integer, exactly or not at all."""
    return _scaled(value, WAD_DIGITS, what, example)


def to_token_units(value: Any, decimals: int, what: str, example: str) -> int:
    """A human token amount as token units, exactly or not at all."""
    return _scaled(value, decimals, what, example)


# --------------------------------------------------------------------------- formatting


def _money(d: Decimal) -> str:
    return f"{d:,.2f}"


def _qty(d: Decimal) -> str:
    """A size or token amount without trailing zeros: ``1.5``, ``-3``, ``10,000``."""
    n = d.normalize()
    if n == n.to_integral_value():
        return f"{n.to_integral_value():,f}"
    return f"{n:,f}"


class _Readable:
    """``repr`` is the readable text: ``ape console`` echoes results with ``repr``."""

    def __repr__(self) -> str:
        return str(self)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, repr=False)
class Instrument(_Readable):
    """A listed instrument: its name (``BTC-20270326-F``), id, underlying, kind, strike (USD, for
    options) and expiry."""

    name: str
    id: int
    underlying: str
    kind: str
    strike: Decimal | None
    expiry: datetime | None  # None: a perp (never expires)

    def __str__(self) -> str:
        what = self.kind if self.strike is None else f"{self.kind} {_money(self.strike)}"
        if self.expiry is None:
            return f"{self.name}: {what} on {self.underlying}, never expires"
        return f"{self.name}: {what} on {self.underlying}, expires {self.expiry:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True, repr=False)
class Position(_Readable):
    """A signed size (contracts; > 0 long) of an instrument."""

    instrument: str
    size: Decimal

    def __str__(self) -> str:
        return f"{_qty(self.size)} {self.instrument}"


@dataclass(frozen=True, repr=False)
class Holding(_Readable):
    """An amount of a token (in the token's own units: 1.5 WETH)."""

    token: str
    amount: Decimal

    def __str__(self) -> str:
        return f"{_qty(self.amount)} {self.token}"


@dataclass(frozen=True, repr=False)
class Balances(_Readable):
    """What an account holds in the engine: cash (USD) and collateral tokens."""

    account: str
    cash: Decimal
    collateral: tuple[Holding, ...]

    def __str__(self) -> str:
        held = "".join(f", {h}" for h in self.collateral)
        return f"{self.account}: cash {_money(self.cash)} USD{held}"


@dataclass(frozen=True, repr=False)
class Authorisation(_Readable):
    """Whether ``venue`` may book trades for ``account``: the account's authorisation and the
    venue's role (a venue needs both)."""

    account: str
    venue: str
    authorised: bool
    venue_role: bool

    def __str__(self) -> str:
        says = "authorises" if self.authorised else "does not authorise"
        role = "holds" if self.venue_role else "lacks"
        return f"{self.account} {says} venue {self.venue} ({role} the venue role)"


@dataclass(frozen=True, repr=False)
class TradeRecord(_Readable):
    """A booked trade: ``buyer`` went long ``size`` of ``instrument`` at ``price`` (USD)."""

    venue: str
    buyer: str
    seller: str
    instrument: str
    size: Decimal
    price: Decimal
    transaction: str

    def __str__(self) -> str:
        return (
            f"traded {_qty(self.size)} {self.instrument} at {_money(self.price)}: "
            f"buyer {self.buyer}, seller {self.seller}"
        )


@dataclass(frozen=True, repr=False)
class UnderlyingRisk(_Readable):
    """Why an underlying costs the margin it does: its worst scenario (index and label), the loss
    there, the precision pad and the short-option minimum; risk is loss + pad or the minimum."""

    underlying: str
    scenario: int
    label: str
    loss: Decimal
    pad: Decimal
    short_option_minimum: Decimal
    risk: Decimal

    def __str__(self) -> str:
        return (
            f"{self.underlying}: worst scenario {self.scenario} ({self.label}) loss "
            f"{_money(self.loss)}, pad {_money(self.pad)}, short-option minimum "
            f"{_money(self.short_option_minimum)} -> risk {_money(self.risk)}"
        )


@dataclass(frozen=True, repr=False)
class MarginReport(_Readable):
    """An account's margin in USD as the engine values it (pending socialised charge deducted),
    its positions, the worst scenario per underlying, and the off-chain reference's equity and MM
    computed from the same chain data (they agree to the wei unless something is wrong)."""

    account: str
    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    pending_charge: Decimal
    fresh: bool
    positions: tuple[Position, ...]
    worst: tuple[UnderlyingRisk, ...]
    reference_equity: Decimal
    reference_maintenance_margin: Decimal

    @property
    def health(self) -> Decimal:
        """Equity - MM: below zero on fresh data the account is liquidatable."""
        return self.equity - self.maintenance_margin

    @property
    def status(self) -> MarginStatus:
        if self.equity < self.maintenance_margin:
            return MarginStatus.LIQUIDATABLE if self.fresh else MarginStatus.BELOW_MM_STALE
        if self.equity < self.initial_margin:
            return MarginStatus.BELOW_IM
        return MarginStatus.OK

    @property
    def reference_agrees(self) -> bool:
        return (self.reference_equity, self.reference_maintenance_margin) == (
            self.equity,
            self.maintenance_margin,
        )

    def __str__(self) -> str:
        lines = [
            self.account,
            f"equity {_money(self.equity)}  IM {_money(self.initial_margin)}  "
            f"MM {_money(self.maintenance_margin)}  health {_money(self.health)} ({self.status})",
        ]
        if self.pending_charge:
            lines.append(f"  pending socialised charge {_money(self.pending_charge)} (deducted)")
        if self.positions:
            lines.append("  positions: " + ", ".join(str(p) for p in self.positions))
        lines += [f"  {w}" for w in self.worst]
        lines.append(
            f"off-chain reference: equity {_money(self.reference_equity)}  "
            f"MM {_money(self.reference_maintenance_margin)} "
            f"({'equal' if self.reference_agrees else 'DIFFERENT'})"
        )
        return "\n".join(lines)


@dataclass(frozen=True, repr=False)
class TradePreview(_Readable):
    """``MarginViews.trade_preview``: the account's equity, IM and MM (USD) after trading ``size``
    (> 0 buys) of ``instrument`` at ``price``, and whether the engine allows it. Not covered: the
    open-interest cap and the venue authorisation."""

    account: str
    instrument: str
    size: Decimal
    price: Decimal
    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    outcome: MarginOutcome

    @property
    def allowed(self) -> bool:
        return self.outcome is MarginOutcome.ALLOWED

    def __str__(self) -> str:
        side = "buy" if self.size > 0 else "sell"
        head = f"{side} {_qty(abs(self.size))} {self.instrument} at {_money(self.price)}"
        after = _outcome(self.outcome, self.equity, self.initial_margin, self.maintenance_margin)
        return f"{head}: {after}"


@dataclass(frozen=True, repr=False)
class WithdrawPreview(_Readable):
    """``MarginViews.withdraw_preview``: equity, IM and MM (USD) after withdrawing ``amount`` of
    ``token``, and whether the engine allows it."""

    account: str
    token: str
    amount: Decimal
    equity: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    outcome: MarginOutcome

    @property
    def allowed(self) -> bool:
        return self.outcome is MarginOutcome.ALLOWED

    def __str__(self) -> str:
        head = f"withdraw {_qty(self.amount)} {self.token}"
        after = _outcome(self.outcome, self.equity, self.initial_margin, self.maintenance_margin)
        return f"{head}: {after}"


def _outcome(outcome: MarginOutcome, equity: Decimal, im: Decimal, mm: Decimal) -> str:
    """``ALLOWED`` or the refusal with its meaning, then the margin after (when the engine
    computed one: a position-count, position-limit or balance refusal comes before it)."""
    said = (
        outcome.name if outcome is MarginOutcome.ALLOWED else f"{outcome.name} ({outcome.meaning})"
    )
    if outcome in (
        MarginOutcome.DENIED_LIMIT,
        MarginOutcome.DENIED_COUNT,
        MarginOutcome.DENIED_BALANCE,
    ):
        return said
    return f"{said}; after it equity {_money(equity)}  IM {_money(im)}  MM {_money(mm)}"


@dataclass(frozen=True, repr=False)
class LiquidationPreview(_Readable):
    """``LiquidationViews.liquidation_preview``: what ``Liquidator.liquidate`` would do now. For a
    status other than ``OK`` nothing happens and the amounts are zero. ``taken`` are the positions
    the liquidator receives; ``position_cash`` is what it pays for them (negative: it receives)."""

    account: str
    status: LiquidationStatus
    fraction: Decimal
    taken: tuple[Position, ...]
    position_cash: Decimal
    penalty: Decimal
    penalty_to_liquidator: Decimal
    penalty_to_fund: Decimal
    collateral_sold: tuple[Holding, ...]
    collateral_paid: Decimal
    bad_debt: Decimal
    pending_charge: Decimal

    def __str__(self) -> str:
        head = f"{self.account}: {self.status.name} ({self.status.meaning})"
        if self.status is not LiquidationStatus.OK:
            return head
        lines = [
            head,
            f"  fraction {_qty(self.fraction)}, liquidator takes "
            + (", ".join(str(p) for p in self.taken) or "nothing")
            + f" and pays {_money(self.position_cash)}",
            f"  penalty {_money(self.penalty)} (liquidator {_money(self.penalty_to_liquidator)}, "
            f"fund {_money(self.penalty_to_fund)})",
        ]
        sold = [h for h in self.collateral_sold if h.amount]
        if sold:
            lines.append(
                "  collateral sold: "
                + ", ".join(str(h) for h in sold)
                + f" for {_money(self.collateral_paid)}"
            )
        if self.bad_debt:
            lines.append(f"  bad debt {_money(self.bad_debt)}")
        if self.pending_charge:
            lines.append(f"  pending charge realised first {_money(self.pending_charge)}")
        return "\n".join(lines)


def positions(items: Iterable[tuple[str, int]]) -> tuple[Position, ...]:
    """``Position`` records from ``(instrument name, size WAD)`` pairs, zero sizes left out."""
    return tuple(Position(name, usd(q)) for name, q in items if q)
