# pragma version 0.4.3
"""
@title OracleViews: decoded risk arrays, grids and ages of RiskOracle data
@custom:contract-name OracleViews
@notice Read-only companion of RiskOracle (as MarginViews is of MarginEngine), so the oracle
        keeps room under the 24,576-byte limit. It decodes what the oracle exposes raw
        (`instrument_word`, `underlying_params`, `grid_size`/`grid_code`, `underlying_state`,
        the asset and underlying words of `snapshot`, `clock`) and applies the oracle's own wind-down rule, the one `snapshot`
        applies: once wound down every listed instrument reads as settled at its last mark and
        the last underlying and asset prices never read as stale again.
@custom:security Holds no state and no funds. Calls only views of the oracle and reads a grid's
                 data contract with EXTCODECOPY.
"""


from .modules import fixed_point as fp


# the oracle's public getter of an underlying's parameters (RiskOracle.UnderlyingParams)
struct UnderlyingParams:
    grid_id: uint256
    scenarios: uint256
    psr_min: uint256
    psr_max: uint256
    som_rate: uint256
    max_deviation: uint256
    max_array_ratio: uint256
    basis: uint256
    roll: uint256


interface IOracleData:
    def instrument_word(instrument: uint256, k: uint256) -> uint256: view
    def underlying_params(underlying: uint256) -> UnderlyingParams: view
    def underlying_state(underlying: uint256) -> (uint256, uint256, uint256): view
    def snapshot(
        instruments: DynArray[uint256, fp.MAX_POSITIONS],
        underlyings: DynArray[uint256, fp.MAX_POSITIONS],
        assets: DynArray[address, fp.MAX_ASSETS],
    ) -> (DynArray[uint256[3], 32], DynArray[uint256[3], 32], DynArray[uint256, 8], uint256): view
    def grid_size(grid_id: uint256) -> uint256: view
    def grid_code(grid_id: uint256) -> address: view
    def clock() -> uint256: view


# the coefficient words of a grid's data contract (the tilt word follows them)
GRID_WORDS: constant(uint256) = 10
# RiskOracle's clock word: max_age [40, 80) | wound-down flag 120
AGE_SHIFT: constant(uint256) = 40
WOUND_DOWN: constant(uint256) = 1 << 120
# RiskOracle's asset word: price [0, 96) | timestamp [96, 136); underlying word: count [208, 248)
ATS_SHIFT: constant(uint256) = 96
COUNT_SHIFT: constant(uint256) = 208
# q-form bias of lin (RiskOracle): x + LIN_BIAS > 0 for x = c * psr, |x| < 2**123
LIN_BIAS: constant(uint256) = 10**18 * 2**128


ORACLE: public(immutable(IOracleData))


@deploy
def __init__(oracle_: IOracleData):
    """
    @param oracle_ The RiskOracle.
    """
    ORACLE = oracle_


@view
@external
def risk_array(instrument: uint256) -> (uint256, uint256, uint256, DynArray[int256, fp.MAX_SCENARIOS]):
    """
    @notice Decoded data of an instrument: mark, exponent e, timestamp and entries (int16
            values; the WAD value is entry * 2**e). A settled instrument reports its settlement
            price as mark, e = 255 and no entries; so does every instrument once wound down.
    @param instrument A listed instrument.
    """
    w0: uint256 = staticcall ORACLE.instrument_word(instrument, 0)
    assert w0 != 0, "oracle: unknown instrument"
    if (staticcall ORACLE.clock()) & WOUND_DOWN != 0:
        # settled at the last mark: e = 255, timestamp kept, entries cleared (RiskOracle)
        w0 = (w0 | (fp.E_SETTLED << fp.E_SHIFT)) >> fp.TS_SHIFT << fp.TS_SHIFT
    e: uint256 = (w0 >> fp.E_SHIFT) & 255
    entries: DynArray[int256, fp.MAX_SCENARIOS] = []
    if e == fp.E_LISTED:
        return 0, 0, 0, entries
    if e != fp.E_SETTLED:
        n: uint256 = (staticcall ORACLE.underlying_params(fp.id_underlying(instrument))).scenarios
        w: uint256 = w0
        first: uint256 = 0
        for k: uint256 in range(fp.ARRAY_SLOTS):
            if first >= n:
                break
            if k != 0:
                w = staticcall ORACLE.instrument_word(instrument, k)
            # word 0 holds entries 0..6, words 1 and 2 sixteen each
            count: uint256 = fp.SLOT0_ENTRIES if k == 0 else fp.SLOT_ENTRIES
            for s: uint256 in range(min(n - first, count), bound=fp.SLOT_ENTRIES):
                entries.append(fp.entry_at(w, s))
            first += count
    return w0 >> fp.MARK_SHIFT, e, (w0 >> fp.TS_SHIFT) & fp.MASK40, entries


@view
@external
def grid(grid_id: uint256) -> DynArray[int256, fp.MAX_SCENARIOS]:
    """
    @notice Linear coefficients c[s] (WAD) of a registered grid (none for an unknown id).
    """
    out: DynArray[int256, fp.MAX_SCENARIOS] = []
    n: uint256 = staticcall ORACLE.grid_size(grid_id)
    if n == 0:
        return out
    # the grid's data contract: a STOP byte, then the packed words (int64, four per word)
    data: address = staticcall ORACLE.grid_code(grid_id)
    words: uint256[GRID_WORDS] = abi_decode(slice(data.code, 1, 32 * GRID_WORDS), uint256[GRID_WORDS])
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        bits: uint256 = (words[s >> 2] >> ((s & 3) << 6)) & fp.MASK64
        # sign extension of a 64-bit two's complement value
        out.append(unsafe_sub(convert(bits ^ 2**63, int256), 2**63))
    return out


@view
@external
def grid_tilts(grid_id: uint256) -> DynArray[int256, fp.MAX_SCENARIOS]:
    """
    @notice Forward-curve tilts t[s] (WAD, 0 on an untilted scenario) of a registered grid
            (none for an unknown id).
    """
    out: DynArray[int256, fp.MAX_SCENARIOS] = []
    n: uint256 = staticcall ORACLE.grid_size(grid_id)
    if n == 0:
        return out
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        out.append(0)
    # the word after the coefficients: up to two tilts, each t as int64 | scenario << 64 in one
    # 128-bit half
    data: address = staticcall ORACLE.grid_code(grid_id)
    w: uint256 = abi_decode(slice(data.code, 1 + 32 * GRID_WORDS, 32), uint256)
    for k: uint256 in range(2):
        half: uint256 = (w >> (k << 7)) & (2**128 - 1)
        if half != 0:
            out[(half >> 64) & 255] = unsafe_sub(convert((half & fp.MASK64) ^ 2**63, int256), 2**63)
    return out


@view
@external
def spot_leg(underlying: uint256, price: uint256) -> uint256[4]:
    """
    @notice The encoded array of one long unit of spot priced `price` (< 2**96) on
            `underlying` at its latest psr: a future's array at mark `price` (docs/fixed-point.md
            §3, §5.1), as [e, entries 0..15, 16..31, 32..38], entry s (int16) in lane s % 16 of
            word 1 + s // 16. The engine's assembler prices a linked collateral's leg with it.
            Reverts before the underlying's first spot.
    """
    psr: uint256 = (staticcall ORACLE.underlying_state(underlying))[1]
    assert psr != 0, "oracle: underlying not posted"
    p: UnderlyingParams = staticcall ORACLE.underlying_params(underlying)
    n: uint256 = p.scenarios
    # lin[s] = div_floor(c[s] * psr, WAD) as the oracle's `post` computes it for a future (q-form
    # lin + 2**128; no tilt: a spot leg has h = 0)
    data: address = staticcall ORACLE.grid_code(p.grid_id)
    words: uint256[GRID_WORDS] = abi_decode(slice(data.code, 1, 32 * GRID_WORDS), uint256[GRID_WORDS])
    lin: uint256[fp.MAX_SCENARIOS] = empty(uint256[fp.MAX_SCENARIOS])
    hi: uint256 = 2**128
    lo: uint256 = 2**128
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        c: uint256 = unsafe_sub(((words[s >> 2] >> ((s & 3) << 6)) & fp.MASK64) ^ 2**63, 2**63)
        q: uint256 = unsafe_div(unsafe_add(unsafe_mul(c, psr), LIN_BIAS), fp.WAD)
        hi = max(hi, q)
        lo = min(lo, q)
        lin[s] = unsafe_sub(q, 2**128)
    up: uint256 = hi - 2**128
    down: uint256 = 2**128 - lo
    # the exponent and offset-binary entries of the futures loop in `post`
    top: uint256 = price * up // fp.WAD
    if down != 0:
        top = max(top, (price * down - 1) // fp.WAD)
    e: uint256 = fp._bitlen(top)
    e = unsafe_sub(e, min(e, 15))
    d: uint256 = fp.WAD << e
    bias: uint256 = d << 15
    out: uint256[4] = [e, 0, 0, 0]
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        entry: uint256 = unsafe_div(unsafe_add(unsafe_mul(price, lin[s]), bias), d) ^ 2**15
        out[1 + (s >> 4)] |= entry << ((s & 15) << 4)
    return out




@view
@external
def instrument_age(instrument: uint256) -> (uint256, bool):
    """
    @notice Seconds since the instrument's last post, and whether that exceeds max_age (a
            never-posted instrument is stale; a settled one, or any once wound down, never).
    """
    w: uint256 = staticcall ORACLE.instrument_word(instrument, 0)
    if (w >> fp.E_SHIFT) & 255 == fp.E_SETTLED:
        return 0, False
    c: uint256 = staticcall ORACLE.clock()
    if c & WOUND_DOWN != 0:
        return 0, False
    return self._age((w >> fp.TS_SHIFT) & fp.MASK40, c)


@view
@external
def underlying_age(underlying: uint256) -> (uint256, bool):
    """
    @notice Seconds since the underlying's last post, and whether that exceeds max_age.
    """
    spot: uint256 = 0
    psr: uint256 = 0
    ts: uint256 = 0
    spot, psr, ts = staticcall ORACLE.underlying_state(underlying)
    return self._age(ts, staticcall ORACLE.clock())


@view
@external
def asset_age(asset: address) -> (uint256, bool):
    """
    @notice Seconds since the asset's last price, and whether that exceeds max_age.
    """
    return self._age(self._asset_word(asset) >> ATS_SHIFT, staticcall ORACLE.clock())


@view
@external
def asset_price(asset: address) -> (uint256, uint256):
    """
    @notice Latest (price, timestamp) of a collateral asset.
    """
    w: uint256 = self._asset_word(asset)
    return w & fp.MASK96, w >> ATS_SHIFT


@view
@external
def observation_count(underlying: uint256) -> uint256:
    """
    @notice Number of spot observations of an underlying (one per posted spot).
    """
    uw: DynArray[uint256[3], 32] = (staticcall ORACLE.snapshot([], [underlying], []))[1]
    return (uw[0][0] >> COUNT_SHIFT) & fp.MASK40


@view
@internal
def _asset_word(asset: address) -> uint256:
    """
    @dev The oracle's raw asset word, price [0, 96) | timestamp [96, 136), from its snapshot.
    """
    return (staticcall ORACLE.snapshot([], [], [asset]))[2][0]


@view
@internal
def _age(ts: uint256, clock: uint256) -> (uint256, bool):
    """
    @dev (age, stale) of a timestamp under the oracle's clock: never posted is stale; once wound
         down nothing posted is stale again (the oracle's max_age becomes 2**40 - 1).
    """
    age: uint256 = block.timestamp - min(ts, block.timestamp)
    if clock & WOUND_DOWN != 0:
        return age, ts == 0
    return age, ts == 0 or age > (clock >> AGE_SHIFT) & fp.MASK40
