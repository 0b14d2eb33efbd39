"""Stress table of a futures calendar spread against the basis parameter.

The price history holds one close per day and no futures curve, so a +1 near / -1 far futures
spread has no realised loss to backtest (both legs are marked at the same forward). Its margin
comes from the forward-curve (tilt) scenarios, sized by the parameter set's ``basis`` (per year of
expiry gap; docs/fixed-point.md): at rate 0 the tilt moves the two forwards apart by
``basis * |tau_far - tau_near| * F``. This module sets that charge against the loss of a relative
move of one forward against the other: a stress test of the parameter, not a backtest.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.capital_efficiency import MarketPoint

__all__ = ["CALENDARS", "SHOCKS", "BasisStressRow", "basis_stress", "basis_stress_markdown"]

#: (near, far) expiries in days of the calendars stressed: a week, a month and a quarter apart.
CALENDARS: tuple[tuple[int, int], ...] = ((7, 14), (30, 60), (30, 121))
#: Relative moves of one forward against the other (fractions of the forward).
SHOCKS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05)
_YEAR_DAYS = 365.0


@dataclass(frozen=True)
class BasisStressRow:
    """One calendar at one market point: the basis charge and the loss under each shock (USD)."""

    asset: str
    forward: float
    near_days: int
    far_days: int
    charge: float
    losses: tuple[float, ...]

    @property
    def charge_share(self) -> float:
        """The charge as a fraction of the forward."""
        return self.charge / self.forward


def basis_stress(point: MarketPoint, basis: float) -> list[BasisStressRow]:
    """The calendars of ``CALENDARS`` (+1 near / -1 far future, one unit) at ``point``."""
    rows = []
    for near, far in CALENDARS:
        charge = basis * (far - near) / _YEAR_DAYS * point.forward
        losses = tuple(shock * point.forward for shock in SHOCKS)
        rows.append(BasisStressRow(point.asset, point.forward, near, far, charge, losses))
    return rows


def basis_stress_markdown(rows: list[BasisStressRow], basis: float) -> str:
    """Markdown table: the charge and, per shock, the loss with "covered" / "not covered"."""
    head = " | ".join(f"loss at {s:.1%}" for s in SHOCKS)
    lines = [
        f"| asset | calendar (days) | basis charge at {basis:g}/yr | % of forward | {head} |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in SHOCKS) + " |",
    ]
    for r in rows:
        cells = " | ".join(
            f"{loss:,.2f} ({'covered' if r.charge >= loss else 'not covered'})" for loss in r.losses
        )
        lines.append(
            f"| {r.asset} | {r.near_days} / {r.far_days} | {r.charge:,.2f} | "
            f"{r.charge_share:.2%} | {cells} |"
        )
    return "\n".join(lines) + "\n"
