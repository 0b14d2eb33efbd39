# pragma version 0.4.3
"""
@title RiskOracle: keeper-posted spot, marks, packed SPAN risk arrays and collateral prices
@custom:contract-name RiskOracle
@notice Market-wide data only (the same for every account). The admin registers scenario grids,
        lists underlyings, instruments and collateral assets and bounds every parameter; keepers
        post batches. Futures risk arrays are computed here from the posted mark and the
        underlying's scan range (docs/fixed-point.md §3), never taken from the poster.
        Storage layout (docs/contracts.md): per instrument three words,
        slot0 = mark uint96 | e uint8 | timestamp uint40 | entries 0..6 (int16),
        slot1 = entries 7..22, slot2 = entries 23..38; `post` takes instruments in that layout.
        A grid's coefficients and tilts live in the code of a small data contract created at
        registration (read with one EXTCODECOPY). In a tilted scenario a future's forward
        also moves by tilt x its expiry's curve shift (the underlying's basis over the time
        to expiry, less up to one scan range inside the roll window before expiry).
@custom:security A compromised keeper is bounded by: strictly increasing timestamps not in the
                 future, deviation caps per unit of time (spot, futures marks and collateral
                 prices relative to their previous value), option marks within the model-free band
                 (call <= spot, put <= strike, >= intrinsic - 0.1 % of spot) on every post and
                 capped relative to their own scale per unit of time, option arrays losing at
                 most the mark and gaining at most `max_array_ratio * spot` (a put: strike -
                 mark), canonical exponents, and futures arrays computed on-chain. The first post
                 of a spot, future or price is not deviation-checked. The keeper cannot choose a
                 settlement price: an expired instrument settles at its payoff at the
                 time-weighted average of the spots stored over the TWAP_WINDOW before expiry,
                 computed here by anyone's call to `settle_expired`. No external calls.
                 Escape hatch: when no post has landed for longer than `escape_delay` (the
                 clock records posts to the hour, so up to CLOCK_STEP longer), anyone may
                 `wind_down` (irreversible): posts, listings and `settle_expired` revert,
                 and `snapshot` reports every listed instrument settled at its last mark with
                 the last underlying and collateral prices fresh for good, so every position
                 settles, insolvent accounts stay liquidatable and every account can exit.
"""


from .interfaces import IRiskOracle
from .interfaces import IRoles
from .modules import fixed_point as fp
from .modules import roles


implements: IRiskOracle


initializes: roles


exports: (
    roles.admin,
    roles.pending_admin,
    roles.role_bits,
    roles.has_role,
    roles.transfer_admin,
    roles.accept_admin,
    roles.grant_role,
    roles.revoke_role,
)


MAX_POST_UNDERLYINGS: constant(uint256) = 16
MAX_POST_INSTRUMENTS: constant(uint256) = 64
MAX_POST_ASSETS: constant(uint256) = 8
# words 0..9: c[s] as int64, four per word; word 10: the (at most two) non-zero tilts, each
# t as int64 | its scenario s << 64 in one half (the first in the low half)
GRID_WORDS: constant(uint256) = 11
TILT_WORD: constant(uint256) = 10
MAX_TILTS: constant(uint256) = 2
# PUSH2 353, DUP1, PUSH1 10, RETURNDATASIZE, CODECOPY, RETURNDATASIZE, RETURN, then the runtime:
# STOP ++ 352 bytes of grid words.
GRID_INIT_CODE: constant(Bytes[11]) = b"\x61\x01\x61\x80\x60\x0a\x3d\x39\x3d\xf3\x00"
# Parameter bounds (WAD unless noted).
MAX_COEFFICIENT: constant(int256) = 8 * 10**18
MAX_TILT: constant(int256) = 10**18
MAX_BASIS: constant(uint256) = 5 * 10**17
MAX_ROLL: constant(uint256) = 14 * 86_400
# curve shift (docs/fixed-point.md §3): basis per YEAR of time to expiry, capped at TAU_CAP
YEAR: constant(uint256) = 31_536_000
TAU_CAP: constant(uint256) = 2 * 31_536_000
MIN_PSR: constant(uint256) = 10**15
MAX_PSR: constant(uint256) = 10**18
MAX_SOM_RATE: constant(uint256) = 10**18
MIN_DEVIATION: constant(uint256) = 10**15
MAX_DEVIATION: constant(uint256) = 10**18
MIN_ARRAY_RATIO: constant(uint256) = 10**16
MAX_ARRAY_RATIO: constant(uint256) = 10 * 10**18
MIN_MAX_AGE: constant(uint256) = 30
MAX_MAX_AGE: constant(uint256) = 86_400
DEFAULT_MAX_AGE: constant(uint256) = 900
MIN_ESCAPE_DELAY: constant(uint256) = 86_400
MAX_ESCAPE_DELAY: constant(uint256) = 30 * 86_400
DEFAULT_ESCAPE_DELAY: constant(uint256) = 3 * 86_400
# Clock word: last post (block time) [0, 40) | max_age [40, 80) | escape delay [80, 120) |
# wound-down flag 120: `post` reads one slot, `snapshot` reads one for both. The last post is
# recorded to CLOCK_STEP (a post rewrites it only when it is at least that old), so the hatch
# opens CLOCK_STEP after the escape delay: never before it, at most an hour after it.
AGE_SHIFT: constant(uint256) = 40
DELAY_SHIFT: constant(uint256) = 80
CLOCK_STEP: constant(uint256) = 3600
WOUND_DOWN: constant(uint256) = 1 << 120
# max_age reported in wind-down: the last prices stay fresh for good
WOUND_DOWN_MAX_AGE: constant(uint256) = 2**40 - 1
MAX_STRIKE: constant(uint256) = 2**96 - 1
MAX_CONTRACT_SIZE: constant(uint256) = 10**30
# An option's id carries its strike instead of a serial: mantissa [0, 27) | exponent [27, 32),
# strike = mantissa * 10**exponent (WAD), exponent as large as possible (one code per strike).
STRIKE_MANTISSA: constant(uint256) = 2**27 - 1
STRIKE_EXP_SHIFT: constant(uint256) = 27
# No-arbitrage band of an option mark (WAD fractions of spot): intrinsic value minus
# BAND_TOLERANCE * spot <= mark; deviation caps are relative to max(reference,
# SCALE_FLOOR * spot) and reach max_deviation only after CAP_PERIOD seconds since the
# instrument's previous post (linear in between), as do the spot, future-mark and
# collateral-price caps (relative to the previous value): a burst of posts in one block
# moves a price no further than the seconds between them allow. The spot and future-mark caps
# use the gap rate min(max_deviation, 0.75 * psr), psr the scan range in force after the
# batch's underlyings: one post never moves a linear book by the scan range that margined it
# (docs/liquidation.md, "Gap losses and the fund").
BAND_TOLERANCE: constant(uint256) = 10**15
SCALE_FLOOR: constant(uint256) = 10**16
CAP_PERIOD: constant(uint256) = 900
# Underlying state word: spot [0, 96) | psr [96, 160) | timestamp [160, 200) | scenarios [200, 208)
# | observation count [208, 248) | PERP_BIT 248 (a perp is listed: `snapshot` adds its funding index).
PSR_SHIFT: constant(uint256) = 96
UTS_SHIFT: constant(uint256) = 160
N_SHIFT: constant(uint256) = 200
COUNT_SHIFT: constant(uint256) = 208
PERP_BIT: constant(uint256) = 1 << 248
# Funding word of an underlying with a perp (docs/fixed-point.md §9): F int128 [0, 128) | rate
# int64 (WAD per hour) [128, 192) | t [192, 232) | cap [232, 256) in CAP_UNIT (WAD per hour).
# F accrues at most FUNDING_GAP after the last funding post: a silent keeper stops funding.
RATE_SHIFT: constant(uint256) = 128
FTS_SHIFT: constant(uint256) = 192
CAP_SHIFT: constant(uint256) = 232
CAP_UNIT: constant(uint256) = 10**12
MAX_FUNDING_CAP: constant(uint256) = 4 * 10**16
FUNDING_GAP: constant(uint256) = 8 * 3600
FUNDING_BIAS: constant(uint256) = 3600 * 10**18 * 2**170
# Observation of an underlying, one per posted spot: timestamp [0, 40) | spot [40, 136). The
# spot is constant between posts, so settlement integrates the observations in its window
# (timestamps strictly increase: at most TWAP_WINDOW + 1 of them), and a post writes one new
# slot without reading the previous one.
OBS_SPOT_SHIFT: constant(uint256) = 40
# Settlement averages the spot over the 30 minutes before expiry (docs/design.md, "Settlement").
TWAP_WINDOW: constant(uint256) = 1800
# Asset word: price [0, 96) | timestamp [96, 136).
ATS_SHIFT: constant(uint256) = 96
# Post header: mark << 160 | e << 152 | entry words << 96 | instrument id.
WORDS_SHIFT: constant(uint256) = 96
MASK56: constant(uint256) = 2**56 - 1
HEAD_MASK: constant(uint256) = max_value(uint256) - (2**152 - 1)
# floor(x / WAD) of a signed x, |x| < 2**123, as (x + LIN_BIAS) // WAD - 2**128 in uint256.
LIN_BIAS: constant(uint256) = 10**18 * 2**128
# Bits of a future's header that must be zero: the kind byte of the id and bits 96..159 (a
# perp's are exactly its kind, PERP_KIND_BITS).
FUTURE_ZERO: constant(uint256) = (255 << 32) | ((2**64 - 1) << 96)
PERP_KIND_BITS: constant(uint256) = 3 << 32
# Lane constants of 16 int16 entries per word: 1 and 0x8000 in every 16-bit lane; the low 16
# bits, 1 and bit 16 of every 32-bit field.
LANE_ONE16: constant(uint256) = max_value(uint256) // (2**16 - 1)
LANE_SIGN: constant(uint256) = LANE_ONE16 * 2**15
LANE_ONE32: constant(uint256) = max_value(uint256) // (2**32 - 1)
EVEN_LANES: constant(uint256) = LANE_ONE32 * (2**16 - 1)
LANE_CARRY: constant(uint256) = LANE_ONE32 * 2**16
LANES_0_11: constant(uint256) = 2**192 - 1


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


# what only the admin sets and `post` never reads (the bounds live in `underlying_bounds`)
struct UnderlyingListing:
    grid_id: uint256
    scenarios: uint256
    som_rate: uint256


struct InstrumentInfo:
    strike: uint256
    contract_size: uint256


struct UnderlyingPost:
    underlying: uint256
    spot: uint256
    psr: uint256


struct AssetPost:
    asset: address
    price: uint256


struct FundingPost:
    underlying: uint256
    rate: int256


# Scenario grids: count and linear coefficients c[s] packed as int64, four per word.
grid_size: public(HashMap[uint256, uint256])
# The packed words of a grid live in the code of a data contract (deployed once, immutable):
# reading them costs one EXTCODECOPY instead of an SLOAD per word.
grid_code: public(HashMap[uint256, address])
underlying_grid: HashMap[uint256, address]
underlying_listing: HashMap[uint256, UnderlyingListing]
underlying_word: HashMap[uint256, uint256]
# what `post` checks, in one word (the only copy; `underlying_params` decodes it): psr_min
# [0, 64) | psr_max [64, 128) | max_deviation [128, 192) | max_array_ratio [192, 256)
# (non-zero once listed)
underlying_bounds: HashMap[uint256, uint256]
# forward curve: basis (WAD per year) [0, 64) | roll window (seconds) [64, 128)
underlying_curve: HashMap[uint256, uint256]
# underlying -> observation index -> packed observation (append-only)
observations: HashMap[uint256, HashMap[uint256, uint256]]
instrument_words: HashMap[uint256, uint256[fp.ARRAY_SLOTS]]
instrument_info: public(HashMap[uint256, InstrumentInfo])
instrument_count: uint256
asset_max_deviation: public(HashMap[address, uint256])
asset_word: HashMap[address, uint256]
# underlying -> funding word of its perp (layout above RATE_SHIFT; zero without a perp)
funding_word: HashMap[uint256, uint256]
# the escape hatch's clock (layout above AGE_SHIFT): last post | max_age | delay | wound down
clock: public(uint256)


@deploy
def __init__(admin_: address):
    """
    @param admin_ The admin (lists, bounds, grants the keeper role).
    """
    roles.__init__(admin_)
    self.clock = (DEFAULT_MAX_AGE << AGE_SHIFT) | (DEFAULT_ESCAPE_DELAY << DELAY_SHIFT)
    log IRiskOracle.MaxAgeSet(max_age=DEFAULT_MAX_AGE)
    log IRiskOracle.EscapeDelaySet(escape_delay=DEFAULT_ESCAPE_DELAY)


# ---------------------------------------------------------------- admin


@external
def register_grid(
    grid_id: uint256,
    coefficients: DynArray[int256, fp.MAX_SCENARIOS],
    tilts: DynArray[int256, fp.MAX_SCENARIOS],
):
    """
    @notice Register a scenario grid: its linear coefficients c[s] (WAD, signed), the weighted
            price move of scenario s in units of the scan range, and its forward-curve tilts
            t[s] (WAD, signed; docs/fixed-point.md §3, §7). A grid is immutable once
            registered, so posted arrays keep their meaning.
    @param grid_id Label of the grid (non-zero).
    @param coefficients c[0..S-1], 1 <= S <= 39, |c[s]| <= 8 WAD.
    @param tilts t[0..S-1], |t[s]| <= WAD, at most MAX_TILTS (2) non-zero.
    """
    roles._only_admin()
    self._require(grid_id != 0, "oracle: zero grid id")
    self._require(self.grid_size[grid_id] == 0, "oracle: grid exists")
    n: uint256 = len(coefficients)
    self._require(n != 0, "oracle: empty grid")
    self._require(len(tilts) == n, "oracle: one tilt per scenario")
    packed: uint256[GRID_WORDS] = empty(uint256[GRID_WORDS])
    nt: uint256 = 0
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        c: int256 = coefficients[s]
        t: int256 = tilts[s]
        self._require(c <= MAX_COEFFICIENT and c >= -MAX_COEFFICIENT, "oracle: coefficient too large")
        self._require(t <= MAX_TILT and t >= -MAX_TILT, "oracle: tilt too large")
        # two's complement in 64 bits: |c|, |t| < 2**63 by the bounds above.
        packed[s >> 2] |= (convert(convert(c, bytes32), uint256) & fp.MASK64) << ((s & 3) << 6)
        if t != 0:
            # two at most keep the futures loop of `post` short
            self._require(nt < MAX_TILTS, "oracle: too many tilts")
            packed[TILT_WORD] |= ((convert(convert(t, bytes32), uint256) & fp.MASK64) | (s << 64)) << (nt << 7)
            nt += 1
    # init code returning the runtime 0x00 (STOP: the contract cannot be called) ++ the words
    self.grid_code[grid_id] = raw_create(concat(GRID_INIT_CODE, abi_encode(packed)))
    self.grid_size[grid_id] = n
    log IRiskOracle.GridRegistered(grid_id=grid_id, scenarios=n, coefficients=coefficients)


@external
def list_underlying(
    underlying: uint256,
    grid_id: uint256,
    psr_min: uint256,
    psr_max: uint256,
    som_rate: uint256,
    max_deviation: uint256,
    max_array_ratio: uint256,
    basis: uint256,
    roll: uint256,
):
    """
    @notice List an underlying on a registered grid with its bounded risk parameters.
    @param underlying Id in [1, 65535] (encoded in instrument ids).
    @param grid_id A registered grid.
    @param psr_min Lowest postable price scan range (WAD).
    @param psr_max Highest postable price scan range (WAD).
    @param som_rate Short-option minimum rate (WAD of spot per short contract).
    @param max_deviation Deviation cap per CAP_PERIOD (WAD), linear in time since the previous post.
    @param max_array_ratio Bound on |risk array entry| as a multiple of spot (WAD).
    @param basis Forward-curve basis (WAD per year of time to expiry), <= 0.5 WAD.
    @param roll Seconds before expiry from which a leg stops offsetting, <= 14 days.
    """
    roles._only_admin()
    self._live()
    self._require(underlying != 0 and underlying <= fp.MAX_UNDERLYING_ID, "oracle: bad underlying id")
    self._require(self.underlying_listing[underlying].scenarios == 0, "oracle: underlying exists")
    n: uint256 = self.grid_size[grid_id]
    self._require(n != 0, "oracle: unknown grid")
    self.underlying_listing[underlying].grid_id = grid_id
    self.underlying_listing[underlying].scenarios = n
    self.underlying_grid[underlying] = self.grid_code[grid_id]
    # the scenario count also lives in the state word, read by `snapshot` in the same SLOAD
    self.underlying_word[underlying] = n << N_SHIFT
    log IRiskOracle.UnderlyingListed(underlying=underlying, grid_id=grid_id, scenarios=n)
    self._set_underlying_params(
        underlying, psr_min, psr_max, som_rate, max_deviation, max_array_ratio, basis, roll
    )


@external
def set_underlying_params(
    underlying: uint256,
    psr_min: uint256,
    psr_max: uint256,
    som_rate: uint256,
    max_deviation: uint256,
    max_array_ratio: uint256,
    basis: uint256,
    roll: uint256,
):
    """
    @notice Change the bounded risk parameters of a listed underlying (grid stays).
    @param underlying A listed underlying.
    @param psr_min Lowest postable price scan range (WAD).
    @param psr_max Highest postable price scan range (WAD).
    @param som_rate Short-option minimum rate (WAD).
    @param max_deviation Deviation cap per CAP_PERIOD (WAD), linear in time since the previous post.
    @param max_array_ratio Bound on |risk array entry| / spot (WAD).
    @param basis Forward-curve basis (WAD per year), <= 0.5 WAD.
    @param roll Roll window before expiry (seconds), <= 14 days.
    """
    roles._only_admin()
    self._require(self.underlying_listing[underlying].scenarios != 0, "oracle: unknown underlying")
    self._set_underlying_params(
        underlying, psr_min, psr_max, som_rate, max_deviation, max_array_ratio, basis, roll
    )


@external
def list_instrument(
    underlying: uint256, kind: uint256, strike: uint256, expiry: uint256, contract_size: uint256
) -> uint256:
    """
    @notice List a future (kind 0), call (1), put (2) or perp (3, at most one per underlying,
            expiry PERP_EXPIRY: never settles; funded by `post_funding`). The returned id encodes
            code [0, 32) | kind [32, 40) | underlying [40, 56) | expiry [56, 96), the code a
            future's serial or an option's strike (mantissa [0, 27) | exponent [27, 32),
            strike = mantissa * 10**exponent WAD), so `post` bounds a mark by its strike
            without reading storage. An option's contract size is 1 (WAD).
    @param underlying A listed underlying.
    @param kind 0 future, 1 call, 2 put, 3 perp.
    @param strike Option strike (WAD), at most 27 bits of decimal mantissa; 0 for a future; a
           perp's funding-rate cap (WAD per hour, a multiple of 10**12, at most 4 %).
    @param expiry Unix seconds, in the future and below 2**40; 0 for a perp.
    @param contract_size Units of the underlying per contract (WAD); WAD for an option or perp.
    @return The instrument id.
    """
    roles._only_admin()
    self._live()
    self._require(self.underlying_listing[underlying].scenarios != 0, "oracle: unknown underlying")
    self._require(kind <= fp.KIND_PERP, "oracle: bad kind")
    exp: uint256 = expiry
    if kind == fp.KIND_PERP:
        self._require(strike != 0 and strike <= MAX_FUNDING_CAP and strike % CAP_UNIT == 0, "oracle: bad funding cap")
        self._require(contract_size == fp.WAD, "oracle: perp contract size")
        uword: uint256 = self.underlying_word[underlying]
        self._require(uword & PERP_BIT == 0, "oracle: perp listed")
        self.underlying_word[underlying] = uword | PERP_BIT
        # F = 0, rate = 0 from now on until the first funding post
        self.funding_word[underlying] = (block.timestamp << FTS_SHIFT) | (strike // CAP_UNIT << CAP_SHIFT)
        # a perp's expiry is 0 ("oracle: bad expiry" below otherwise)
        exp = 0
        if expiry == 0:
            exp = fp.PERP_EXPIRY
    self._require(exp > block.timestamp and exp <= fp.MASK40, "oracle: bad expiry")
    self._require(contract_size != 0 and contract_size <= MAX_CONTRACT_SIZE, "oracle: bad contract size")
    serial: uint256 = self.instrument_count + 1
    self._require(serial < 2**32, "oracle: too many instruments")
    self.instrument_count = serial
    if kind == fp.KIND_FUTURE:
        self._require(strike == 0, "oracle: bad strike")
    elif kind != fp.KIND_PERP:
        self._require(strike != 0 and strike <= MAX_STRIKE, "oracle: bad strike")
        # marks are bounded per unit of the underlying (the code carries no size)
        self._require(contract_size == fp.WAD, "oracle: option contract size")
        serial = strike
        x: uint256 = 0
        for _: uint256 in range(31):
            if serial % 10 != 0:
                break
            serial //= 10
            x += 1
        self._require(serial <= STRIKE_MANTISSA, "oracle: strike not representable")
        serial |= x << STRIKE_EXP_SHIFT
    instrument: uint256 = (
        serial
        | (kind << fp.ID_KIND_SHIFT)
        | (underlying << fp.ID_UNDERLYING_SHIFT)
        | (exp << fp.ID_EXPIRY_SHIFT)
    )
    self._require(self.instrument_words[instrument][0] == 0, "oracle: option listed")
    self.instrument_words[instrument][0] = fp.E_LISTED << fp.E_SHIFT
    self.instrument_info[instrument] = InstrumentInfo(strike=strike, contract_size=contract_size)
    log IRiskOracle.InstrumentListed(
        instrument=instrument,
        underlying=underlying,
        kind=kind,
        strike=strike,
        expiry=exp,
        contract_size=contract_size,
    )
    return instrument


@external
def list_asset(asset: address, max_deviation: uint256):
    """
    @notice List a collateral asset whose USD price (WAD per whole token) keepers post, or
            change its deviation cap.
    @param asset The ERC-20 token.
    @param max_deviation Deviation cap per CAP_PERIOD (WAD), linear in time since the previous post.
    """
    roles._only_admin()
    self._live()
    self._require(asset != empty(address), "oracle: zero asset")
    self._require(max_deviation >= MIN_DEVIATION and max_deviation <= MAX_DEVIATION, "oracle: deviation out of bounds")
    self.asset_max_deviation[asset] = max_deviation
    log IRiskOracle.AssetListed(asset=asset, max_deviation=max_deviation)


@external
def set_max_age(max_age_: uint256):
    """
    @notice Staleness bound: data older than this blocks new-risk actions.
    @param max_age_ Seconds, in [30, 86400].
    """
    roles._only_admin()
    self._require(max_age_ >= MIN_MAX_AGE and max_age_ <= MAX_MAX_AGE, "oracle: max_age out of bounds")
    self._set_clock_field(AGE_SHIFT, max_age_)
    log IRiskOracle.MaxAgeSet(max_age=max_age_)


@external
def set_escape_delay(escape_delay_: uint256):
    """
    @notice How long without any post before anyone may `wind_down`.
    @param escape_delay_ Seconds, in [1, 30] days.
    """
    roles._only_admin()
    self._require(escape_delay_ >= MIN_ESCAPE_DELAY and escape_delay_ <= MAX_ESCAPE_DELAY, "oracle: delay out of bounds")
    self._set_clock_field(DELAY_SHIFT, escape_delay_)
    log IRiskOracle.EscapeDelaySet(escape_delay=escape_delay_)


# ---------------------------------------------------------------- anyone


@external
def wind_down():
    """
    @notice Open to anyone once no post has landed for longer than `escape_delay` (and at
            least one has): stops posts, listings and settlement prices for good; from then
            on every listed instrument reads as settled at its last mark (never posted: 0)
            and the last underlying and collateral prices never go stale.
    """
    c: uint256 = self._live()
    last: uint256 = c & fp.MASK40
    # before a first post there is no position to free, and no idle deployment to kill
    assert (
        last != 0 and block.timestamp > last + ((c >> DELAY_SHIFT) & fp.MASK40) + CLOCK_STEP
    ), "oracle: escape delay not over"
    self.clock = c | WOUND_DOWN
    log IRiskOracle.WoundDown(caller=msg.sender, last_post=last)


# ---------------------------------------------------------------- keeper


@external
def post(
    timestamp: uint256,
    underlyings: DynArray[UnderlyingPost, MAX_POST_UNDERLYINGS],
    options: DynArray[uint256[4], MAX_POST_INSTRUMENTS],
    futures: DynArray[uint256, MAX_POST_INSTRUMENTS],
    assets: DynArray[AssetPost, MAX_POST_ASSETS],
):
    """
    @notice Post one batch observed at `timestamp`: underlyings first (spot, psr), then options,
            futures and collateral prices. Every item must be strictly newer than what is
            stored: an older or equal post reverts ("oracle: not newer"), so a replayed batch
            cannot land.
    @dev Instruments are posted in the storage layout (docs/contracts.md, "Posting format"):
         a header `mark << 160 | e << 152 | k << 96 | instrument id` and, for an option, its
         k = n_slots(S) entry words: entries 0..6 in the low 112 bits of the first, 7..22 in
         the second, 23..38 in the third; entries beyond the grid's S and words beyond k
         zero. A future is its header alone (e = k = 0); its array is computed here.
    @param timestamp Observation time, <= block.timestamp.
    @param underlyings Spot (WAD) and price scan range (WAD) per underlying.
    @param options Per option [header, entry word 0, entry word 1, entry word 2].
    @param futures Per future its header (mark and id).
    @param assets Collateral USD prices (WAD per whole token).
    """
    roles._only_keeper()
    assert timestamp <= block.timestamp, "oracle: timestamp in future"
    # the escape hatch's clock: one SLOAD per batch, one SSTORE per CLOCK_STEP
    c: uint256 = self._live()
    if block.timestamp >= (c & fp.MASK40) + CLOCK_STEP:
        self.clock = (c >> AGE_SHIFT << AGE_SHIFT) | block.timestamp
    for u: UnderlyingPost in underlyings:
        self._post_underlying(timestamp, u)
    stamp: uint256 = timestamp << fp.TS_SHIFT
    # Underlying context, reloaded whenever the next instrument is on another underlying.
    cur: uint256 = 0
    n: uint256 = 0
    spot: uint256 = 0
    dev: uint256 = 0
    ratio_cap: uint256 = 0
    tol: uint256 = 0
    floor_: uint256 = 0
    # bit length allowed in each entry word (nothing beyond entry n-1)
    cap0: uint256 = 0
    cap1: uint256 = 0
    cap2: uint256 = 0
    slots: uint256 = 0
    for p: uint256[4] in options:
        h: uint256 = p[0]
        iid: uint256 = h & fp.MASK96
        und: uint256 = (iid >> fp.ID_UNDERLYING_SHIFT) & fp.MASK16
        if und != cur:
            cur = und
            n, spot, dev, ratio_cap = self._option_context(und)
            tol = unsafe_div(unsafe_mul(spot, BAND_TOLERANCE), fp.WAD)
            floor_ = unsafe_div(unsafe_mul(spot, SCALE_FLOOR), fp.WAD)
            cap0 = min(n, fp.SLOT0_ENTRIES) << 4
            cap1 = min(n - min(n, fp.SLOT0_ENTRIES), fp.SLOT_ENTRIES) << 4
            cap2 = (n - min(n, fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES)) << 4
            slots = 1
            if n > fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
                slots = 3
            elif n > fp.SLOT0_ENTRIES:
                slots = 2
        old: uint256 = self.instrument_words[iid][0]
        assert old != 0, "oracle: unknown instrument"
        old_e: uint256 = (old >> fp.E_SHIFT) & 255
        assert old_e != fp.E_SETTLED, "oracle: instrument settled"
        assert timestamp > (old >> fp.TS_SHIFT) & fp.MASK40, "oracle: not newer"
        kind: uint256 = (iid >> fp.ID_KIND_SHIFT) & 255
        mark: uint256 = h >> fp.MARK_SHIFT
        # Model-free band (zero rates, forward = spot): intrinsic - tol <= mark <= hi, hi the
        # spot (call) or the strike (put), intrinsic = hi - min(other, hi); the strike comes
        # from the id (list_instrument). Unsafe: every value < 2**96, dev <= WAD, dt < 2**40.
        hi: uint256 = spot
        lo: uint256 = unsafe_mul(iid & STRIKE_MANTISSA, pow_mod256(10, (iid >> STRIKE_EXP_SHIFT) & 31))
        gain_cap: uint256 = ratio_cap
        if kind != fp.KIND_CALL:
            # a future or perp takes no posted array: the oracle computes it (`futures`)
            assert kind == fp.KIND_PUT, "oracle: future array posted"
            hi = lo
            lo = spot
            # a put gains at most what separates its mark from the strike
            gain_cap = min(ratio_cap, unsafe_sub(hi, min(mark, hi)))
        assert mark <= hi, "oracle: mark above bound"
        lo = unsafe_sub(hi, min(lo, hi))
        lo = unsafe_sub(lo, min(lo, tol))
        assert mark >= lo, "oracle: mark below intrinsic"
        if old_e != fp.E_LISTED:
            # |mark - ref| <= max(ref, floor) * max_deviation * min(dt, CAP_PERIOD) /
            # (WAD * CAP_PERIOD), ref the old mark clamped into the new band
            ref: uint256 = min(max(old >> fp.MARK_SHIFT, lo), hi)
            cap: uint256 = unsafe_div(
                unsafe_mul(
                    unsafe_mul(max(ref, floor_), dev),
                    min(unsafe_sub(timestamp, (old >> fp.TS_SHIFT) & fp.MASK40), CAP_PERIOD),
                ),
                fp.WAD * CAP_PERIOD,
            )
            assert (
                mark <= unsafe_add(ref, cap) and ref <= unsafe_add(mark, cap)
            ), "oracle: mark deviation"
        e: uint256 = (h >> fp.E_SHIFT) & 255
        assert e <= fp.MAX_EXPONENT, "oracle: exponent too large"
        w0: uint256 = p[1]
        w1: uint256 = p[2]
        w2: uint256 = p[3]
        # exactly n_slots(S) entry words (the header says how many were meant), nothing beyond
        # entry S-1 and no word beyond them
        assert (h >> WORDS_SHIFT) & MASK56 == slots, "oracle: wrong array length"
        assert (w0 >> cap0) | (w1 >> cap1) | (w2 >> cap2) == 0, "oracle: wrong array length"
        # Canonical exponent: e > 0 needs an entry outside [-16384, 16383], i.e. a lane whose
        # bits 15 and 14 differ (docs/fixed-point.md §3). All 16 lanes of a word at once.
        if e != 0:
            assert (
                ((w0 ^ (w0 << 1)) | (w1 ^ (w1 << 1)) | (w2 ^ (w2 << 1))) & LANE_SIGN != 0
            ), "oracle: non-canonical exponent"
        # Magnitude: every entry v * 2**e within [-loss_cap, gain_cap], loss_cap = min(mark,
        # ratio_cap) (a long option loses at most its premium) <=> -(loss_cap >> e) <= v <=
        # gain_cap >> e. In offset binary u = v + 2**15 (the lane's sign bit flipped), even and
        # odd lanes apart in 32-bit fields so bit 16 is free for a carry: v <= g <=>
        # u + (2**15 - 1 - g) does not carry, v >= -l <=> u + (2**15 + l) does (g, l capped at
        # the int16 range so every lane passes a bound beyond it). Zero lanes pass.
        g: uint256 = min(gain_cap >> e, 2**15 - 1)
        l: uint256 = min(min(mark, ratio_cap) >> e, 2**15)
        if g != 2**15 - 1 or l != 2**15:
            up: uint256 = unsafe_mul(unsafe_sub(2**15 - 1, g), LANE_ONE32)
            low: uint256 = unsafe_mul(unsafe_add(2**15, l), LANE_ONE32)
            u0: uint256 = w0 ^ LANE_SIGN
            u1: uint256 = w1 ^ LANE_SIGN
            u2: uint256 = w2 ^ LANE_SIGN
            over: uint256 = (
                unsafe_add(u0 & EVEN_LANES, up) | unsafe_add((u0 >> 16) & EVEN_LANES, up)
                | unsafe_add(u1 & EVEN_LANES, up) | unsafe_add((u1 >> 16) & EVEN_LANES, up)
                | unsafe_add(u2 & EVEN_LANES, up) | unsafe_add((u2 >> 16) & EVEN_LANES, up)
            )
            under: uint256 = (
                unsafe_add(u0 & EVEN_LANES, low) & unsafe_add((u0 >> 16) & EVEN_LANES, low)
                & unsafe_add(u1 & EVEN_LANES, low) & unsafe_add((u1 >> 16) & EVEN_LANES, low)
                & unsafe_add(u2 & EVEN_LANES, low) & unsafe_add((u2 >> 16) & EVEN_LANES, low)
            )
            assert over & LANE_CARRY == 0, "oracle: array gain above payoff"
            assert under & LANE_CARRY == LANE_CARRY, "oracle: array loss above premium"
        w0 = w0 | (h & HEAD_MASK) | stamp
        if slots == 3:
            self.instrument_words[iid] = [w0, w1, w2]
        else:
            self._store(iid, n, w0, w1)
    cur = 0
    lin: uint256[fp.MAX_SCENARIOS] = empty(uint256[fp.MAX_SCENARIOS])
    # q-form (lin + 2**128) extremes of the untilted lin, 0 included
    lin_hi: uint256 = 0
    lin_lo: uint256 = 0
    # the underlying's psr, basis and roll window
    psr_u: uint256 = 0
    basis: uint256 = 0
    roll: uint256 = 0
    # the tilted scenarios (at most two): index, t (two's complement) and lin of each
    nt: uint256 = 0
    s0: uint256 = 0
    t0: uint256 = 0
    b0: uint256 = 0
    s1: uint256 = 0
    t1: uint256 = 0
    b1: uint256 = 0
    for h: uint256 in futures:
        iid: uint256 = h & fp.MASK96
        old: uint256 = self.instrument_words[iid][0]
        assert old != 0, "oracle: unknown instrument"
        # a listed instrument's underlying is listed, with a grid
        und: uint256 = (iid >> fp.ID_UNDERLYING_SHIFT) & fp.MASK16
        if und != cur:
            # The underlying's context: lin[s] = div_floor(c[s] * psr, WAD) (docs/fixed-point.md
            # §3) as two's complement words, zero beyond the count, from the psr already updated
            # by this batch; the extremes skip the tilted scenarios, whose lin moves with each
            # future's expiry ([s, t, lin] each).
            cur = und
            word: uint256 = self.underlying_word[und]
            n = (word >> N_SHIFT) & 255
            psr: uint256 = (word >> PSR_SHIFT) & fp.MASK64
            # before its first spot an underlying has psr 0: a future's array would be all zero
            assert psr != 0, "oracle: underlying not posted"
            # the gap rate: a future's mark moves at most GAP_RATIO * psr per CAP_PERIOD
            dev = min((self.underlying_bounds[und] >> 128) & fp.MASK64, unsafe_mul(psr, 3) >> 2)
            words: uint256[GRID_WORDS] = self._grid_words(self.underlying_grid[und])
            # Unsigned arithmetic on two's complement words: x = c * psr (|x| < 2**123) and
            # q = (x + LIN_BIAS) // WAD = lin + 2**128, LIN_BIAS = WAD * 2**128 making x + LIN_BIAS > 0.
            lin_hi = 2**128
            lin_lo = 2**128
            gw: uint256 = 0
            # the tilted scenarios, left out of the extremes: t sign-extended from 64 bits
            tw: uint256 = words[TILT_WORD]
            nt = 0
            skip: uint256 = 0
            if tw != 0:
                s0 = (tw >> 64) & 255
                t0 = unsafe_sub((tw & fp.MASK64) ^ 2**63, 2**63)
                nt = 1
                skip = 1 << s0
                if tw >> 128 != 0:
                    s1 = (tw >> 192) & 255
                    t1 = unsafe_sub(((tw >> 128) & fp.MASK64) ^ 2**63, 2**63)
                    nt = 2
                    skip |= 1 << s1
            for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
                if s & 3 == 0:
                    gw = words[s >> 2]
                else:
                    gw = gw >> 64
                # c sign-extended from 64 bits (|c| <= 8e18, psr <= 1e18): all wrapping operations.
                cs: uint256 = unsafe_sub((gw & fp.MASK64) ^ 2**63, 2**63)
                q: uint256 = unsafe_div(unsafe_add(unsafe_mul(cs, psr), LIN_BIAS), fp.WAD)
                lin[s] = unsafe_sub(q, 2**128)
                if (skip >> s) & 1 != 0:
                    pass
                elif q > lin_hi:
                    lin_hi = q
                elif q < lin_lo:
                    lin_lo = q
            b0 = lin[s0]
            b1 = lin[s1]
            psr_u = psr
            if nt != 0:
                curve: uint256 = self.underlying_curve[und]
                basis = curve & fp.MASK64
                roll = curve >> 64
        old_e: uint256 = (old >> fp.E_SHIFT) & 255
        assert old_e != fp.E_SETTLED, "oracle: instrument settled"
        old_ts: uint256 = (old >> fp.TS_SHIFT) & fp.MASK40
        assert timestamp > old_ts, "oracle: not newer"
        # kind 0 (or 3, checked here only: dated futures pay nothing for perps), no exponent,
        # no entry words (nothing between the id and the mark)
        if h & FUTURE_ZERO != 0:
            if h & FUTURE_ZERO != PERP_KIND_BITS:
                # an option needs its array: it is posted in `options`
                assert ((iid >> fp.ID_KIND_SHIFT) & 255) % 3 == 0, "oracle: wrong array length"
                raise "oracle: future array posted"
        mark: uint256 = h >> fp.MARK_SHIFT
        assert mark != 0, "oracle: bad price"
        if old_e != fp.E_LISTED:
            old_mark: uint256 = old >> fp.MARK_SHIFT
            # _time_cap inlined (per instrument; unsafe: old_mark < 2**96, dev <= WAD)
            cap: uint256 = unsafe_div(
                unsafe_mul(unsafe_mul(old_mark, dev), min(unsafe_sub(timestamp, old_ts), CAP_PERIOD)),
                fp.WAD * CAP_PERIOD,
            )
            assert (
                mark <= unsafe_add(old_mark, cap) and old_mark <= unsafe_add(mark, cap)
            ), "oracle: mark deviation"
        # Tilted scenarios: lin[s] = base + div_floor(t * h, WAD), h the curve shift of this
        # future's expiry (docs/fixed-point.md §3), in q-form like the extremes. Unsafe:
        # basis < 2**59, tau <= TAU_CAP, psr <= WAD, |t * h| <= WAD**2 < 2**120.
        hi: uint256 = lin_hi
        lo: uint256 = lin_lo
        if nt != 0:
            # iid < 2**96: its expiry is iid >> ID_EXPIRY_SHIFT
            tau: uint256 = unsafe_sub(max(iid >> fp.ID_EXPIRY_SHIFT, timestamp), timestamp)
            hj: uint256 = 0
            if tau > TAU_CAP:
                # a future beyond the cap (roll <= MAX_ROLL < TAU_CAP: no ramp), or a perp (its
                # expiry is PERP_EXPIRY; bit 32 of the id here: kind 3), which sits at the spot
                # end of the curve: h = 0
                if iid & (1 << fp.ID_KIND_SHIFT) == 0:
                    hj = unsafe_div(unsafe_mul(basis, TAU_CAP), YEAR)
            else:
                hj = unsafe_div(unsafe_mul(basis, tau), YEAR)
                if tau < roll:
                    hj = unsafe_sub(
                        hj, unsafe_div(unsafe_mul(psr_u, min(unsafe_mul(unsafe_sub(roll, tau), 2), roll)), roll)
                    )
            # x = lin + div_floor(t * h, WAD) + 2**128 (q-form)
            x: uint256 = unsafe_add(b0, unsafe_div(unsafe_add(unsafe_mul(t0, hj), LIN_BIAS), fp.WAD))
            if x > hi:
                hi = x
            elif x < lo:
                lo = x
            lin[s0] = unsafe_sub(x, 2**128)
            if nt > 1:
                x = unsafe_add(b1, unsafe_div(unsafe_add(unsafe_mul(t1, hj), LIN_BIAS), fp.WAD))
                if x > hi:
                    hi = x
                elif x < lo:
                    lo = x
                lin[s1] = unsafe_sub(x, 2**128)
        up: uint256 = unsafe_sub(hi, 2**128)
        down: uint256 = unsafe_sub(2**128, lo)
        # ra[s] = div_floor(mark * lin[s], WAD) (docs/fixed-point.md §3). Its largest magnitude
        # m_s is at the largest lin of either sign: floor(mark * up / WAD) for ra >= 0 and
        # ceil(mark * down / WAD) - 1 below (unsafe: mark < 2**96, lin < 2**63, down > 0).
        top: uint256 = unsafe_div(unsafe_mul(mark, up), fp.WAD)
        if down != 0:
            top = max(top, unsafe_div(unsafe_sub(unsafe_mul(mark, down), 1), fp.WAD))
        # e = max(0, bitlen(top) - 15); the previous exponent is usually still right.
        e: uint256 = old_e
        if e > fp.MAX_EXPONENT:
            e = 0
        # right when top >> e has 15 bits, or fewer with e = 0
        t: uint256 = (top >> e) >> 14
        if t != 1:
            if t != 0 or e != 0:
                e = fp._bitlen(top)
                e = unsafe_sub(e, min(e, 15))
        # entry[s] = ra[s] >> e = floor(mark * lin[s] / d), d = WAD * 2**e (nested floors by
        # positive integers). In unsigned arithmetic, with bias = 2**15 * d: x + bias >= 0 for
        # the signed product x, and (x + bias) // d = entry + 2**15 in [0, 2**16), the entry in
        # offset binary; flipping each lane's sign bit gives two's complement. Lanes beyond the
        # grid (lin = 0) hold 2**15 and flip to zero.
        d: uint256 = fp.WAD << e
        bias: uint256 = d << 15
        w0: uint256 = (
            unsafe_div(unsafe_add(unsafe_mul(mark, lin[0]), bias), d)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[1]), bias), d) << 16)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[2]), bias), d) << 32)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[3]), bias), d) << 48)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[4]), bias), d) << 64)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[5]), bias), d) << 80)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[6]), bias), d) << 96)
        )
        w1: uint256 = (
            unsafe_div(unsafe_add(unsafe_mul(mark, lin[7]), bias), d)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[8]), bias), d) << 16)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[9]), bias), d) << 32)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[10]), bias), d) << 48)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[11]), bias), d) << 64)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[12]), bias), d) << 80)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[13]), bias), d) << 96)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[14]), bias), d) << 112)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[15]), bias), d) << 128)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[16]), bias), d) << 144)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[17]), bias), d) << 160)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[18]), bias), d) << 176)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[19]), bias), d) << 192)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[20]), bias), d) << 208)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[21]), bias), d) << 224)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[22]), bias), d) << 240)
        )
        w2: uint256 = (
            unsafe_div(unsafe_add(unsafe_mul(mark, lin[23]), bias), d)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[24]), bias), d) << 16)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[25]), bias), d) << 32)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[26]), bias), d) << 48)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[27]), bias), d) << 64)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[28]), bias), d) << 80)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[29]), bias), d) << 96)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[30]), bias), d) << 112)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[31]), bias), d) << 128)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[32]), bias), d) << 144)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[33]), bias), d) << 160)
            | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[34]), bias), d) << 176)
        )
        if n > 35:
            w2 |= (
                (unsafe_div(unsafe_add(unsafe_mul(mark, lin[35]), bias), d) << 192)
                | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[36]), bias), d) << 208)
                | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[37]), bias), d) << 224)
                | (unsafe_div(unsafe_add(unsafe_mul(mark, lin[38]), bias), d) << 240)
            )
            w2 = w2 ^ LANE_SIGN
        else:
            w2 = w2 ^ (LANE_SIGN & LANES_0_11)
        w0 = (w0 ^ (LANE_SIGN & fp.MASK112)) | (h & HEAD_MASK) | (e << fp.E_SHIFT) | stamp
        w1 = w1 ^ LANE_SIGN
        if n > fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
            self.instrument_words[iid] = [w0, w1, w2]
        else:
            self._store(iid, n, w0, w1)
    for a: AssetPost in assets:
        self._post_asset(timestamp, a)
    log IRiskOracle.Posted(
        poster=msg.sender,
        timestamp=timestamp,
        underlyings=len(underlyings),
        instruments=len(options) + len(futures),
        assets=len(assets),
    )


@external
def post_funding(posts: DynArray[FundingPost, MAX_POST_UNDERLYINGS]):
    """
    @notice Advance each perp's funding index to now (F := F_now at the current spot) and set
            its hourly rate, clamped to the perp's cap (docs/fixed-point.md §9).
    @param posts Per underlying with a perp, the rate (WAD per hour, signed; > 0: longs pay).
    """
    roles._only_keeper()
    self._live()
    for p: FundingPost in posts:
        w: uint256 = self.funding_word[p.underlying]
        self._require(w != 0, "oracle: no perp")
        f: uint256 = self._funding_now(w, self.underlying_word[p.underlying] & fp.MASK96)
        cap: int256 = convert((w >> CAP_SHIFT) * CAP_UNIT, int256)
        rate: int256 = min(max(p.rate, -cap), cap)
        self.funding_word[p.underlying] = (
            (f & (2**128 - 1))
            | ((convert(convert(rate, bytes32), uint256) & fp.MASK64) << RATE_SHIFT)
            | (block.timestamp << FTS_SHIFT)
            | (w >> CAP_SHIFT << CAP_SHIFT)
        )
        log IRiskOracle.FundingPosted(underlying=p.underlying, rate=rate, index=convert(convert(f, bytes32), int256))


@external
def settle_expired(instrument: uint256) -> uint256:
    """
    @notice Settle an expired instrument at its payoff at the TWAP of the spot over the
            TWAP_WINDOW before expiry (anyone may call, once). Afterwards the instrument takes
            no more posts and the engine settles positions at the returned price.
    @dev Needs a spot posted after expiry: posts are strictly newer than the stored one, so
         none can land inside the window afterwards.
    @param instrument A listed instrument whose expiry has passed.
    @return Settlement value of one long contract (WAD).
    """
    twap: uint256 = 0
    price: uint256 = 0
    twap, price = self._settlement(instrument)
    self.instrument_words[instrument] = [
        (price << fp.MARK_SHIFT) | (fp.E_SETTLED << fp.E_SHIFT) | (block.timestamp << fp.TS_SHIFT), 0, 0
    ]
    log IRiskOracle.InstrumentSettled(instrument=instrument, twap=twap, price=price, caller=msg.sender)
    return price


# ---------------------------------------------------------------- views


@view
@external
def snapshot(
    instruments: DynArray[uint256, fp.MAX_POSITIONS],
    underlyings: DynArray[uint256, fp.MAX_POSITIONS],
    assets: DynArray[address, fp.MAX_ASSETS],
) -> (DynArray[uint256[3], 32], DynArray[uint256[3], 32], DynArray[uint256, 8], uint256):
    """
    @notice Everything one margin computation needs, in one call: the packed words of each
            instrument (a listed-but-never-posted instrument reads as all zero), per underlying
            [the state word, scenarios | F_now << 128 (int128, with a perp, else 0), som_rate], per asset
            [price | timestamp << 96], and max_age. Wound down: every listed instrument as a
            settlement word at its last mark (never posted: 0) and max_age 2**40 - 1.
    @param instruments Instrument ids.
    @param underlyings Underlying ids.
    @param assets Collateral assets.
    """
    uw: DynArray[uint256[3], 32] = []
    for u: uint256 in underlyings:
        w: uint256 = self.underlying_word[u]
        s: uint256 = (w >> N_SHIFT) & 255
        if w & PERP_BIT != 0:
            s |= self._funding_now(self.funding_word[u], w & fp.MASK96) << 128
        uw.append([w, s, self.underlying_listing[u].som_rate])
    iw: DynArray[uint256[3], 32] = []
    max_age_: uint256 = self._max_age()
    for i: uint256 in instruments:
        words: uint256[3] = empty(uint256[3])
        w0: uint256 = self.instrument_words[i][0]
        e: uint256 = (w0 >> fp.E_SHIFT) & 255
        if max_age_ == WOUND_DOWN_MAX_AGE:
            # wound down (the admin's max_age is at most a day); an unknown id stays zero
            if w0 != 0:
                words[0] = self._settled_word(w0)
        elif e != fp.E_LISTED:
            words[0] = w0
            if e != fp.E_SETTLED:
                # scenario count: from the underlyings passed in, else from storage
                und: uint256 = fp.id_underlying(i)
                n: uint256 = 0
                for k: uint256 in range(len(underlyings), bound=fp.MAX_POSITIONS):
                    if underlyings[k] == und:
                        n = uw[k][1] & 255
                        break
                if n == 0:
                    n = self.underlying_listing[und].scenarios
                if n > fp.SLOT0_ENTRIES:
                    words[1] = self.instrument_words[i][1]
                if n > fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
                    words[2] = self.instrument_words[i][2]
        iw.append(words)
    aw: DynArray[uint256, 8] = []
    for a: address in assets:
        aw.append(self.asset_word[a])
    return iw, uw, aw, max_age_


@view
@external
def settlement_preview(instrument: uint256) -> (uint256, uint256):
    """
    @notice (TWAP, settlement price) `settle_expired` would store now; reverts as it would.
    """
    return self._settlement(instrument)


@view
@external
def observation(underlying: uint256, k: uint256) -> (uint256, uint256):
    """
    @notice Observation k of an underlying: (timestamp, spot).
    """
    w: uint256 = self.observations[underlying][k]
    return w & fp.MASK40, (w >> OBS_SPOT_SHIFT) & fp.MASK96


@view
@external
def underlying_params(underlying: uint256) -> UnderlyingParams:
    """
    @notice An underlying's grid, scenario count and bounded parameters, basis and roll
            window included (all zero if unlisted).
    """
    listing: UnderlyingListing = self.underlying_listing[underlying]
    bounds: uint256 = self.underlying_bounds[underlying]
    curve: uint256 = self.underlying_curve[underlying]
    return UnderlyingParams(
        grid_id=listing.grid_id,
        scenarios=listing.scenarios,
        psr_min=bounds & fp.MASK64,
        psr_max=(bounds >> 64) & fp.MASK64,
        som_rate=listing.som_rate,
        max_deviation=(bounds >> 128) & fp.MASK64,
        max_array_ratio=bounds >> 192,
        basis=curve & fp.MASK64,
        roll=curve >> 64,
    )


@view
@external
def instrument_word(instrument: uint256, k: uint256) -> uint256:
    """
    @notice Raw storage word k (0..2) of an instrument (layout in docs/contracts.md).
    """
    return self.instrument_words[instrument][k]


@view
@external
def underlying_state(underlying: uint256) -> (uint256, uint256, uint256):
    """
    @notice Latest (spot, psr, timestamp) of an underlying.
    """
    w: uint256 = self.underlying_word[underlying]
    return w & fp.MASK96, (w >> PSR_SHIFT) & fp.MASK64, (w >> UTS_SHIFT) & fp.MASK40


@view
@external
def funding_index(underlying: uint256) -> int256:
    """
    @notice The perp's cumulative funding per contract now, F_now (WAD, signed; longs pay as it
            rises): what `snapshot` reports; 0 without a perp.
    """
    w: uint256 = self.funding_word[underlying]
    if w == 0:
        return 0
    return convert(convert(self._funding_now(w, self.underlying_word[underlying] & fp.MASK96), bytes32), int256)


@view
@external
def funding_state(underlying: uint256) -> (int256, int256, uint256, uint256):
    """
    @notice The stored funding word of an underlying's perp: (F at the last funding post, hourly
            rate (WAD), that post's time (the listing's before one), cap (WAD per hour)); all
            zero without a perp.
    """
    w: uint256 = self.funding_word[underlying]
    return (
        convert(convert(w << 128, bytes32), int256) >> 128,
        convert(convert(w << 64, bytes32), int256) >> 192,
        (w >> FTS_SHIFT) & fp.MASK40,
        (w >> CAP_SHIFT) * CAP_UNIT,
    )


@view
@external
def max_age() -> uint256:
    """
    @notice Staleness bound set by the admin, in seconds (wound down, `snapshot` reports
            2**40 - 1 instead).
    """
    return (self.clock >> AGE_SHIFT) & fp.MASK40


@view
@external
def wound_down() -> bool:
    """
    @notice Whether the oracle is wound down (for good).
    """
    return self.clock & WOUND_DOWN != 0


# ---------------------------------------------------------------- internal


@internal
def _set_underlying_params(
    underlying: uint256,
    psr_min: uint256,
    psr_max: uint256,
    som_rate: uint256,
    max_deviation: uint256,
    max_array_ratio: uint256,
    basis: uint256,
    roll: uint256,
):
    assert psr_min >= MIN_PSR and psr_min <= psr_max and psr_max <= MAX_PSR, "oracle: psr out of bounds"
    assert som_rate <= MAX_SOM_RATE, "oracle: som_rate out of bounds"
    assert max_deviation >= MIN_DEVIATION and max_deviation <= MAX_DEVIATION, "oracle: deviation out of bounds"
    assert max_array_ratio >= MIN_ARRAY_RATIO and max_array_ratio <= MAX_ARRAY_RATIO, "oracle: ratio out of bounds"
    assert basis <= MAX_BASIS and roll <= MAX_ROLL, "oracle: curve out of bounds"
    self.underlying_listing[underlying].som_rate = som_rate
    self.underlying_curve[underlying] = basis | (roll << 64)
    self.underlying_bounds[underlying] = (
        psr_min | (psr_max << 64) | (max_deviation << 128) | (max_array_ratio << 192)
    )
    log IRiskOracle.UnderlyingParamsSet(
        underlying=underlying,
        psr_min=psr_min,
        psr_max=psr_max,
        som_rate=som_rate,
        max_deviation=max_deviation,
        max_array_ratio=max_array_ratio,
        basis=basis,
        roll=roll,
    )


@internal
def _post_underlying(timestamp: uint256, u: UnderlyingPost):
    bounds: uint256 = self.underlying_bounds[u.underlying]
    assert bounds != 0, "oracle: unknown underlying"
    # 0 < spot <= MAX_PRICE and psr_min <= psr <= psr_max, each as one unsigned comparison (a
    # value below the lower end wraps around)
    assert unsafe_sub(u.spot, 1) < fp.MAX_PRICE, "oracle: bad price"
    lo: uint256 = bounds & fp.MASK64
    assert unsafe_sub(u.psr, lo) <= unsafe_sub((bounds >> 64) & fp.MASK64, lo), "oracle: psr out of bounds"
    old: uint256 = self.underlying_word[u.underlying]
    old_ts: uint256 = (old >> UTS_SHIFT) & fp.MASK40
    assert timestamp > old_ts, "oracle: not newer"
    old_spot: uint256 = old & fp.MASK96
    if old_spot != 0:
        # _time_cap and _within inlined, at the gap rate (unsafe: spots <= MAX_PRICE, rate <=
        # WAD, dt capped)
        cap: uint256 = unsafe_div(
            unsafe_mul(
                unsafe_mul(old_spot, min((bounds >> 128) & fp.MASK64, unsafe_mul(u.psr, 3) >> 2)),
                min(unsafe_sub(timestamp, old_ts), CAP_PERIOD),
            ),
            fp.WAD * CAP_PERIOD,
        )
        # |spot - old_spot| <= cap <=> spot + cap - old_spot in [0, 2 cap] (wrapping below 0)
        assert unsafe_sub(unsafe_add(u.spot, cap), old_spot) <= unsafe_add(cap, cap), "oracle: spot deviation"
    count: uint256 = (old >> COUNT_SHIFT) & fp.MASK40
    self.observations[u.underlying][count] = timestamp | (u.spot << OBS_SPOT_SHIFT)
    self.underlying_word[u.underlying] = (
        u.spot | (u.psr << PSR_SHIFT) | (timestamp << UTS_SHIFT) | (old & ((255 << N_SHIFT) | PERP_BIT))
        | (unsafe_add(count, 1) << COUNT_SHIFT)
    )


@view
@internal
def _settlement(instrument: uint256) -> (uint256, uint256):
    """
    @dev (TWAP, payoff of one long contract) of an expired instrument: TWAP = the integral of
         the spot over [expiry - TWAP_WINDOW, expiry] (clipped at the first observation) // its
         length; payoff future TWAP, call max(TWAP - K, 0), put max(K - TWAP, 0), times
         contract_size // WAD (offchain/settlement.py is the reference).
    """
    # in wind-down every instrument is settled at its last mark (`snapshot`)
    self._live()
    word: uint256 = self.instrument_words[instrument][0]
    assert word != 0, "oracle: unknown instrument"
    assert (word >> fp.E_SHIFT) & 255 != fp.E_SETTLED, "oracle: instrument settled"
    expiry: uint256 = fp.id_expiry(instrument)
    assert block.timestamp >= expiry, "oracle: not expired"
    und: uint256 = fp.id_underlying(instrument)
    uword: uint256 = self.underlying_word[und]
    assert (uword >> UTS_SHIFT) & fp.MASK40 > expiry, "oracle: no spot after expiry"
    start: uint256 = self.observations[und][0] & fp.MASK40
    assert start < expiry, "oracle: no spot before expiry"
    start = max(start + TWAP_WINDOW, expiry) - TWAP_WINDOW
    # the observation at or before the window's start, then each one until expiry; one after
    # expiry exists (the last spot is after it), so observation k + 1 is always stored
    k: uint256 = self._index_at(und, (uword >> COUNT_SHIFT) & fp.MASK40, start)
    w: uint256 = self.observations[und][k]
    t: uint256 = start
    area: uint256 = 0
    for _: uint256 in range(TWAP_WINDOW + 1):
        k += 1
        nxt: uint256 = self.observations[und][k]
        t_next: uint256 = min(nxt & fp.MASK40, expiry)
        area += ((w >> OBS_SPOT_SHIFT) & fp.MASK96) * (t_next - t)
        if t_next == expiry:
            break
        t = t_next
        w = nxt
    twap: uint256 = area // (expiry - start)
    strike: uint256 = self.instrument_info[instrument].strike
    v: uint256 = twap
    kind: uint256 = fp.id_kind(instrument)
    if kind == fp.KIND_CALL:
        v = twap - min(twap, strike)
    elif kind == fp.KIND_PUT:
        v = strike - min(strike, twap)
    price: uint256 = v * self.instrument_info[instrument].contract_size // fp.WAD
    assert price <= fp.MAX_PRICE, "oracle: bad price"
    return twap, price


@view
@internal
def _index_at(und: uint256, n: uint256, x: uint256) -> uint256:
    """
    @dev Index of the last observation at or before x, for t[0] <= x < t[n - 1] (binary search).
    """
    lo: uint256 = 0
    hi: uint256 = n - 1
    for _: uint256 in range(40):
        if hi - lo <= 1:
            break
        mid: uint256 = (lo + hi) >> 1
        if self.observations[und][mid] & fp.MASK40 <= x:
            lo = mid
        else:
            hi = mid
    return lo


@internal
def _post_asset(timestamp: uint256, a: AssetPost):
    dev: uint256 = self.asset_max_deviation[a.asset]
    assert dev != 0, "oracle: unknown asset"
    assert a.price != 0 and a.price <= fp.MAX_PRICE, "oracle: bad price"
    old: uint256 = self.asset_word[a.asset]
    assert timestamp > old >> ATS_SHIFT, "oracle: not newer"
    old_price: uint256 = old & fp.MASK96
    if old_price != 0:
        cap: uint256 = self._time_cap(old_price, dev, timestamp - (old >> ATS_SHIFT))
        assert self._within(a.price, old_price, cap), "oracle: price deviation"
    self.asset_word[a.asset] = a.price | (timestamp << ATS_SHIFT)


@view
@internal
def _option_context(und: uint256) -> (uint256, uint256, uint256, uint256):
    """
    @dev (scenario count, spot, max_deviation, max_array_ratio * spot) of an underlying, from
         the spot already updated by this batch; floors round the bounds against the poster.
    """
    word: uint256 = self.underlying_word[und]
    spot: uint256 = word & fp.MASK96
    assert spot != 0, "oracle: underlying not posted"
    bounds: uint256 = self.underlying_bounds[und]
    return (word >> N_SHIFT) & 255, spot, (bounds >> 128) & fp.MASK64, spot * (bounds >> 192) // fp.WAD


@view
@internal
def _grid_words(data: address) -> uint256[GRID_WORDS]:
    """
    @dev The packed words of a grid from its data contract (after the STOP byte).
    """
    return abi_decode(slice(data.code, 1, 32 * GRID_WORDS), uint256[GRID_WORDS])


@internal
def _store(iid: uint256, n: uint256, w0: uint256, w1: uint256):
    """
    @dev Writes the words of an array of n <= 23 entries (the callers write all three words of
         a larger one at once).
    """
    self.instrument_words[iid][0] = w0
    if n > fp.SLOT0_ENTRIES:
        self.instrument_words[iid][1] = w1


@pure
@internal
def _require(ok: bool, reason: String[32]):
    """
    @dev `assert ok, reason` once for the admin paths' checks (smaller code than inline).
    """
    assert ok, reason


@view
@internal
def _funding_now(w: uint256, spot: uint256) -> uint256:
    """
    @dev F_now = F + div_floor(rate * spot * min(now - t, FUNDING_GAP), 3600 * WAD) of a
         funding word (docs/fixed-point.md §9), as a two's complement word. Unsafe on purpose:
         |rate * spot * dt| < 2**56 * 2**96 * 2**15 < 2**170 and FUNDING_BIAS makes it positive,
         so (x + bias) // d - 2**170 is the floor; F grows by at most 4 % of spot per hour.
    """
    dt: uint256 = min(unsafe_sub(block.timestamp, (w >> FTS_SHIFT) & fp.MASK40), FUNDING_GAP)
    rate: uint256 = unsafe_sub(((w >> RATE_SHIFT) & fp.MASK64) ^ 2**63, 2**63)
    return unsafe_add(
        unsafe_sub((w & (2**128 - 1)) ^ 2**127, 2**127),
        unsafe_sub(
            unsafe_div(unsafe_add(unsafe_mul(rate, unsafe_mul(spot, dt)), FUNDING_BIAS), 3600 * fp.WAD), 2**170
        ),
    )


@pure
@internal
def _time_cap(ref: uint256, dev: uint256, dt: uint256) -> uint256:
    """
    @dev Deviation allowed dt seconds after the previous post: ref * dev * min(dt, CAP_PERIOD)
         / (WAD * CAP_PERIOD), floored (unsafe: ref < 2**96, dev <= WAD, dt capped).
    """
    return unsafe_div(unsafe_mul(unsafe_mul(ref, dev), min(dt, CAP_PERIOD)), fp.WAD * CAP_PERIOD)


@pure
@internal
def _within(new: uint256, old: uint256, cap: uint256) -> bool:
    if new >= old:
        return new - old <= cap
    return old - new <= cap


@view
@internal
def _max_age() -> uint256:
    """
    @dev The staleness bound in force: the admin's, or 2**40 - 1 once wound down.
    """
    c: uint256 = self.clock
    if c & WOUND_DOWN != 0:
        return WOUND_DOWN_MAX_AGE
    return (c >> AGE_SHIFT) & fp.MASK40


@internal
def _set_clock_field(at: uint256, x: uint256):
    c: uint256 = self.clock
    self.clock = c ^ ((((c >> at) & fp.MASK40) ^ x) << at)


@view
@internal
def _live() -> uint256:
    """
    @dev The clock word, reverting once wound down.
    """
    c: uint256 = self.clock
    assert c & WOUND_DOWN == 0, "oracle: wound down"
    return c


@pure
@internal
def _settled_word(w0: uint256) -> uint256:
    """
    @dev The settlement word of an instrument wound down at its last mark: e = 255 (all ones),
         timestamp kept, entries cleared (a listed, never-posted one: mark 0).
    """
    return (w0 | (fp.E_SETTLED << fp.E_SHIFT)) >> fp.TS_SHIFT << fp.TS_SHIFT
