"""Chain encoding of RiskOracle data: instrument ids and packed risk-array words.

Layout (docs/contracts.md, "Storage"): an instrument's slot0 is
``mark (uint96) << 160 | e (uint8) << 152 | timestamp (uint40) << 112 | entries 0..6``, slot1
holds entries 7..22 and slot2 entries 23..38, 16 bits each, little end first, two's complement.
``RiskOracle.post`` takes the entry part of those words: ``words[0]`` holds entries 0..6 in its
low 112 bits. Worked example: entries ``[1, -1]`` pack to ``[0xFFFF0001]``.
"""

from __future__ import annotations

from collections.abc import Sequence

SLOT0_ENTRIES = 7
SLOT_ENTRIES = 16
MARK_SHIFT = 160
E_SHIFT = 152
TS_SHIFT = 112
E_LISTED = 254
E_SETTLED = 255
KIND_FUTURE, KIND_CALL, KIND_PUT = 0, 1, 2


def instrument_id(serial: int, kind: int, underlying: int, expiry: int) -> int:
    """``serial | kind << 32 | underlying << 40 | expiry << 56`` (RiskOracle.list_instrument)."""
    return serial | (kind << 32) | (underlying << 40) | (expiry << 56)


def id_fields(instrument: int) -> tuple[int, int, int, int]:
    """``(serial, kind, underlying, expiry)`` of an instrument id."""
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
