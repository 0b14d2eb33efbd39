"""The round's health pass at scale: a float sweep of every account, the integer reference only
where the float answer could be wrong.

``PositionBook`` keeps every known account as one row of arrays (instrument slots and sizes,
cash, collateral), rewritten only for the accounts the round re-read. ``sweep_health`` then
computes every row's health ``equity - MM`` in float64 with the formula of the integer model
(``offchain.margin``, docs/fixed-point.md §4-§5: scenario scan per underlying on the posted
risk arrays, encoding pad, short-option minimum as a floor, collateral after haircut, settled
positions folded into cash), and with it a bound ``E`` on its distance to the integer health.
Only the accounts whose float health is at most ``E`` (all that can be below MM, so that their
order is exact too), or whose numbers the float pass cannot vouch for, go through
``account_margin_int``. Its decisions (which accounts are below MM, in which order) are the
integer model's.

The error bound (``u = 2**-53``, ``K`` the row width, ``C`` the collateral assets). Let
``B = |cash| + gross collateral + sum_k |q_k| * (max|d_k| + 2**e_k + |mark_k| + spot_k) / WAD``
(a settled position: its settlement price / WAD). Each per-slot weight (decoded entry / WAD,
mark / WAD, ``2**e`` / WAD, ``spot * som_rate / WAD**2``) carries at most 5 roundings, each
collateral factor 7; a product with a size adds 2; sums run in order over at most ``K`` legs
per (account, underlying) segment, ``K`` segments per account and ``C`` assets. So a segment's
scenario sums, pad and SOM are within ``(K + 9) u`` times the magnitudes they add up; the
maximum over scenarios and the ``max`` of worst + pad and SOM are 1-Lipschitz; MM is within
``(2K + 10) u`` times its part of ``B`` (``max|d| + 2**e + spot``), equity within
``(2K + C + 11) u`` times the rest, and ``equity - MM`` adds ``u B``. The integer model's
ceilings and floors move each term by less than a wei: per underlying the loss and the pad by
1, the SOM by 2; per collateral asset 2; the live position value 1; each settled position 1.
Hence

    |h_float - h_int| <= (2K + C + 12) u B + (3K + 2C + 1) wei,

and ``E = (2K + C + 16) * 2**-50 * B + 4 * (3K + 2C + 2)`` wei is that with a factor 8 on the
first term (it also covers the rounding of ``B`` itself) and 4 on the second. Accounts whose
magnitudes approach int256 (``WAD * B * max(1, im_factor) >= 2**250``, where the integer model
raises ``OverflowError`` as the chain reverts), holding an instrument the market does not price
(never posted, or its underlying differs from the one its id encodes), collateral it does not
know, priced collateral linked to an underlying (a spot leg in that underlying's scan,
docs/fixed-point.md §5.1, which the float pass does not model) or a perpetual (its funding
index enters equity) are always checked exactly, so they fail or pass exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from offchain.codec import id_fields
from offchain.fixed_point import WAD, div_ceil
from offchain.keeper.policy import choose_liquidations
from offchain.margin import AccountInt, Kind
from offchain.sdk import ChainMarket

__all__ = [
    "AccountsView",
    "FloatHealth",
    "HealthMap",
    "PositionBook",
    "Sweep",
    "float_health",
    "sweep_health",
]

# cash, positions, collateral, variation-margin basis
RawAccount = tuple[int, Mapping[int, int], Mapping[str, int], int]
Health = tuple[int, int, int]  # equity, IM, MM (WAD)

_EMPTY = 0  # slot 0: no instrument (padding), all weights zero
_GUARD = 2.0**250  # magnitudes beyond this go to the integer model (int256 is 2**255)
_CHUNK = 4_096  # rows per block of the float pass: its scratch arrays stay in cache


def _underlying_of_id(instrument: int) -> int:
    return id_fields(instrument)[2]


class PositionBook:
    """Every known account as one row: instrument slots and sizes grouped by underlying, cash,
    collateral amounts. Rows are rewritten in place by ``update`` (accounts re-read this round)
    and appended for new accounts; nothing is rebuilt per round.

    ``underlying_of`` maps an instrument id to its underlying (default: the field the id
    encodes, as ``RiskOracle`` lists them); the layout groups each row's positions by it.
    """

    def __init__(
        self, underlying_of: Callable[[int], int] = _underlying_of_id, width: int = 16
    ) -> None:
        self.underlying_of = underlying_of
        self.addresses: list[str] = []
        self.row: dict[str, int] = {}
        self.instruments: list[int] = [-1]  # slot -> instrument id (slot 0: none)
        self.slot_underlying: list[int] = [-1]
        self._slot_of: dict[int, int] = {}
        self.assets: list[str] = []  # collateral column -> token address
        self._asset_col: dict[str, int] = {}
        self.width = width
        cap = 1024
        self.slot = np.zeros((cap, width), dtype=np.int32)
        self.qty = np.zeros((cap, width))
        self.seg = np.zeros((cap, width), dtype=bool)  # True where a new underlying starts
        self.seg[:, 0] = True
        self.cash = np.zeros(cap)
        self.coll = np.zeros((cap, 0))

    def __len__(self) -> int:
        return len(self.addresses)

    def __contains__(self, addr: object) -> bool:
        return addr in self.row

    # ------------------------------------------------------------------ growth

    def _grow_rows(self, need: int) -> None:
        cap = self.cash.shape[0]
        if need <= cap:
            return
        new = max(need, 2 * cap)
        self.slot = np.concatenate([self.slot, np.zeros((new - cap, self.width), np.int32)])
        self.qty = np.concatenate([self.qty, np.zeros((new - cap, self.width))])
        seg = np.zeros((new - cap, self.width), dtype=bool)
        seg[:, 0] = True
        self.seg = np.concatenate([self.seg, seg])
        self.cash = np.concatenate([self.cash, np.zeros(new - cap)])
        self.coll = np.concatenate([self.coll, np.zeros((new - cap, self.coll.shape[1]))])

    def _grow_width(self, need: int) -> None:
        if need <= self.width:
            return
        extra = max(need, self.width + 8) - self.width
        rows = self.cash.shape[0]
        # padding continues each row's last segment with an empty slot of size zero
        self.slot = np.hstack([self.slot, np.zeros((rows, extra), np.int32)])
        self.qty = np.hstack([self.qty, np.zeros((rows, extra))])
        self.seg = np.hstack([self.seg, np.zeros((rows, extra), dtype=bool)])
        self.width += extra

    def _slot(self, instrument: int) -> int:
        s = self._slot_of.get(instrument)
        if s is None:
            s = self._slot_of[instrument] = len(self.instruments)
            self.instruments.append(instrument)
            self.slot_underlying.append(int(self.underlying_of(instrument)))
        return s

    def _col(self, asset: str) -> int:
        c = self._asset_col.get(asset)
        if c is None:
            c = self._asset_col[asset] = len(self.assets)
            self.assets.append(asset)
            self.coll = np.hstack([self.coll, np.zeros((self.coll.shape[0], 1))])
        return c

    # ------------------------------------------------------------------ updates

    def update(self, raws: Mapping[str, RawAccount]) -> None:
        """Write the rows of ``raws`` (``address -> (cash, {instrument: size}, {token:
        amount})`` as the chain holds them), appending rows for new addresses."""
        if not raws:
            return
        rows, counts, ids, sizes, cash, colls = [], [], [], [], [], []
        slot_of = self._slot_of.get
        for addr, (c, positions, collateral, *basis) in raws.items():
            r = self.row.get(addr)
            if r is None:
                r = self.row[addr] = len(self.addresses)
                self.addresses.append(addr)
            rows.append(r)
            counts.append(len(positions))
            ids.extend(slot_of(j) or self._slot(j) for j in positions)
            sizes.extend(positions.values())
            # the net cash (docs/fixed-point.md §10) exactly, then one rounding; the perps'
            # funding enters their unit value (`_slots`)
            cash.append(float(c - div_ceil(basis[0], WAD) if basis else c))
            colls.append([(self._col(a), float(v)) for a, v in collateral.items() if v])
        self._grow_rows(len(self.addresses))
        # each row's non-zero legs, grouped by underlying (then slot), from column 0
        q = np.array(sizes, dtype=np.float64)
        slot = np.array(ids, dtype=np.int32)
        row = np.repeat(np.arange(len(rows)), counts)
        keep = q != 0
        q, slot, row = q[keep], slot[keep], row[keep]
        und = np.array(self.slot_underlying)[slot]
        order = np.lexsort((slot, und, row))
        q, slot, row, und = q[order], slot[order], row[order], und[order]
        first = np.searchsorted(row, np.arange(len(rows)))
        k = np.arange(row.size) - first[row]
        self._grow_width(int(k.max()) + 1 if k.size else 0)
        block_slot = np.zeros((len(rows), self.width), dtype=np.int32)
        block_q = np.zeros((len(rows), self.width))
        block_seg = np.zeros((len(rows), self.width), dtype=bool)
        block_slot[row, k] = slot
        block_q[row, k] = q
        block_seg[row, k] = (k == 0) | (und != np.roll(und, 1))
        block_seg[:, 0] = True
        idx = np.asarray(rows, dtype=np.int64)
        self.slot[idx] = block_slot
        self.qty[idx] = block_q
        self.seg[idx] = block_seg
        self.cash[idx] = cash
        self.coll[idx] = 0.0
        for r, pairs in zip(rows, colls, strict=True):
            for col, v in pairs:
                self.coll[r, col] = v


# ---------------------------------------------------------------------- the float pass


@dataclass(frozen=True)
class _Slots:
    """Per-slot weights of one market (row ``s`` = book slot ``s``), in wei per wei of size.

    ``linear`` (n, S + 2): the decoded risk array / WAD (live slots), then the value of a unit
    (mark / WAD live, settlement price / WAD settled), then that settlement value alone.
    ``short`` (n, 2): ``2**e / WAD`` and ``spot * som_rate / WAD**2`` (options), live slots.
    ``held`` (n, 4): ``(max|d| + 2**e + mark + spot) / WAD`` (live) or price / WAD (settled),
    then 1.0 flags: live, unpriced (the float pass cannot value it), settled.
    ``coll`` (C, 3): net and gross value per token unit, 1.0 for an asset the market lacks.
    """

    linear: np.ndarray
    short: np.ndarray
    held: np.ndarray
    coll: np.ndarray

    @property
    def n_scenarios(self) -> int:
        return self.linear.shape[1] - 2


def _slots(market: ChainMarket, book: PositionBook) -> _Slots:
    m = market.market
    n = len(book.instruments)
    s_max = max((u.n_scenarios for u in m.underlyings.values()), default=1)
    linear = np.zeros((n, s_max + 2))
    short = np.zeros((n, 2))
    held = np.zeros((n, 4))
    for s in range(1, n):
        j = book.instruments[s]
        # a perp's value carries its funding index (docs/fixed-point.md §10), which the float
        # pass does not model: its holders are checked exactly
        perp = (j >> 32) & 0xFF == Kind.PERP
        if j in market.settled and not perp:
            price = market.settled[j] / WAD
            linear[s, s_max:] = held[s, 0] = price
            held[s, 3] = 1.0
            continue
        held[s, 1] = 1.0
        ins = m.instruments.get(j)
        if ins is None or ins.underlying != book.slot_underlying[s] or perp:
            held[s, 2] = 1.0
            continue
        und = m.underlyings[ins.underlying]
        two_e = 2.0**ins.exponent
        linear[s, : len(ins.entries)] = np.asarray(ins.entries, dtype=np.float64) * two_e / WAD
        linear[s, s_max] = ins.mark / WAD
        short[s, 0] = two_e / WAD
        if ins.kind.is_option:
            short[s, 1] = float(und.spot) * float(und.som_rate) / WAD / WAD
        held[s, 0] = (float(ins._max_abs) + two_e + ins.mark + und.spot) / WAD
    coll = np.zeros((len(book.assets), 3))
    for c, token in enumerate(book.assets):
        col = m.collaterals.get(market.asset_index.get(token, -1))
        if col is None or (col.underlying is not None and col.price != 0):
            coll[c, 2] = 1.0
            continue
        gross = 10.0 ** (18 - col.decimals) * col.price / WAD
        coll[c] = (gross * ((WAD - col.haircut) / WAD), gross, 0.0)
    return _Slots(linear, short, held, coll)


@dataclass(frozen=True)
class FloatHealth:
    """The float pass over the book's rows (arrays of ``len(book)``, wei as float64).

    ``health``: equity - MM; ``bound``: ``E``, with ``|health - integer health| <= bound``;
    ``member``: the account holds a live position or owes cash (the integer sweep's set);
    ``unsure``: whether it owes cash is within rounding (settled positions folded in);
    ``exact_only``: magnitudes near int256, or an instrument or asset the float pass cannot
    value."""

    health: np.ndarray
    bound: np.ndarray
    member: np.ndarray
    unsure: np.ndarray
    exact_only: np.ndarray


def _block(book: PositionBook, t: _Slots, im: float, r0: int, r1: int, out: FloatHealth) -> None:
    c, k, n_s = r1 - r0, book.width, t.n_scenarios
    slot, q, seg = book.slot[r0:r1], book.qty[r0:r1], book.seg[r0:r1]
    indices = slot.reshape(-1)
    # one sparse row per (account, underlying) segment of the book's rows
    starts = np.flatnonzero(seg)
    seg_ptr = np.empty(starts.size + 1, dtype=np.int32)
    seg_ptr[:-1] = starts
    seg_ptr[-1] = c * k
    seg_shape = (starts.size, t.linear.shape[0])
    lin = sp.csr_matrix((q.reshape(-1), indices, seg_ptr), shape=seg_shape) @ t.linear
    qneg = np.minimum(q, 0.0).reshape(-1)
    pad_som = sp.csr_matrix((qneg, indices, seg_ptr), shape=seg_shape) @ t.short
    worst = -lin[:, :n_s].min(axis=1)
    risk = np.maximum(np.maximum(worst, 0.0) - pad_som[:, 0], -pad_som[:, 1])
    first = np.zeros(c, dtype=np.int64)  # each row's first segment
    np.cumsum(seg.sum(axis=1)[:-1], out=first[1:])
    mm = np.add.reduceat(risk, first)
    value = np.add.reduceat(lin[:, n_s], first)
    settled = np.add.reduceat(lin[:, n_s + 1], first)
    # one sparse row per account: magnitudes and flags of what it holds
    row_ptr = np.arange(0, c * k + 1, k, dtype=np.int32)
    row_shape = (c, t.held.shape[0])
    mag, live, unpriced, has_settled = (
        sp.csr_matrix((np.abs(q).reshape(-1), indices, row_ptr), shape=row_shape) @ t.held
    ).T
    cash = book.cash[r0:r1]
    net, gross, unknown = (book.coll[r0:r1] @ t.coll).T
    equity = cash + net + value
    b = np.abs(cash) + gross + mag
    n_c = t.coll.shape[0]
    bound = (2 * k + n_c + 16) * 2.0**-50 * b + 4.0 * (3 * k + 2 * n_c + 2)
    # owes cash: the sign of cash itself, or, with settled positions folded in (a floor of at
    # most 1 wei each), a float sum whose sign is sure only beyond its rounding
    folded = cash + settled
    tol = (k + 16) * 2.0**-50 * (np.abs(cash) + mag) + 2.0 * (k + 1)
    owes = np.where(has_settled > 0, folded < -tol, cash < 0)
    out.health[r0:r1] = equity - mm
    out.bound[r0:r1] = bound
    out.member[r0:r1] = (live > 0) | owes
    out.unsure[r0:r1] = (live == 0) & (has_settled > 0) & (np.abs(folded) <= tol)
    out.exact_only[r0:r1] = (b * WAD * max(1.0, im) >= _GUARD) | (unpriced > 0) | (unknown > 0)


def float_health(market: ChainMarket, book: PositionBook, chunk: int = _CHUNK) -> FloatHealth:
    """The float pass over every row of ``book``, in blocks of ``chunk`` rows."""
    n = len(book)
    out = FloatHealth(
        np.zeros(n), np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    )
    if n == 0:
        return out
    t = _slots(market, book)
    im = market.im_factor / WAD
    for r0 in range(0, n, chunk):
        _block(book, t, im, r0, min(n, r0 + chunk), out)
    return out


# ---------------------------------------------------------------------- exact results


class AccountsView(Mapping[str, AccountInt]):
    """``address -> AccountInt`` for the market, built on access from the raw reads."""

    def __init__(self, market: ChainMarket, raws: Mapping[str, RawAccount]) -> None:
        self._market, self._raws = market, raws

    def __getitem__(self, addr: str) -> AccountInt:
        return self._market.account(*self._raws[addr])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raws)

    def __len__(self) -> int:
        return len(self._raws)


class HealthMap(Mapping[str, Health]):
    """``address -> (equity, IM, MM)`` by the integer reference, for every account in the
    sweep (a live position, or cash owed). The accounts the sweep checked exactly are filled
    in; any other is computed on access. Membership comes from the sweep itself (the book's
    rows only ever get appended, so the rows it saw keep their numbers)."""

    def __init__(
        self,
        market: ChainMarket,
        raws: Mapping[str, RawAccount],
        book: PositionBook,
        member: np.ndarray,
        exact: dict[str, Health],
    ) -> None:
        self._market, self._raws = market, raws
        self._addresses, self._row = book.addresses, book.row
        self._member = member
        self._exact = exact
        self._len = int(member.sum())

    def __contains__(self, addr: object) -> bool:
        r = self._row.get(addr)  # type: ignore[call-overload]
        return r is not None and r < self._member.size and bool(self._member[r])

    def __getitem__(self, addr: str) -> Health:
        hit = self._exact.get(addr)
        if hit is not None:
            return hit
        if addr not in self:
            raise KeyError(addr)
        st = self._market.account_margin(self._market.account(*self._raws[addr]))
        hit = self._exact[addr] = (st.equity, st.initial_margin, st.maintenance_margin)
        return hit

    def __iter__(self) -> Iterator[str]:
        for r in np.flatnonzero(self._member):
            yield self._addresses[r]

    def __len__(self) -> int:
        return self._len


@dataclass(frozen=True)
class Sweep:
    """One health pass: ``below_mm`` (health < 0 by the integer model, most negative first,
    ties by address), ``health`` (``HealthMap``: every account in the sweep), ``exact`` (the
    integer results the pass computed: every account whose float health was within its bound of
    zero or below it) and ``floats`` (the float pass)."""

    below_mm: list[str]
    health: HealthMap
    exact: Mapping[str, Health]
    floats: FloatHealth

    @property
    def checked(self) -> int:
        """Accounts the integer model ran on."""
        return len(self.exact)


def sweep_health(
    market: ChainMarket,
    book: PositionBook,
    raws: Mapping[str, RawAccount],
    chunk: int = _CHUNK,
) -> Sweep:
    """Health of every row of ``book``: the float pass, then ``account_margin_int`` on each
    account whose float health is at most its bound (or that the float pass cannot vouch for).
    ``raws`` holds the exact reads behind the book's rows; the returned ``HealthMap`` reads
    it again for the values it computes on access, so pass a copy if it changes later.

    Raises what ``ChainMarket.account_margin`` raises for an account it cannot value (an
    unknown instrument, an int256 overflow), as the integer sweep does.
    """
    if len(book) < len(raws):  # rows read outside ``update``: index them before sweeping
        book.update({a: raw for a, raw in raws.items() if a not in book})
    floats = float_health(market, book, chunk)
    check = floats.unsure | (floats.member & ((floats.health <= floats.bound) | floats.exact_only))
    member = floats.member.copy()
    exact: dict[str, Health] = {}
    for r in np.flatnonzero(check):
        addr = book.addresses[r]
        acct = market.account(*raws[addr])
        if not acct.positions and acct.cash >= 0:
            member[r] = False
            continue
        member[r] = True
        st = market.account_margin(acct)
        exact[addr] = (st.equity, st.initial_margin, st.maintenance_margin)
    below = choose_liquidations({a: eq - mm for a, (eq, _im, mm) in exact.items()}, ())
    health = HealthMap(market, raws, book, member, dict(exact))
    return Sweep(below, health, MappingProxyType(exact), floats)
