"""Black-76 prices and Greeks of European options on a forward, vectorised with numpy.

Source: F. Black, "The pricing of commodity contracts", Journal of Financial Economics 3 (1976)
167-179. With ``v = sigma * sqrt(T)``, ``d1 = (ln(F/K) + v**2/2) / v``, ``d2 = d1 - v`` and
``D = exp(-r T)``::

    call = D * (F N(d1) - K N(d2))          put = D * (K N(-d2) - F N(-d1))

Worked number (Haug 1998, p. 4; ``tests/golden/black76.csv``): F = K = 19, T = 0.75, r = 0.10,
sigma = 0.28 gives v = 0.242487, d1 = 0.121244, call = put = 1.7011.

All functions broadcast their arguments with numpy; they return a float when every argument is a
scalar and an array otherwise. ``T = 0`` or ``sigma = 0`` give the discounted intrinsic value
(and its limits for the Greeks); there are no NaNs for deep in/out-of-the-money or extreme
strikes. Invalid inputs raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

__all__ = [
    "black76_price",
    "black76_delta",
    "black76_gamma",
    "black76_vega",
    "black76_theta",
]

ArrayLike = float | np.ndarray
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _validate(
    F: object, K: object, T: object, sigma: object, r: object, is_call: object
) -> tuple[np.ndarray, ...]:
    """Check every argument once, at the edge; returns broadcast float arrays and a bool array."""
    named = {"F": F, "K": K, "T": T, "sigma": sigma, "r": r}
    arrays = {}
    for name, value in named.items():
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite (found NaN or inf)")
        arrays[name] = arr
    for name in ("F", "K"):
        if np.any(arrays[name] <= 0):
            raise ValueError(f"{name} must be > 0")
    for name in ("T", "sigma"):
        if np.any(arrays[name] < 0):
            raise ValueError(f"{name} must be >= 0")
    flags = np.asarray(is_call)
    if flags.dtype != np.bool_:
        if flags.dtype.kind not in "iu" or not np.all((flags == 0) | (flags == 1)):
            raise ValueError("is_call must be bool (or 0/1)")
        flags = flags.astype(bool)
    arrays["is_call"] = flags
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
        raise ValueError(f"argument shapes do not broadcast: {shapes}") from None
    return tuple(np.broadcast_to(a, shape) for a in arrays.values())


def _out(x: np.ndarray) -> ArrayLike:
    return float(x) if x.ndim == 0 else x


def _d1_d2(F: np.ndarray, K: np.ndarray, T: np.ndarray, sigma: np.ndarray):
    """d1, d2 and v = sigma sqrt(T); where v == 0 the d's are +-inf (0 exactly at F == K)."""
    v = sigma * np.sqrt(T)
    log_fk = np.log(F) - np.log(K)  # no overflow of F/K for extreme strikes
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = np.where(v > 0, log_fk / np.where(v > 0, v, 1.0) + 0.5 * v, np.sign(log_fk) * np.inf)
    d1 = np.where(np.isnan(d1), 0.0, d1)
    d2 = np.where(v > 0, d1 - v, d1)
    return d1, d2, v


def _pdf(d: np.ndarray) -> np.ndarray:
    """Standard normal density; 0 for |d| = inf or so large that d**2 overflows."""
    with np.errstate(over="ignore", under="ignore"):
        return _INV_SQRT_2PI * np.exp(-0.5 * d * d)


def _price_kernel(F, K, T, sigma, r, is_call) -> np.ndarray:
    """Unvalidated kernel (inputs already broadcast and checked)."""
    phi = np.where(is_call, 1.0, -1.0)
    return _price_from_logs(F, K, np.log(F) - np.log(K), sigma * np.sqrt(T), np.exp(-r * T), phi)


def _price_from_logs(F, K, log_fk, v, df, phi) -> np.ndarray:
    """``df * phi * (F N(phi d1) - K N(phi d2))`` from ``ln(F/K)`` and ``v = sigma sqrt(T)``.

    ``phi`` is +1 for calls, -1 for puts. Rounding noise is clipped to the no-arbitrage bounds
    (intrinsic <= undiscounted value <= F for a call, K for a put). The risk-array kernel calls
    this directly with ``ln(F/K)`` built from ``ln(1 + move)``. Written with in-place operations
    because it runs on (instruments x scenarios) arrays.
    """
    shape = np.broadcast_shapes(*(np.shape(x) for x in (F, K, log_fk, v, df, phi)))
    pos = v > 0
    # |ln(F/K)| / v may overflow to inf for a tiny v: that is the intended limit (N = 0 or 1).
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if np.all(pos):
            d1 = np.divide(log_fk, v, out=np.empty(shape))
            d1 += 0.5 * v
        else:
            d1 = np.where(pos, log_fk / np.where(pos, v, 1.0) + 0.5 * v, np.sign(log_fk) * np.inf)
            d1 = np.where(np.isnan(d1), 0.0, d1)
            d1 = np.broadcast_to(d1, shape).copy()
        d2 = np.subtract(d1, np.where(pos, v, 0.0), out=np.empty(shape))
    d1 *= phi
    d2 *= phi
    n1 = ndtr(d1, out=d1)
    n2 = ndtr(d2, out=d2)
    n1 *= F
    n2 *= K
    n1 -= n2
    n1 *= phi  # undiscounted value
    bound = np.subtract(F, K, out=n2)
    bound *= phi
    np.maximum(bound, 0.0, out=bound)
    np.maximum(n1, bound, out=n1)
    np.minimum(n1, np.where(phi > 0, F, K), out=n1)
    n1 *= df
    return n1


def black76_price(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike, is_call: object
) -> ArrayLike:
    """Black-76 price of a European call or put on a forward (Black 1976).

    ``call = e^{-rT} (F N(d1) - K N(d2))``, ``put = e^{-rT} (K N(-d2) - F N(-d1))``.

    >>> round(black76_price(19.0, 19.0, 0.75, 0.28, 0.10, True), 4)  # Haug (1998)
    1.7011

    Args:
        F: forward (> 0). K: strike (> 0). T: years to expiry (>= 0). sigma: volatility
        (>= 0). r: continuously compounded rate. is_call: bool (or 0/1), broadcastable.

    Raises:
        ValueError: F or K <= 0, T or sigma < 0, non-finite values, shapes that do not broadcast.
    """
    return _out(_price_kernel(*_validate(F, K, T, sigma, r, is_call)))


def black76_delta(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike, is_call: object
) -> ArrayLike:
    """dV/dF: ``e^{-rT} N(d1)`` (call), ``-e^{-rT} N(-d1)`` (put).

    At expiry (or zero vol) the step function of the payoff, 1/2 exactly at the money.

    >>> round(black76_delta(105.0, 100.0, 0.5, 0.36, 0.10, True), 4)  # Haug (1998)
    0.5946
    """
    F, K, T, sigma, r, is_call = _validate(F, K, T, sigma, r, is_call)
    d1, _, _ = _d1_d2(F, K, T, sigma)
    df = np.exp(-r * T)
    return _out(np.where(is_call, df * ndtr(d1), -df * ndtr(-d1)))


def black76_gamma(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike, is_call: object
) -> ArrayLike:
    """d2V/dF2: ``e^{-rT} n(d1) / (F sigma sqrt(T))`` for calls and puts; 0 where v = 0.

    >>> round(black76_gamma(100.0, 100.0, 1.0, 0.2, 0.0, True), 6)
    0.019848
    """
    F, K, T, sigma, r, is_call = _validate(F, K, T, sigma, r, is_call)
    d1, _, v = _d1_d2(F, K, T, sigma)
    pdf = _pdf(d1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # pdf == 0 gates the 0/0 of a subnormal v, where F * v underflows to 0 (the limit is 0).
        live = (v > 0) & (pdf > 0)
        g = np.where(live, np.exp(-r * T) * pdf / (F * np.where(live, v, 1.0)), 0.0)
    return _out(g)


def black76_vega(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike, is_call: object
) -> ArrayLike:
    """dV/dsigma (per unit of vol): ``e^{-rT} F n(d1) sqrt(T)``, calls and puts; >= 0.

    >>> round(black76_vega(100.0, 100.0, 1.0, 0.2, 0.0, True), 4)
    39.6953
    """
    F, K, T, sigma, r, is_call = _validate(F, K, T, sigma, r, is_call)
    d1, _, _ = _d1_d2(F, K, T, sigma)
    pdf = _pdf(d1)
    return _out(np.exp(-r * T) * F * pdf * np.sqrt(T))


def black76_theta(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike, is_call: object
) -> ArrayLike:
    """dV/dt per year with the forward fixed: ``r V - e^{-rT} F n(d1) sigma / (2 sqrt(T))``.

    At T = 0 (or zero vol) only the discounting term ``r V`` remains (the diffusion term is
    taken as 0 there; at the money it diverges as T -> 0).

    >>> round(black76_theta(100.0, 100.0, 1.0, 0.2, 0.0, True), 4)
    -3.9695
    """
    F, K, T, sigma, r, is_call = _validate(F, K, T, sigma, r, is_call)
    d1, _, v = _d1_d2(F, K, T, sigma)
    pdf = _pdf(d1)
    price = _price_kernel(F, K, T, sigma, r, is_call)
    sqrt_t = np.sqrt(T)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        decay = np.where(
            v > 0, np.exp(-r * T) * F * pdf * sigma / (2.0 * np.where(v > 0, sqrt_t, 1.0)), 0.0
        )
    return _out(r * price - decay)
