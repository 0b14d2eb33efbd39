# pragma version 0.4.3
"""
@title Positions: at most MAX_POSITIONS signed sizes per account, one storage word each
@custom:contract-name positions
@notice Word = instrument id (96 bits) << 128 | size (int128 two's complement). Loading an
        account costs one SLOAD per position. Open interest per instrument is the sum of the
        long sizes (equal to the sum of the short sizes).
        A position is found by scanning the account's words: there is no index mapping to
        keep, and every caller has already read the words in the same transaction (margin
        check, liquidation), so the scan reads warm slots. A removed word is filled by the
        last one.
@custom:security Sizes are bounded by MAX_SIZE (< 2**100) before they are stored, so the
                 int128 packing is lossless. `_shift` is the only writer of words (trades,
                 settlement and the liquidation hook `_move` all go through it).
"""


from ..interfaces import IMarginEngine
from ..interfaces import IRiskOracle
from . import fixed_point as fp


MASK128: constant(uint256) = 2**128 - 1


position_words: HashMap[address, uint256[fp.MAX_POSITIONS]]
# Per account: position count [0, 8) | variation-margin basis [8, 256) (int248, WAD**2, exact;
# docs/fixed-point.md §10): the load that counts the positions reads the basis too.
account_word: HashMap[address, uint256]
open_interest: public(HashMap[uint256, uint256])


@view
@internal
def _load(account: address) -> (DynArray[uint256, fp.MAX_POSITIONS], DynArray[int256, fp.MAX_POSITIONS]):
    ids: DynArray[uint256, fp.MAX_POSITIONS] = []
    sizes: DynArray[int256, fp.MAX_POSITIONS] = []
    for i: uint256 in range(self.account_word[account] & 255, bound=fp.MAX_POSITIONS):
        w: uint256 = self.position_words[account][i]
        ids.append(w >> 128)
        # inline _size_of (hot path of every margin check): sign extension of the low 128 bits
        sizes.append(unsafe_sub(convert((w & MASK128) ^ 2**127, int256), 2**127))
    return ids, sizes


@internal
def _shift(account: address, instrument: uint256, delta: int256, hint: uint256, f: int256) -> (int256, int256):
    """
    @dev Add `delta` to the account's size of `instrument`: the word is found by a scan that
         starts at index `hint`, appended when new, removed at zero (the last word fills the gap).
         `f`: the funding index of a perp (0 otherwise): the basis takes -delta * f, so the
         account's net cash does not move and the size changed pays funding from now on only
         (docs/fixed-point.md §10). Returns (old, new).
    """
    if f != 0:
        # |delta| <= 2 * MAX_SIZE < 2**101, |f| < 2**127
        self._add_basis(account, unsafe_mul(-delta, f))
    word: uint256 = self.account_word[account]
    n: uint256 = word & 255
    k: uint256 = n
    old: int256 = 0
    # a cyclic scan that starts at the hint
    i: uint256 = hint
    if i >= n:
        i = 0
    for c: uint256 in range(n, bound=fp.MAX_POSITIONS):
        w: uint256 = self.position_words[account][i]
        if w >> 128 == instrument:
            k = i
            old = self._size_of(w)
            break
        i += 1
        if i == n:
            i = 0
    size: int256 = old + delta
    assert size <= fp.MAX_SIZE and size >= -fp.MAX_SIZE, "engine: size out of bounds"
    if size == 0:
        if k != n:
            self.position_words[account][k] = self.position_words[account][n - 1]
            self.position_words[account][n - 1] = 0
            self.account_word[account] = word - 1
        return old, size
    if k == n:
        assert n < fp.MAX_POSITIONS, "engine: too many positions"
        self.account_word[account] = word + 1
    self.position_words[account][k] = (instrument << 128) | (convert(convert(size, bytes32), uint256) & MASK128)
    return old, size


@view
@internal
def _funding(funding_index: address, instrument: uint256) -> int256:
    """
    @dev The funding index (RiskOracle.funding_index) of a perp's underlying now; 0 for any
         other kind.
    """
    if (instrument >> fp.ID_KIND_SHIFT) & 255 != fp.KIND_PERP:
        return 0
    return staticcall IRiskOracle(funding_index).funding_index(fp.id_underlying(instrument))


@view
@internal
def _count(account: address) -> uint256:
    return self.account_word[account] & 255


@view
@internal
def _basis(account: address) -> int256:
    # arithmetic shift: the sign of the int248 survives
    return convert(convert(self.account_word[account], bytes32), int256) >> 8


@internal
def _add_basis(account: address, delta: int256):
    """
    @dev Add `delta` to the account's variation-margin basis. Adding delta << 8 to the word mod
         2**256 adds it to the int248 above the count and leaves the count as it is. No bound is
         needed: the basis plus the perps' funding stays within 2**202 of the futures' value
         (docs/fixed-point.md §10), so the basis stays below 2**229 in size.
    """
    self.account_word[account] = unsafe_add(self.account_word[account], convert(convert(delta << 8, bytes32), uint256))


@internal
def _change(account: address, instrument: uint256, delta: int256, f: int256):
    """
    @dev A trade or a settlement: shift the size (`f` as in `_shift`), keep open interest, log
         the new size.
    """
    old: int256 = 0
    size: int256 = 0
    old, size = self._shift(account, instrument, delta, 0, f)
    self._open_interest(instrument, max(size, 0) - max(old, 0))
    log IMarginEngine.PositionChanged(account=account, instrument=instrument, size=size)


@internal
def _move(
    sender: address,
    receiver: address,
    ids: DynArray[uint256, fp.MAX_POSITIONS],
    sizes: DynArray[int256, fp.MAX_POSITIONS],
    funding_index: address,
):
    """
    @dev Liquidation hook: moves `sizes[j]` of `ids[j]` from `sender` to `receiver` (the
         caller moves the matching cash, checks margins and logs the liquidation). Both scans
         start at word j: `ids` follows the sender's words, and a liquidator's book often
         follows the same order (a wrong guess costs a longer scan, never a wrong word). Open
         interest is written only where the move changes it (a long passed to a long or a
         flat receiver leaves it as it is). A perp's funding history stays with the sender
         (`_shift`).
    """
    for j: uint256 in range(len(ids), bound=fp.MAX_POSITIONS):
        i: uint256 = ids[j]
        s_old: int256 = 0
        s_new: int256 = 0
        r_old: int256 = 0
        r_new: int256 = 0
        f: int256 = self._funding(funding_index, i)
        s_old, s_new = self._shift(sender, i, -sizes[j], j, f)
        r_old, r_new = self._shift(receiver, i, sizes[j], j, f)
        self._open_interest(i, max(s_new, 0) - max(s_old, 0) + max(r_new, 0) - max(r_old, 0))


@internal
def _open_interest(instrument: uint256, delta: int256):
    if delta != 0:
        self.open_interest[instrument] = convert(convert(self.open_interest[instrument], int256) + delta, uint256)


@pure
@internal
def _size_of(word: uint256) -> int256:
    low: uint256 = word & MASK128
    # sign extension of a 128-bit two's complement value; result in [-2**127, 2**127).
    return unsafe_sub(convert(low ^ 2**127, int256), 2**127)
