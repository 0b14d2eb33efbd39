"""Fixed-point conventions shared with the contracts (``docs/fixed-point.md``, normative).

Everything here works on exact Python integers; no floats except at the ``to_wad`` boundary.
Section numbers (§) refer to ``docs/fixed-point.md``.

Worked example (§3): a risk array ``[-3e18, 5e17]`` (lose 3 USD, gain 0.5 USD per long unit)
has ``bitlen(3e18 - 1) = 62``, so ``e = 47`` and the entries are ``3e18 >> 47 = 21316`` (negated
with floor: ``-21317``) and ``5e17 >> 47 = 3552``::

    >>> encode_risk_array([-3 * WAD, WAD // 2])
    (47, [-21317, 3552])
    >>> decode_risk_array(47, [-21317, 3552])
    [-3000101039270526976, 499899558638125056]
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from numbers import Integral

import numpy as np

WAD: int = 10**18
"""One unit in 18-decimal fixed point."""

MAX_SIZE: int = 10**30
"""Largest absolute position size ``|q|`` (WAD contracts)."""

INT16_MIN: int = -(2**15)
INT16_MAX: int = 2**15 - 1
UINT8_MAX: int = 2**8 - 1
"""Largest exponent ``e`` (stored as uint8)."""

MAX_PRICE: int = 2**96
"""Marks, spot and collateral prices are ``< MAX_PRICE`` (§1)."""

MAX_SCENARIOS: int = 39
"""Largest scenario count ``S`` of a registered grid (§7)."""

INT256_MIN: int = -(2**255)
INT256_MAX: int = 2**255 - 1

_EXACT = Context(prec=400)  # enough digits that scaling by 10**18 never rounds

YEAR: int = 31_536_000
"""Seconds of a year fraction (§1)."""

TAU_CAP: int = 2 * YEAR
"""Longest time to expiry the curve shift counts (§3)."""

MAX_BASIS: int = WAD // 2
"""Largest basis of an underlying (WAD per year, §3)."""

MAX_ROLL: int = 14 * 86_400
"""Longest roll window of an underlying (seconds, §3)."""

MAX_TILTS: int = 2
"""Most non-zero tilts a grid may carry (§3)."""

ENTRY_BITS: int = 15
"""Magnitude bits of an int16 entry: ``e = max(0, max_s bitlen(m_s) - ENTRY_BITS)``."""


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _check_divisor(b: object) -> int:
    b = _check_int("b", b)
    if b <= 0:
        raise ValueError(f"b must be > 0, got {b}")
    return b


def div_trunc(a: int, b: int) -> int:
    """``a / b`` rounded toward zero (EVM ``SDIV``, Vyper ``//`` on signed ints). ``b > 0``.

    >>> div_trunc(-7, 2), div_trunc(7, 2)
    (-3, 3)
    """
    a = _check_int("a", a)
    b = _check_divisor(b)
    q = abs(a) // b
    return q if a >= 0 else -q


def div_floor(a: int, b: int) -> int:
    """``a / b`` rounded toward minus infinity. ``b > 0``.

    >>> div_floor(-7, 2), div_floor(7, 2)
    (-4, 3)
    """
    a = _check_int("a", a)
    b = _check_divisor(b)
    return a // b


def div_ceil(a: int, b: int) -> int:
    """``a / b`` rounded toward plus infinity. ``b > 0``.

    >>> div_ceil(-7, 2), div_ceil(7, 2)
    (-3, 4)
    """
    a = _check_int("a", a)
    b = _check_divisor(b)
    return -((-a) // b)


def to_wad(x: float | int | str | Decimal | np.ndarray | Sequence[float]) -> int | list:
    """A number in WAD: ``x * 10**18`` rounded to the nearest integer, half to even.

    ``x`` is taken at the decimal value it is written as: an ``int``, ``str`` or ``Decimal``
    exactly, a float through its shortest representation (``str(0.1) == "0.1"``), so a config's
    ``0.2`` is exactly ``2 * 10**17`` and the keeper's ``61000.0`` exactly ``61_000 * WAD``. Only
    a value with more than 18 decimals rounds, by at most half a wei. An array (any shape) gives
    nested lists of ``int`` of the same shape.

    >>> to_wad("0.2"), to_wad(1.5), to_wad(-2.5e-18), to_wad([0.25, -1.0])
    (200000000000000000, 1500000000000000000, -2, [250000000000000000, -1000000000000000000])

    Raises:
        ValueError: for a bool, text that is not a number, NaN or an infinity.
    """
    if isinstance(x, np.ndarray) or (isinstance(x, Sequence) and not isinstance(x, str)):
        return [to_wad(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, bool | np.bool_):
        raise ValueError("a number is needed, got bool")
    if isinstance(x, Integral):
        return int(x) * WAD
    try:
        d = Decimal(str(float(x)) if isinstance(x, np.floating) else str(x))
    except InvalidOperation:
        raise ValueError(f"{x!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{x} is not finite")
    return int(d.scaleb(18, _EXACT).to_integral_value(ROUND_HALF_EVEN))


def _magnitude(ra: int) -> int:
    """``m_s`` of §3: ``ra`` if ``ra >= 0`` else ``-ra - 1`` (the two's-complement magnitude)."""
    return ra if ra >= 0 else -ra - 1


def risk_array_exponent(ra_wad: Sequence[int]) -> int:
    """Exponent ``e = max(0, max_s bitlen(m_s) - 15)`` of §3.

    Raises:
        ValueError: empty array, non-int entries, or ``e`` above 255 (does not fit uint8).
    """
    if len(ra_wad) == 0:
        raise ValueError("ra_wad must not be empty")
    bits = max(_magnitude(_check_int("ra_wad[s]", v)).bit_length() for v in ra_wad)
    e = max(0, bits - ENTRY_BITS)
    if e > UINT8_MAX:
        raise ValueError(f"ra_wad: exponent {e} does not fit uint8 (values too large)")
    return e


def encode_risk_array(ra_wad: Sequence[int]) -> tuple[int, list[int]]:
    """Encode a WAD risk array as ``(e, entries)`` per §3: ``entry[s] = ra[s] >> e`` (floor).

    The decoded value ``entry * 2**e`` satisfies ``decoded <= ra < decoded + 2**e``: it never
    overstates the gain of a long unit; a short's understated loss is below ``|q| * 2**e / WAD``
    and is charged back by the precision pad of §5.

    Raises:
        ValueError: empty array, non-int values, more than ``MAX_SCENARIOS`` scenarios, or an
            exponent above 255.
    """
    if len(ra_wad) > MAX_SCENARIOS:
        raise ValueError(f"ra_wad has {len(ra_wad)} scenarios, at most {MAX_SCENARIOS}")
    e = risk_array_exponent(ra_wad)
    entries = [int(v) >> e for v in ra_wad]
    return e, entries


def decode_risk_array(e: int, entries: Sequence[int]) -> list[int]:
    """Decode ``(e, entries)`` to WAD values ``entry * 2**e``.

    Raises:
        ValueError: ``e`` outside ``[0, 255]``, an entry outside int16, empty or too many entries.
    """
    e = _check_int("e", e)
    if not 0 <= e <= UINT8_MAX:
        raise ValueError(f"e must be in [0, {UINT8_MAX}], got {e}")
    if not 0 < len(entries) <= MAX_SCENARIOS:
        raise ValueError(f"entries must hold 1..{MAX_SCENARIOS} values, got {len(entries)}")
    out = []
    for v in entries:
        v = _check_int("entries[s]", v)
        if not INT16_MIN <= v <= INT16_MAX:
            raise ValueError(f"entries[s] must be int16, got {v}")
        out.append(v << e)
    return out


def scenario_lin_wad(c: Sequence[int], psr: int) -> list[int]:
    """``lin[s] = div_floor(c[s] * psr, WAD)`` (§3): the scenario move of one unit of spot per
    unit of price, the oracle's ``linear_coefficients`` view and the base of a linked
    collateral's spot leg (§5.1)."""
    return [div_floor(_check_int("c[s]", cs) * _check_int("psr", psr), WAD) for cs in c]


def curve_shift_wad(expiry: int, ts: int, basis: int, roll: int, psr: int) -> int:
    """Curve shift ``h`` (signed WAD) of the forward of ``expiry`` at batch time ``ts`` (§3).

    ``h = div_floor(basis * tau, YEAR) - roll_j`` with ``tau = min(max(expiry - ts, 0),
    TAU_CAP)`` and ``roll_j = div_floor(psr * min(2 * (roll - tau), roll), roll)`` inside the
    roll window (``tau < roll``), else 0. No expiry (``expiry == 0``): 0.

    >>> curve_shift_wad(91 * 86_400, 0, WAD // 20, 4 * 86_400, WAD // 10)  # a quarter out
    12465753424657534
    >>> curve_shift_wad(86_400, 0, WAD // 20, 4 * 86_400, WAD // 10)  # inside R / 2: - psr
    -99863013698630137

    Raises:
        ValueError: a negative time, ``basis`` outside ``[0, MAX_BASIS]``, ``roll`` outside
            ``[0, MAX_ROLL]`` or ``psr`` outside ``[0, WAD]``.
    """
    expiry, ts = _check_int("expiry", expiry), _check_int("ts", ts)
    basis, roll, psr = _check_int("basis", basis), _check_int("roll", roll), _check_int("psr", psr)
    if expiry < 0 or ts < 0:
        raise ValueError(f"expiry and ts must be >= 0, got {expiry} and {ts}")
    if not 0 <= basis <= MAX_BASIS:
        raise ValueError(f"basis must be in [0, {MAX_BASIS}] (WAD per year), got {basis}")
    if not 0 <= roll <= MAX_ROLL:
        raise ValueError(f"roll must be in [0, {MAX_ROLL}] seconds, got {roll}")
    if not 0 <= psr <= WAD:
        raise ValueError(f"psr must be in [0, WAD], got {psr}")
    if expiry == 0:
        return 0
    tau = min(max(expiry - ts, 0), TAU_CAP)
    near = psr * min(2 * (roll - tau), roll) // roll if tau < roll else 0
    return basis * tau // YEAR - near


def futures_risk_array_wad(
    mark: int, c: Sequence[int], psr: int, t: Sequence[int] | None = None, h: int = 0
) -> list[int]:
    """Risk array of one long future computed on-chain from its mark (§3).

    ``lin[s] = div_floor(c[s] * psr, WAD) + div_floor(t[s] * h, WAD)`` and ``ra[s] =
    div_floor(mark * lin[s], WAD)``: every step rounds toward minus infinity, so a long's loss
    is never understated. ``t`` are the grid's tilts (None: all zero), ``h`` the expiry's curve
    shift (``curve_shift_wad``).

    >>> futures_risk_array_wad(100 * WAD, [WAD // 3, -7 * WAD // 10], 16 * WAD // 100)
    [5333333333333333300, -11200000000000000000]
    >>> futures_risk_array_wad(3 * WAD // 2, [-WAD // 3], 16 * WAD // 100)  # trunc: ...99999
    [-80000000000000001]

    Raises:
        ValueError: ``mark`` outside ``(0, 2**96)``, ``psr`` outside ``(0, WAD]``, or ``c`` empty,
            longer than ``MAX_SCENARIOS`` or not ints.
    """
    mark = _check_int("mark", mark)
    psr = _check_int("psr", psr)
    if not 0 < mark < MAX_PRICE:
        raise ValueError(f"mark must be in (0, 2**96), got {mark}")
    if not 0 < psr <= WAD:
        raise ValueError(f"psr must be in (0, WAD], got {psr}")
    if not 0 < len(c) <= MAX_SCENARIOS:
        raise ValueError(f"c must hold 1..{MAX_SCENARIOS} coefficients, got {len(c)}")
    t = [0] * len(c) if t is None else t
    if len(t) != len(c):
        raise ValueError(f"t must hold one tilt per scenario ({len(c)}), got {len(t)}")
    h = _check_int("h", h)
    out = []
    for cs, ts in zip(c, t, strict=True):
        lin = div_floor(_check_int("c[s]", cs) * psr, WAD)
        lin += div_floor(_check_int("t[s]", ts) * h, WAD)
        out.append(div_floor(mark * lin, WAD))
    return out
