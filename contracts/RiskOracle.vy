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
        slot1 = entries 7..22, slot2 = entries 23..38.
@custom:security A compromised keeper is bounded by: strictly increasing timestamps not in the
                 future, a per-update deviation cap (spot, futures marks and collateral prices
                 relative to their previous value, option marks relative to spot), option array
                 magnitudes bounded by `max_array_ratio * spot`, canonical exponents, and futures
                 arrays computed on-chain. The first post of an item has no previous value and is
                 not deviation-checked. This contract makes no external calls.
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
GRID_WORDS: constant(uint256) = 10
# Parameter bounds (WAD unless noted).
MAX_COEFFICIENT: constant(int256) = 8 * 10**18
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
MAX_STRIKE: constant(uint256) = 2**96 - 1
MAX_CONTRACT_SIZE: constant(uint256) = 10**30
# Underlying state word: spot [0, 96) | psr [96, 160) | timestamp [160, 200) | scenarios [200, 208).
PSR_SHIFT: constant(uint256) = 96
UTS_SHIFT: constant(uint256) = 160
N_SHIFT: constant(uint256) = 200
# Asset word: price [0, 96) | timestamp [96, 136).
ATS_SHIFT: constant(uint256) = 96


struct UnderlyingParams:
    grid_id: uint256
    scenarios: uint256
    psr_min: uint256
    psr_max: uint256
    som_rate: uint256
    max_deviation: uint256
    max_array_ratio: uint256


struct InstrumentInfo:
    strike: uint256
    contract_size: uint256


struct UnderlyingPost:
    underlying: uint256
    spot: uint256
    psr: uint256


struct InstrumentPost:
    instrument: uint256
    mark: uint256
    e: uint256
    words: DynArray[uint256, 3]


struct AssetPost:
    asset: address
    price: uint256


# Scenario grids: count and linear coefficients c[s] packed as int64, four per word.
grid_size: public(HashMap[uint256, uint256])
grid_words: HashMap[uint256, uint256[GRID_WORDS]]
underlying_params: public(HashMap[uint256, UnderlyingParams])
underlying_word: HashMap[uint256, uint256]
instrument_words: HashMap[uint256, uint256[fp.ARRAY_SLOTS]]
instrument_info: public(HashMap[uint256, InstrumentInfo])
instrument_count: public(uint256)
asset_max_deviation: public(HashMap[address, uint256])
asset_word: HashMap[address, uint256]
max_age: public(uint256)


@deploy
def __init__(admin_: address):
    """
    @param admin_ The admin (lists, bounds, grants the keeper role).
    """
    roles.__init__(admin_)
    self.max_age = DEFAULT_MAX_AGE
    log IRiskOracle.MaxAgeSet(max_age=DEFAULT_MAX_AGE)


# ---------------------------------------------------------------- admin


@external
def register_grid(grid_id: uint256, coefficients: DynArray[int256, fp.MAX_SCENARIOS]):
    """
    @notice Register a scenario grid: its linear coefficients c[s] (WAD, signed), the weighted
            price move of scenario s in units of the scan range (docs/fixed-point.md §3, §7).
            A grid is immutable once registered, so posted arrays keep their meaning.
    @param grid_id Label of the grid (non-zero).
    @param coefficients c[0..S-1], 1 <= S <= 39, |c[s]| <= 8 WAD.
    """
    roles._only_admin()
    assert grid_id != 0, "oracle: zero grid id"
    assert self.grid_size[grid_id] == 0, "oracle: grid exists"
    n: uint256 = len(coefficients)
    assert n != 0, "oracle: empty grid"
    packed: uint256[GRID_WORDS] = empty(uint256[GRID_WORDS])
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        c: int256 = coefficients[s]
        assert c <= MAX_COEFFICIENT and c >= -MAX_COEFFICIENT, "oracle: coefficient too large"
        # two's complement in 64 bits: |c| < 2**63 by the bound above.
        bits: uint256 = convert(convert(c, bytes32), uint256) & fp.MASK64
        packed[s >> 2] = packed[s >> 2] | (bits << ((s & 3) << 6))
    self.grid_words[grid_id] = packed
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
):
    """
    @notice List an underlying on a registered grid with its bounded risk parameters.
    @param underlying Id in [1, 65535] (encoded in instrument ids).
    @param grid_id A registered grid.
    @param psr_min Lowest postable price scan range (WAD).
    @param psr_max Highest postable price scan range (WAD).
    @param som_rate Short-option minimum rate (WAD of spot per short contract).
    @param max_deviation Per-update deviation cap (WAD).
    @param max_array_ratio Bound on |risk array entry| as a multiple of spot (WAD).
    """
    roles._only_admin()
    assert underlying != 0 and underlying <= fp.MAX_UNDERLYING_ID, "oracle: bad underlying id"
    assert self.underlying_params[underlying].scenarios == 0, "oracle: underlying exists"
    n: uint256 = self.grid_size[grid_id]
    assert n != 0, "oracle: unknown grid"
    self.underlying_params[underlying].grid_id = grid_id
    self.underlying_params[underlying].scenarios = n
    # the scenario count also lives in the state word, read by `snapshot` in the same SLOAD
    self.underlying_word[underlying] = n << N_SHIFT
    log IRiskOracle.UnderlyingListed(underlying=underlying, grid_id=grid_id, scenarios=n)
    self._set_underlying_params(underlying, psr_min, psr_max, som_rate, max_deviation, max_array_ratio)


@external
def set_underlying_params(
    underlying: uint256,
    psr_min: uint256,
    psr_max: uint256,
    som_rate: uint256,
    max_deviation: uint256,
    max_array_ratio: uint256,
):
    """
    @notice Change the bounded risk parameters of a listed underlying (grid stays).
    @param underlying A listed underlying.
    @param psr_min Lowest postable price scan range (WAD).
    @param psr_max Highest postable price scan range (WAD).
    @param som_rate Short-option minimum rate (WAD).
    @param max_deviation Per-update deviation cap (WAD).
    @param max_array_ratio Bound on |risk array entry| / spot (WAD).
    """
    roles._only_admin()
    assert self.underlying_params[underlying].scenarios != 0, "oracle: unknown underlying"
    self._set_underlying_params(underlying, psr_min, psr_max, som_rate, max_deviation, max_array_ratio)


@external
def list_instrument(
    underlying: uint256, kind: uint256, strike: uint256, expiry: uint256, contract_size: uint256
) -> uint256:
    """
    @notice List a future (kind 0), call (1) or put (2). The returned id encodes
            serial [0, 32) | kind [32, 40) | underlying [40, 56) | expiry [56, 96).
    @param underlying A listed underlying.
    @param kind 0 future, 1 call, 2 put.
    @param strike Option strike (WAD); 0 for a future.
    @param expiry Unix seconds, in the future and below 2**40.
    @param contract_size Units of the underlying per contract (WAD), informational.
    @return The instrument id.
    """
    roles._only_admin()
    assert self.underlying_params[underlying].scenarios != 0, "oracle: unknown underlying"
    assert kind <= fp.KIND_PUT, "oracle: bad kind"
    if kind == fp.KIND_FUTURE:
        assert strike == 0, "oracle: bad strike"
    else:
        assert strike != 0 and strike <= MAX_STRIKE, "oracle: bad strike"
    assert expiry > block.timestamp and expiry <= fp.MASK40, "oracle: bad expiry"
    assert contract_size != 0 and contract_size <= MAX_CONTRACT_SIZE, "oracle: bad contract size"
    serial: uint256 = self.instrument_count + 1
    assert serial < 2**32, "oracle: too many instruments"
    self.instrument_count = serial
    instrument: uint256 = (
        serial
        | (kind << fp.ID_KIND_SHIFT)
        | (underlying << fp.ID_UNDERLYING_SHIFT)
        | (expiry << fp.ID_EXPIRY_SHIFT)
    )
    self.instrument_words[instrument][0] = fp.E_LISTED << fp.E_SHIFT
    self.instrument_info[instrument] = InstrumentInfo(strike=strike, contract_size=contract_size)
    log IRiskOracle.InstrumentListed(
        instrument=instrument,
        underlying=underlying,
        kind=kind,
        strike=strike,
        expiry=expiry,
        contract_size=contract_size,
    )
    return instrument


@external
def list_asset(asset: address, max_deviation: uint256):
    """
    @notice List a collateral asset whose USD price (WAD per whole token) keepers post, or
            change its deviation cap.
    @param asset The ERC-20 token.
    @param max_deviation Per-update deviation cap (WAD).
    """
    roles._only_admin()
    assert asset != empty(address), "oracle: zero asset"
    assert max_deviation >= MIN_DEVIATION and max_deviation <= MAX_DEVIATION, "oracle: deviation out of bounds"
    self.asset_max_deviation[asset] = max_deviation
    log IRiskOracle.AssetListed(asset=asset, max_deviation=max_deviation)


@external
def set_max_age(max_age_: uint256):
    """
    @notice Staleness bound: data older than this blocks new-risk actions.
    @param max_age_ Seconds, in [30, 86400].
    """
    roles._only_admin()
    assert max_age_ >= MIN_MAX_AGE and max_age_ <= MAX_MAX_AGE, "oracle: max_age out of bounds"
    self.max_age = max_age_
    log IRiskOracle.MaxAgeSet(max_age=max_age_)


# ---------------------------------------------------------------- keeper


@external
def post(
    timestamp: uint256,
    underlyings: DynArray[UnderlyingPost, MAX_POST_UNDERLYINGS],
    instruments: DynArray[InstrumentPost, MAX_POST_INSTRUMENTS],
    assets: DynArray[AssetPost, MAX_POST_ASSETS],
):
    """
    @notice Post one batch observed at `timestamp`: underlyings first (spot, psr), then
            instruments (mark; options also e and the packed int16 entries in the storage
            layout: words[0] entries 0..6 in its low 112 bits, words[1] entries 7..22,
            words[2] entries 23..38, exactly ceil-slots(S) words, unused entries zero), then
            collateral prices. Every item must be strictly newer than what is stored: an older
            or equal post reverts ("oracle: not newer"), so a replayed batch cannot land.
    @param timestamp Observation time, <= block.timestamp.
    @param underlyings Spot (WAD) and price scan range (WAD) per underlying.
    @param instruments Mark (WAD) and, for options, exponent and packed entries.
    @param assets Collateral USD prices (WAD per whole token).
    """
    roles._only_keeper()
    assert timestamp <= block.timestamp, "oracle: timestamp in future"
    for u: UnderlyingPost in underlyings:
        self._post_underlying(timestamp, u)
    # Underlying context, reloaded whenever the next instrument is on another underlying.
    cur: uint256 = 0
    n: uint256 = 0
    spot: uint256 = 0
    dev: uint256 = 0
    ratio_cap: uint256 = 0
    lin: int256[fp.MAX_SCENARIOS] = empty(int256[fp.MAX_SCENARIOS])
    for p: InstrumentPost in instruments:
        und: uint256 = fp.id_underlying(p.instrument)
        if und != cur:
            cur = und
            params: UnderlyingParams = self.underlying_params[und]
            n = params.scenarios
            word: uint256 = self.underlying_word[und]
            spot = word & fp.MASK96
            dev = params.max_deviation
            # floor: rounds the bound against the poster.
            ratio_cap = spot * params.max_array_ratio // fp.WAD
            lin = self._linear(params.grid_id, n, (word >> PSR_SHIFT) & fp.MASK64)
        self._post_instrument(timestamp, p, n, spot, dev, ratio_cap, lin)
    for a: AssetPost in assets:
        self._post_asset(timestamp, a)
    und_ids: DynArray[uint256, MAX_POST_UNDERLYINGS] = []
    for u: UnderlyingPost in underlyings:
        und_ids.append(u.underlying)
    ids: DynArray[uint256, MAX_POST_INSTRUMENTS] = []
    for p: InstrumentPost in instruments:
        ids.append(p.instrument)
    asset_ids: DynArray[address, MAX_POST_ASSETS] = []
    for a: AssetPost in assets:
        asset_ids.append(a.asset)
    log IRiskOracle.Posted(
        poster=msg.sender, timestamp=timestamp, underlyings=und_ids, instruments=ids, assets=asset_ids
    )


@external
def post_settlement(instrument: uint256, price: uint256):
    """
    @notice Post the settlement price of an expired instrument (once). Afterwards the
            instrument takes no more posts and the engine settles positions at `price`.
    @param instrument A listed instrument whose expiry has passed.
    @param price Settlement value of one long contract (WAD), within the deviation cap of the
                 last mark (futures) or of spot (options).
    """
    roles._only_keeper()
    word: uint256 = self.instrument_words[instrument][0]
    assert word != 0, "oracle: unknown instrument"
    e: uint256 = (word >> fp.E_SHIFT) & 255
    assert e != fp.E_SETTLED, "oracle: instrument settled"
    assert block.timestamp >= fp.id_expiry(instrument), "oracle: not expired"
    assert price <= fp.MAX_PRICE, "oracle: bad price"
    if (word >> fp.TS_SHIFT) & fp.MASK40 != 0:
        und: uint256 = fp.id_underlying(instrument)
        dev: uint256 = self.underlying_params[und].max_deviation
        old: uint256 = word >> fp.MARK_SHIFT
        base: uint256 = old
        if fp.id_kind(instrument) != fp.KIND_FUTURE:
            base = self.underlying_word[und] & fp.MASK96
        assert self._within(price, old, base * dev // fp.WAD), "oracle: settlement deviation"
    self.instrument_words[instrument] = [
        (price << fp.MARK_SHIFT) | (fp.E_SETTLED << fp.E_SHIFT) | (block.timestamp << fp.TS_SHIFT), 0, 0
    ]
    log IRiskOracle.SettlementPosted(instrument=instrument, price=price, poster=msg.sender)


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
            [spot | psr << 96 | timestamp << 160 | scenarios << 200, scenarios, som_rate], per asset
            [price | timestamp << 96], and max_age.
    @param instruments Instrument ids.
    @param underlyings Underlying ids.
    @param assets Collateral assets.
    """
    uw: DynArray[uint256[3], 32] = []
    for u: uint256 in underlyings:
        w: uint256 = self.underlying_word[u]
        uw.append(
            [w, (w >> N_SHIFT) & 255, self.underlying_params[u].som_rate]
        )
    iw: DynArray[uint256[3], 32] = []
    for i: uint256 in instruments:
        words: uint256[3] = empty(uint256[3])
        w0: uint256 = self.instrument_words[i][0]
        e: uint256 = (w0 >> fp.E_SHIFT) & 255
        if e != fp.E_LISTED:
            words[0] = w0
            if e != fp.E_SETTLED:
                # scenario count: from the underlyings passed in, else from storage
                und: uint256 = fp.id_underlying(i)
                n: uint256 = 0
                for k: uint256 in range(len(underlyings), bound=fp.MAX_POSITIONS):
                    if underlyings[k] == und:
                        n = uw[k][1]
                        break
                if n == 0:
                    n = self.underlying_params[und].scenarios
                if n > fp.SLOT0_ENTRIES:
                    words[1] = self.instrument_words[i][1]
                if n > fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
                    words[2] = self.instrument_words[i][2]
        iw.append(words)
    aw: DynArray[uint256, 8] = []
    for a: address in assets:
        aw.append(self.asset_word[a])
    return iw, uw, aw, self.max_age


@view
@external
def risk_array(instrument: uint256) -> (uint256, uint256, uint256, DynArray[int256, fp.MAX_SCENARIOS]):
    """
    @notice Decoded data of an instrument: mark, exponent e, timestamp and entries (int16
            values; the WAD value is entry * 2**e). A settled instrument reports its settlement
            price as mark, e = 255 and no entries.
    @param instrument A listed instrument.
    """
    words: uint256[3] = self.instrument_words[instrument]
    assert words[0] != 0, "oracle: unknown instrument"
    e: uint256 = (words[0] >> fp.E_SHIFT) & 255
    entries: DynArray[int256, fp.MAX_SCENARIOS] = []
    if e == fp.E_LISTED:
        return 0, 0, 0, entries
    if e != fp.E_SETTLED:
        n: uint256 = self.underlying_params[fp.id_underlying(instrument)].scenarios
        for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
            entries.append(self._entry(words, s))
    return words[0] >> fp.MARK_SHIFT, e, (words[0] >> fp.TS_SHIFT) & fp.MASK40, entries


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
def asset_price(asset: address) -> (uint256, uint256):
    """
    @notice Latest (price, timestamp) of a collateral asset.
    """
    w: uint256 = self.asset_word[asset]
    return w & fp.MASK96, w >> ATS_SHIFT


@view
@external
def grid(grid_id: uint256) -> DynArray[int256, fp.MAX_SCENARIOS]:
    """
    @notice Linear coefficients c[s] (WAD) of a registered grid.
    """
    out: DynArray[int256, fp.MAX_SCENARIOS] = []
    words: uint256[GRID_WORDS] = self.grid_words[grid_id]
    for s: uint256 in range(self.grid_size[grid_id], bound=fp.MAX_SCENARIOS):
        out.append(self._coefficient(words, s))
    return out


@view
@external
def instrument_age(instrument: uint256) -> (uint256, bool):
    """
    @notice Seconds since the instrument's last post, and whether that exceeds max_age (a
            never-posted instrument is stale; a settled one is never stale).
    """
    w: uint256 = self.instrument_words[instrument][0]
    if (w >> fp.E_SHIFT) & 255 == fp.E_SETTLED:
        return 0, False
    return self._age((w >> fp.TS_SHIFT) & fp.MASK40)


@view
@external
def underlying_age(underlying: uint256) -> (uint256, bool):
    """
    @notice Seconds since the underlying's last post, and whether that exceeds max_age.
    """
    return self._age((self.underlying_word[underlying] >> UTS_SHIFT) & fp.MASK40)


@view
@external
def asset_age(asset: address) -> (uint256, bool):
    """
    @notice Seconds since the asset's last price, and whether that exceeds max_age.
    """
    return self._age(self.asset_word[asset] >> ATS_SHIFT)


@view
@external
def asset_listed(asset: address) -> bool:
    """
    @notice Whether keepers may post a price for `asset`.
    """
    return self.asset_max_deviation[asset] != 0


@view
@external
def instrument_listed(instrument: uint256) -> bool:
    """
    @notice Whether `instrument` is a listed instrument id.
    """
    return self.instrument_words[instrument][0] != 0


# ---------------------------------------------------------------- internal


@internal
def _set_underlying_params(
    underlying: uint256,
    psr_min: uint256,
    psr_max: uint256,
    som_rate: uint256,
    max_deviation: uint256,
    max_array_ratio: uint256,
):
    assert psr_min >= MIN_PSR and psr_min <= psr_max and psr_max <= MAX_PSR, "oracle: psr out of bounds"
    assert som_rate <= MAX_SOM_RATE, "oracle: som_rate out of bounds"
    assert max_deviation >= MIN_DEVIATION and max_deviation <= MAX_DEVIATION, "oracle: deviation out of bounds"
    assert max_array_ratio >= MIN_ARRAY_RATIO and max_array_ratio <= MAX_ARRAY_RATIO, "oracle: ratio out of bounds"
    self.underlying_params[underlying].psr_min = psr_min
    self.underlying_params[underlying].psr_max = psr_max
    self.underlying_params[underlying].som_rate = som_rate
    self.underlying_params[underlying].max_deviation = max_deviation
    self.underlying_params[underlying].max_array_ratio = max_array_ratio
    log IRiskOracle.UnderlyingParamsSet(
        underlying=underlying,
        psr_min=psr_min,
        psr_max=psr_max,
        som_rate=som_rate,
        max_deviation=max_deviation,
        max_array_ratio=max_array_ratio,
    )


@internal
def _post_underlying(timestamp: uint256, u: UnderlyingPost):
    params: UnderlyingParams = self.underlying_params[u.underlying]
    assert params.scenarios != 0, "oracle: unknown underlying"
    assert u.spot != 0 and u.spot <= fp.MAX_PRICE, "oracle: bad price"
    assert u.psr >= params.psr_min and u.psr <= params.psr_max, "oracle: psr out of bounds"
    old: uint256 = self.underlying_word[u.underlying]
    assert timestamp > (old >> UTS_SHIFT) & fp.MASK40, "oracle: not newer"
    old_spot: uint256 = old & fp.MASK96
    if old_spot != 0:
        assert self._within(u.spot, old_spot, old_spot * params.max_deviation // fp.WAD), "oracle: spot deviation"
    self.underlying_word[u.underlying] = (
        u.spot | (u.psr << PSR_SHIFT) | (timestamp << UTS_SHIFT) | (params.scenarios << N_SHIFT)
    )


@internal
def _post_instrument(
    timestamp: uint256,
    p: InstrumentPost,
    n: uint256,
    spot: uint256,
    dev: uint256,
    ratio_cap: uint256,
    lin: int256[fp.MAX_SCENARIOS],
):
    old: uint256 = self.instrument_words[p.instrument][0]
    assert old != 0, "oracle: unknown instrument"
    old_e: uint256 = (old >> fp.E_SHIFT) & 255
    assert old_e != fp.E_SETTLED, "oracle: instrument settled"
    assert timestamp > (old >> fp.TS_SHIFT) & fp.MASK40, "oracle: not newer"
    assert p.mark <= fp.MAX_PRICE, "oracle: bad price"
    old_mark: uint256 = old >> fp.MARK_SHIFT
    has_old: bool = old_e != fp.E_LISTED
    words: uint256[3] = empty(uint256[3])
    e: uint256 = 0
    if fp.id_kind(p.instrument) == fp.KIND_FUTURE:
        assert p.mark != 0, "oracle: bad price"
        assert len(p.words) == 0 and p.e == 0, "oracle: future array posted"
        if has_old:
            assert self._within(p.mark, old_mark, old_mark * dev // fp.WAD), "oracle: mark deviation"
        e, words = self._future_array(convert(p.mark, int256), n, lin)
    else:
        if has_old:
            assert self._within(p.mark, old_mark, spot * dev // fp.WAD), "oracle: mark deviation"
        e = p.e
        assert e <= fp.MAX_EXPONENT, "oracle: exponent too large"
        words = self._check_option_array(p.words, n, e, ratio_cap)
    words[0] = words[0] | (p.mark << fp.MARK_SHIFT) | (e << fp.E_SHIFT) | (timestamp << fp.TS_SHIFT)
    self.instrument_words[p.instrument][0] = words[0]
    if n > fp.SLOT0_ENTRIES:
        self.instrument_words[p.instrument][1] = words[1]
    if n > fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
        self.instrument_words[p.instrument][2] = words[2]


@internal
def _post_asset(timestamp: uint256, a: AssetPost):
    dev: uint256 = self.asset_max_deviation[a.asset]
    assert dev != 0, "oracle: unknown asset"
    assert a.price != 0 and a.price <= fp.MAX_PRICE, "oracle: bad price"
    old: uint256 = self.asset_word[a.asset]
    assert timestamp > old >> ATS_SHIFT, "oracle: not newer"
    old_price: uint256 = old & fp.MASK96
    if old_price != 0:
        assert self._within(a.price, old_price, old_price * dev // fp.WAD), "oracle: price deviation"
    self.asset_word[a.asset] = a.price | (timestamp << ATS_SHIFT)


@view
@internal
def _linear(grid_id: uint256, n: uint256, psr: uint256) -> int256[fp.MAX_SCENARIOS]:
    """
    @dev lin[s] = div_trunc(c[s] * psr, WAD), computed once per underlying per batch.
    """
    out: int256[fp.MAX_SCENARIOS] = empty(int256[fp.MAX_SCENARIOS])
    words: uint256[GRID_WORDS] = self.grid_words[grid_id]
    spsr: int256 = convert(psr, int256)
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        # unsafe_mul: |c| <= 8e18 and psr <= 1e18, product < 2**63.
        out[s] = unsafe_mul(self._coefficient(words, s), spsr) // fp.SWAD
    return out


@pure
@internal
def _future_array(mark: int256, n: uint256, lin: int256[fp.MAX_SCENARIOS]) -> (uint256, uint256[3]):
    """
    @dev ra[s] = div_trunc(mark * lin[s], WAD), encoded per docs/fixed-point.md §3.
    """
    ra: int256[fp.MAX_SCENARIOS] = empty(int256[fp.MAX_SCENARIOS])
    top: uint256 = 0
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        # unsafe_mul: mark < 2**96 and |lin| <= 16e18 < 2**64, product < 2**160.
        r: int256 = unsafe_mul(mark, lin[s]) // fp.SWAD
        ra[s] = r
        m: int256 = r
        if r < 0:
            # unsafe_sub: r > -2**160, no overflow.
            m = unsafe_sub(-r, 1)
        top = max(top, convert(m, uint256))
    bits: uint256 = self._bitlen(top)
    e: uint256 = 0
    if bits > 15:
        e = bits - 15
    words: uint256[3] = empty(uint256[3])
    for s: uint256 in range(n, bound=fp.MAX_SCENARIOS):
        entry: uint256 = convert(convert(ra[s] >> e, bytes32), uint256) & fp.MASK16
        if s < fp.SLOT0_ENTRIES:
            words[0] = words[0] | (entry << (s << 4))
        elif s < fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
            words[1] = words[1] | (entry << ((s - fp.SLOT0_ENTRIES) << 4))
        else:
            words[2] = words[2] | (entry << ((s - fp.SLOT0_ENTRIES - fp.SLOT_ENTRIES) << 4))
    return e, words


@pure
@internal
def _check_option_array(
    posted: DynArray[uint256, 3], n: uint256, e: uint256, ratio_cap: uint256
) -> uint256[3]:
    """
    @dev Checks the posted words: exact slot count, no bits beyond entry n-1, canonical
         exponent (e > 0 needs an entry outside [-16384, 16383]) and max |entry| * 2**e <=
         max_array_ratio * spot.
    """
    slots: uint256 = 1
    if n > fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
        slots = 3
    elif n > fp.SLOT0_ENTRIES:
        slots = 2
    assert len(posted) == slots, "oracle: wrong array length"
    words: uint256[3] = empty(uint256[3])
    # entries of the last word, and the bit length they may use
    used: uint256 = n
    if slots > 1:
        used = n - fp.SLOT0_ENTRIES - (slots - 2) * fp.SLOT_ENTRIES
    for k: uint256 in range(slots, bound=3):
        w: uint256 = posted[k]
        cap: uint256 = fp.SLOT_ENTRIES
        if k == 0:
            cap = fp.SLOT0_ENTRIES
        if k == slots - 1:
            cap = used
        if cap < fp.SLOT_ENTRIES:
            assert w >> (cap << 4) == 0, "oracle: wrong array length"
        words[k] = w
    # Largest and smallest entry, unrolled over the 39 positions (entries beyond n are zero,
    # checked above): entry i of a word sits at bits [16i, 16i + 16) and an arithmetic
    # shift to the top and back sign-extends it.
    w0: int256 = convert(convert(words[0], bytes32), int256)
    w1: int256 = convert(convert(words[1], bytes32), int256)
    w2: int256 = convert(convert(words[2], bytes32), int256)
    hi: int256 = 0
    lo: int256 = 0
    v: int256 = 0
    v = (w0 << 240) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w0 << 224) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w0 << 208) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w0 << 192) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w0 << 176) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w0 << 160) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w0 << 144) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 240) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 224) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 208) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 192) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 176) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 160) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 144) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 128) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 112) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 96) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 80) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 64) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 48) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 32) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 16) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w1 << 0) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 240) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 224) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 208) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 192) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 176) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 160) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 144) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 128) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 112) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 96) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 80) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 64) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 48) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 32) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 16) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    v = (w2 << 0) >> 240
    hi = max(hi, v)
    lo = min(lo, v)
    # m = v for v >= 0 and -v - 1 for v < 0 (docs/fixed-point.md §3); |v| <= 32768.
    top_m: int256 = max(hi, -lo - 1)
    top_abs: uint256 = convert(max(hi, -lo), uint256)
    # canonical: bitlen(max m) == 15 when e > 0 (docs/fixed-point.md §3).
    if e != 0:
        assert top_m >= 16384, "oracle: non-canonical exponent"
    # top_abs <= 2**15 and e <= 127: the shift stays below 2**143.
    assert top_abs << e <= ratio_cap, "oracle: array magnitude"
    return words


@pure
@internal
def _entry(words: uint256[3], s: uint256) -> int256:
    if s < fp.SLOT0_ENTRIES:
        return fp.entry_at(words[0], s)
    if s < fp.SLOT0_ENTRIES + fp.SLOT_ENTRIES:
        return fp.entry_at(words[1], s - fp.SLOT0_ENTRIES)
    return fp.entry_at(words[2], s - fp.SLOT0_ENTRIES - fp.SLOT_ENTRIES)


@pure
@internal
def _coefficient(words: uint256[GRID_WORDS], s: uint256) -> int256:
    bits: uint256 = (words[s >> 2] >> ((s & 3) << 6)) & fp.MASK64
    # sign extension of a 64-bit two's complement value; result in [-2**63, 2**63).
    return unsafe_sub(convert(bits ^ 2**63, int256), 2**63)


@pure
@internal
def _bitlen(x: uint256) -> uint256:
    n: uint256 = 0
    y: uint256 = x
    for k: uint256 in [128, 64, 32, 16, 8, 4, 2, 1]:
        if y >> k != 0:
            y = y >> k
            n += k
    if y != 0:
        n += 1
    return n


@pure
@internal
def _within(new: uint256, old: uint256, cap: uint256) -> bool:
    if new >= old:
        return new - old <= cap
    return old - new <= cap


@view
@internal
def _age(ts: uint256) -> (uint256, bool):
    age: uint256 = block.timestamp - min(ts, block.timestamp)
    return age, ts == 0 or age > self.max_age
