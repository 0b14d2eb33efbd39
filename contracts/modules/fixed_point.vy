# pragma version 0.4.3
"""
@title Fixed point constants and division helpers
@custom:contract-name fixed_point
@notice One implementation of each conversion of docs/fixed-point.md §1-§3, shared by the
        oracle and the engine. Stateless: imported without `initializes:`.
@custom:security Every helper requires `b > 0` (all callers pass WAD or a positive power of two);
                 signed `//` truncates toward zero (EVM SDIV), and the floor/ceil helpers
                 correct it by one when the remainder is non-zero.
"""


# Units (§1).
WAD: constant(uint256) = 10**18
SWAD: constant(int256) = 10**18
# Largest absolute position size, in WAD contracts.
MAX_SIZE: constant(int256) = 10**30
# Marks, spot and collateral prices are stored in 96 bits.
MAX_PRICE: constant(uint256) = 2**96 - 1
# Largest scenario count of a grid and slots per risk array.
MAX_SCENARIOS: constant(uint256) = 39
ARRAY_SLOTS: constant(uint256) = 3
# Entries stored in slot0 (after mark | e | timestamp) and in each following slot.
SLOT0_ENTRIES: constant(uint256) = 7
SLOT_ENTRIES: constant(uint256) = 16
# Largest exponent of an encoded array; 254 and 255 are sentinels (listed / settled).
MAX_EXPONENT: constant(uint256) = 127
E_LISTED: constant(uint256) = 254
E_SETTLED: constant(uint256) = 255
# Bit offsets of the instrument slot0 word (docs/contracts.md, "Storage").
MARK_SHIFT: constant(uint256) = 160
E_SHIFT: constant(uint256) = 152
TS_SHIFT: constant(uint256) = 112
MASK16: constant(uint256) = 2**16 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK24: constant(uint256) = 2**24 - 1
MASK40: constant(uint256) = 2**40 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK112: constant(uint256) = 2**112 - 1
# Instrument id: serial [0, 32) | kind [32, 40) | underlying [40, 56) | expiry [56, 96).
KIND_FUTURE: constant(uint256) = 0
KIND_CALL: constant(uint256) = 1
KIND_PUT: constant(uint256) = 2
# A perpetual: no expiry (its id carries PERP_EXPIRY), funded through the oracle's index.
KIND_PERP: constant(uint256) = 3
PERP_EXPIRY: constant(uint256) = 2**40 - 1
ID_KIND_SHIFT: constant(uint256) = 32
ID_UNDERLYING_SHIFT: constant(uint256) = 40
ID_EXPIRY_SHIFT: constant(uint256) = 56
MAX_UNDERLYING_ID: constant(uint256) = 2**16 - 1
# Maximum number of positions per account.
MAX_POSITIONS: constant(uint256) = 32
# Maximum number of listed non-cash collateral assets (and per account).
MAX_ASSETS: constant(uint256) = 8
# Maximum number of collateral assets linked to an underlying (docs/fixed-point.md §5.1).
MAX_LINKED: constant(uint256) = 2


@internal
@pure
def div_trunc(a: int256, b: int256) -> int256:
    """
    @notice Division rounding toward zero (EVM SDIV).
    """
    return a // b


@internal
@pure
def div_floor(a: int256, b: int256) -> int256:
    """
    @notice Division rounding toward minus infinity; `b > 0`.
    """
    q: int256 = a // b
    # unsafe_mul: |q * b| <= |a|, no overflow; unsafe_sub: q > min(int256) since b >= 1 and q
    # is negative only when a is, so q - 1 >= a - 1 > min(int256) unless a == min(int256) and
    # b == 1, in which case q * b == a and no correction happens.
    if a < 0 and unsafe_mul(q, b) != a:
        return unsafe_sub(q, 1)
    return q


@internal
@pure
def div_ceil(a: int256, b: int256) -> int256:
    """
    @notice Division rounding toward plus infinity; `b > 0`.
    """
    q: int256 = a // b
    # unsafe_mul: |q * b| <= |a|; unsafe_add: a > 0 so q <= a < max(int256) when corrected.
    if a > 0 and unsafe_mul(q, b) != a:
        return unsafe_add(q, 1)
    return q


@internal
@pure
def id_kind(instrument: uint256) -> uint256:
    """
    @notice Kind encoded in an instrument id (0 future, 1 call, 2 put).
    """
    return (instrument >> ID_KIND_SHIFT) & 255


@internal
@pure
def id_underlying(instrument: uint256) -> uint256:
    """
    @notice Underlying id encoded in an instrument id.
    """
    return (instrument >> ID_UNDERLYING_SHIFT) & MASK16


@internal
@pure
def id_expiry(instrument: uint256) -> uint256:
    """
    @notice Expiry (unix seconds) encoded in an instrument id.
    """
    return (instrument >> ID_EXPIRY_SHIFT) & MASK40


@internal
@pure
def entry_at(word: uint256, k: uint256) -> int256:
    """
    @notice The k-th int16 entry (little end first) of a packed word, sign extended.
    """
    # unsafe_sub: the xor result is in [0, 65535], so the difference is in [-32768, 32767].
    return unsafe_sub(convert(((word >> (k << 4)) & MASK16) ^ 32768, int256), 32768)


@internal
@pure
def collateral_value(amount: uint256, scale: uint256, haircut: uint256, price: uint256) -> int256:
    """
    @notice coll = div_floor(div_floor(amount * scale * price, WAD) * (WAD - haircut), WAD)
            (§4); every term is non-negative, so floor is `//`. Deposit caps keep
            amount * scale <= 2**128, so no product overflows.
    """
    return convert(amount * scale * price // WAD * (WAD - haircut) // WAD, int256)


@pure
@internal
def _bitlen(x: uint256) -> uint256:
    """
    @dev Bit length of x < 2**128 (futures magnitudes are below 2**100).
    """
    n: uint256 = 0
    y: uint256 = x
    if y >> 64 != 0:
        y = y >> 64
        n = 64
    if y >> 32 != 0:
        y = y >> 32
        n += 32
    if y >> 16 != 0:
        y = y >> 16
        n += 16
    if y >> 8 != 0:
        y = y >> 8
        n += 8
    if y >> 4 != 0:
        y = y >> 4
        n += 4
    if y >> 2 != 0:
        y = y >> 2
        n += 2
    if y >> 1 != 0:
        y = y >> 1
        n += 1
    return n + y
