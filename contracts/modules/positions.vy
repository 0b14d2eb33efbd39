# pragma version 0.4.3
"""
@title Positions: at most MAX_POSITIONS signed sizes per account, one storage word each
@custom:contract-name positions
@notice Word = instrument id (96 bits) << 128 | size (int128 two's complement). Loading an
        account costs one SLOAD per position. Open interest per instrument is the sum of the
        long sizes (equal to the sum of the short sizes).
@custom:security Sizes are bounded by MAX_SIZE (< 2**100) before they are stored, so the
                 int128 packing is lossless. `_set` is the only writer (trades, settlement and
                 the liquidation hook `_move` all go through it).
"""


from ..interfaces import IMarginEngine
from . import fixed_point as fp


MASK128: constant(uint256) = 2**128 - 1


position_words: HashMap[address, uint256[fp.MAX_POSITIONS]]
position_count: public(HashMap[address, uint256])
# index + 1 of an instrument in the account's words; 0 when not held.
position_index: HashMap[address, HashMap[uint256, uint256]]
open_interest: public(HashMap[uint256, uint256])


@view
@internal
def _load(account: address) -> (DynArray[uint256, fp.MAX_POSITIONS], DynArray[int256, fp.MAX_POSITIONS]):
    ids: DynArray[uint256, fp.MAX_POSITIONS] = []
    sizes: DynArray[int256, fp.MAX_POSITIONS] = []
    n: uint256 = self.position_count[account]
    for i: uint256 in range(n, bound=fp.MAX_POSITIONS):
        w: uint256 = self.position_words[account][i]
        ids.append(w >> 128)
        # inline _size_of: sign extension of the low 128 bits, in [-2**127, 2**127).
        sizes.append(unsafe_sub(convert((w & MASK128) ^ 2**127, int256), 2**127))
    return ids, sizes


@view
@internal
def _get(account: address, instrument: uint256) -> int256:
    k: uint256 = self.position_index[account][instrument]
    if k == 0:
        return 0
    return self._size_of(self.position_words[account][k - 1])


@internal
def _set(account: address, instrument: uint256, size: int256):
    """
    @dev Writes a position (removes it when `size == 0`) and keeps open interest.
    """
    assert size <= fp.MAX_SIZE and size >= -fp.MAX_SIZE, "engine: size out of bounds"
    k: uint256 = self.position_index[account][instrument]
    old: int256 = 0
    if k != 0:
        old = self._size_of(self.position_words[account][k - 1])
    if old > 0:
        self.open_interest[instrument] -= convert(old, uint256)
    if size > 0:
        self.open_interest[instrument] += convert(size, uint256)
    if size == 0:
        if k != 0:
            n: uint256 = self.position_count[account]
            if k != n:
                last: uint256 = self.position_words[account][n - 1]
                self.position_words[account][k - 1] = last
                self.position_index[account][last >> 128] = k
            self.position_words[account][n - 1] = 0
            self.position_index[account][instrument] = 0
            self.position_count[account] = n - 1
    else:
        word: uint256 = (instrument << 128) | (convert(convert(size, bytes32), uint256) & MASK128)
        if k == 0:
            n: uint256 = self.position_count[account]
            assert n < fp.MAX_POSITIONS, "engine: too many positions"
            self.position_words[account][n] = word
            self.position_count[account] = n + 1
            self.position_index[account][instrument] = n + 1
        else:
            self.position_words[account][k - 1] = word
    log IMarginEngine.PositionChanged(account=account, instrument=instrument, size=size)


@internal
def _move(sender: address, receiver: address, instrument: uint256, size: int256):
    """
    @dev Liquidation hook: moves `size` of an instrument from `sender` to `receiver` (the
         caller moves the matching cash with vault._move_cash and checks margins).
    """
    self._set(sender, instrument, self._get(sender, instrument) - size)
    self._set(receiver, instrument, self._get(receiver, instrument) + size)


@pure
@internal
def _size_of(word: uint256) -> int256:
    low: uint256 = word & MASK128
    # sign extension of a 128-bit two's complement value; result in [-2**127, 2**127).
    return unsafe_sub(convert(low ^ 2**127, int256), 2**127)
