"""Chain encoding of RiskOracle data: instrument ids and packed risk-array words.

Layout (docs/contracts.md, "Storage"): an instrument's slot0 is
``mark (uint96) << 160 | e (uint8) << 152 | timestamp (uint40) << 112 | entries 0..6``, slot1
holds entries 7..22 and slot2 entries 23..38, 16 bits each, little end first, two's complement.
``RiskOracle.post`` takes the instruments in that layout (``pack_post``): a header word
``mark << 160 | e << 152 | n_words << 96 | instrument id`` and, for an option, the entry part of
its storage words (``words[0]`` holds entries 0..6 in its low 112 bits). Worked example: entries
``[1, -1]`` pack to ``[0xFFFF0001]``; a future of id 7 at mark 5 posts the single word
``5 << 160 | 7``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from offchain.fixed_point import encode_risk_array

MASK96 = 2**96 - 1
SLOT0_ENTRIES = 7
SLOT_ENTRIES = 16
MARK_SHIFT = 160
EXPONENT_SHIFT = 152
TS_SHIFT = 112
WORDS_SHIFT = 96
# Exponent bytes no risk array uses mark an instrument listed but never posted, or settled
# (its mark is then the settlement price).
EXPONENT_LISTED = 254
EXPONENT_SETTLED = 255
KIND_FUTURE, KIND_CALL, KIND_PUT, KIND_PERP = 0, 1, 2, 3
# a perpetual's id carries this expiry: it never expires (never turn it into a date)
PERP_EXPIRY = 2**40 - 1


def instrument_id(code: int, kind: int, underlying: int, expiry: int) -> int:
    """``code | kind << 32 | underlying << 40 | expiry << 56`` (RiskOracle.list_instrument):
    ``code`` a future's serial or an option's strike code (``oracle_bounds.strike_code``)."""
    return code | (kind << 32) | (underlying << 40) | (expiry << 56)


def id_fields(instrument: int) -> tuple[int, int, int, int]:
    """``(code, kind, underlying, expiry)`` of an instrument id (``code``: a future's serial,
    an option's strike code, ``oracle_bounds.code_strike`` gives the strike)."""
    return (
        instrument & (2**32 - 1),
        (instrument >> 32) & 0xFF,
        (instrument >> 40) & 0xFFFF,
        (instrument >> 56) & (2**40 - 1),
    )


def n_slots(n_scenarios: int) -> int:
    """Storage words of an array of ``n_scenarios`` entries (1, 2 or 3)."""
    if n_scenarios <= SLOT0_ENTRIES:
        return 1
    if n_scenarios <= SLOT0_ENTRIES + SLOT_ENTRIES:
        return 2
    return 3


def _position(s: int) -> tuple[int, int]:
    if s < SLOT0_ENTRIES:
        return 0, 16 * s
    k = s - SLOT0_ENTRIES
    return 1 + k // SLOT_ENTRIES, 16 * (k % SLOT_ENTRIES)


def pack_entries(entries: Sequence[int]) -> list[int]:
    """The ``words`` argument of ``post()`` for int16 ``entries``."""
    words = [0] * n_slots(len(entries))
    for s, v in enumerate(entries):
        if not -(2**15) <= v < 2**15:
            raise ValueError(f"entry {s} = {v} is not int16")
        w, shift = _position(s)
        words[w] |= (v & 0xFFFF) << shift
    return words


def unpack_entries(words: Sequence[int], n_scenarios: int) -> list[int]:
    """Inverse of ``pack_entries`` (also accepts full storage words)."""
    out = []
    for s in range(n_scenarios):
        w, shift = _position(s)
        v = (words[w] >> shift) & 0xFFFF
        out.append(v - 0x10000 if v >= 0x8000 else v)
    return out


def post_header(instrument: int, mark: int, e: int = 0, n_words: int = 0) -> int:
    """Header word of one instrument in ``RiskOracle.post``:
    ``mark << 160 | e << 152 | n_words << 96 | id`` (``n_words`` entry words follow it).

    >>> post_header(7, 5) == 5 << 160 | 7
    True
    """
    if not 0 <= instrument <= MASK96:
        raise ValueError(f"instrument id {instrument} does not fit 96 bits")
    if not 0 <= mark <= MASK96:
        raise ValueError(f"mark {mark} does not fit 96 bits")
    if not 0 <= e <= 0xFF:
        raise ValueError(f"exponent {e} does not fit 8 bits")
    if not 0 <= n_words <= 3:
        raise ValueError(f"{n_words} entry words, at most 3")
    return (mark << MARK_SHIFT) | (e << EXPONENT_SHIFT) | (n_words << WORDS_SHIFT) | instrument


def pack_post(
    items: Sequence[tuple[int, int, int, Sequence[int]]],
) -> tuple[list[list[int]], list[int]]:
    """The ``options`` and ``futures`` arguments of ``RiskOracle.post`` for ``(instrument, mark,
    e, words)`` items (``words`` from ``pack_entries``; none for a future).

    An option becomes ``[header, w0, w1, w2]`` (missing words zero, the header counting the
    words given: the oracle requires ``n_slots(S)`` of them); a future or perp without exponent
    or words is its header alone. Anything else (a future with an array) goes to ``options``,
    where the oracle rejects it.

    >>> pack_post([(7, 5, 0, []), (8, 1, 2, [0xFFFF0001])]) == (
    ...     [[1 << 160 | 2 << 152 | 1 << 96 | 8, 0xFFFF0001, 0, 0]], [5 << 160 | 7])
    True
    """
    options: list[list[int]] = []
    futures: list[int] = []
    for instrument, mark, e, words in items:
        words = [int(w) for w in words]
        if id_fields(instrument)[1] in (KIND_FUTURE, KIND_PERP) and e == 0 and not words:
            futures.append(post_header(instrument, mark))
            continue
        if len(words) > 3:
            raise ValueError(f"{len(words)} entry words, at most 3")
        options.append([post_header(instrument, mark, e, len(words)), *words, 0, 0, 0][:4])
    return options, futures


@dataclass(frozen=True)
class OptionPost:
    """One instrument of a post: futures carry only the mark (their array is computed
    on-chain); options carry the exponent and packed entries."""

    instrument: int
    mark: int
    exponent: int = 0
    words: tuple[int, ...] = ()

    @classmethod
    def future(cls, instrument: int, mark: int) -> OptionPost:
        return cls(instrument, mark)

    @classmethod
    def option(cls, instrument: int, mark: int, ra_wad: Sequence[int]) -> OptionPost:
        exponent, entries = encode_risk_array(list(ra_wad))
        return cls(instrument, mark, exponent, tuple(pack_entries(entries)))

    def as_arg(self) -> tuple[int, int, int, list[int]]:
        return (self.instrument, self.mark, self.exponent, list(self.words))
