# pragma version 0.4.3
"""
@title Portfolio margin math over one oracle snapshot (docs/fixed-point.md §4-§5)
@custom:contract-name portfolio
@notice Pure functions: given an account's positions and the packed oracle words returned by
        RiskOracle.snapshot, compute the position value, the settled cash of instruments with a
        settlement price, and per underlying the SPAN-style scan:
        acc[s] = sum_j q_j * entry_j[s] * 2**e_j, loss[s] = div_ceil(-acc[s], WAD),
        pad = div_ceil(sum_{q<0} -q * 2**e, WAD), som = div_ceil(div_ceil(sum_{short options}
        -q * spot, WAD) * som_rate, WAD), risk = max(max(worst, 0) + pad, som), MM = sum risk.
@custom:security Overflow bounds relied on by the unsafe operations: |q| <= MAX_SIZE < 2**100
                 (enforced by the positions module), e <= 127 (enforced by the oracle; the
                 listed/settled sentinels never reach the scan), |entry| <= 2**15, spot and
                 marks < 2**96, at most 32 positions. Hence |q * 2**e| < 2**227,
                 |q * 2**e * entry| < 2**242 and any sum of 32 such terms < 2**247.
"""


from . import fixed_point as fp


struct UnderlyingRisk:
    underlying: uint256
    worst_scenario: uint256
    worst_loss: int256
    pad: int256
    som: int256
    risk: int256


struct Risk:
    position_value: int256
    settled_cash: int256
    maintenance_margin: int256
    min_timestamp: uint256


@pure
@internal
def _risk(
    ids: DynArray[uint256, fp.MAX_POSITIONS],
    sizes: DynArray[int256, fp.MAX_POSITIONS],
    iw: DynArray[uint256[3], fp.MAX_POSITIONS],
    unds: DynArray[uint256, fp.MAX_POSITIONS],
    uw: DynArray[uint256[3], fp.MAX_POSITIONS],
    legs: uint256[4][fp.MAX_LINKED],
) -> Risk:
    """
    @dev `unds` holds every underlying of `ids` (in any order); `iw`/`uw` the matching words.
    """
    r: Risk = Risk(position_value=0, settled_cash=0, maintenance_margin=0, min_timestamp=max_value(uint256))
    value: int256 = 0
    # pass 1: value, settlement, timestamps.
    for j: uint256 in range(len(ids), bound=fp.MAX_POSITIONS):
        q: int256 = sizes[j]
        if q == 0:
            continue
        w0: uint256 = iw[j][0]
        # mark < 2**96 and |q| < 2**100: |q * mark| < 2**196; sums of 32 < 2**201.
        mark: int256 = convert(w0 >> fp.MARK_SHIFT, int256)
        if (w0 >> fp.E_SHIFT) & 255 == fp.E_SETTLED:
            # unsafe: |q * P| < 2**196, and 32 such terms sum below 2**201.
            r.settled_cash = unsafe_add(r.settled_cash, fp.div_floor(unsafe_mul(q, mark), fp.SWAD))
            continue
        # unsafe: |q * mark| < 2**196, and 32 such terms sum below 2**201.
        value = unsafe_add(value, unsafe_mul(q, mark))
        r.min_timestamp = min(r.min_timestamp, (w0 >> fp.TS_SHIFT) & fp.MASK40)
    r.position_value = fp.div_floor(value, fp.SWAD)
    # pass 2: one scan per underlying.
    for k: uint256 in range(len(unds), bound=fp.MAX_POSITIONS):
        d: UnderlyingRisk = empty(UnderlyingRisk)
        held: bool = False
        d, held = self._scan(unds[k], uw[k], ids, sizes, iw, legs)
        if held:
            r.maintenance_margin += d.risk
            r.min_timestamp = min(r.min_timestamp, (uw[k][0] >> 160) & fp.MASK40)
    return r


@pure
@internal
def _details(
    ids: DynArray[uint256, fp.MAX_POSITIONS],
    sizes: DynArray[int256, fp.MAX_POSITIONS],
    iw: DynArray[uint256[3], fp.MAX_POSITIONS],
    unds: DynArray[uint256, fp.MAX_POSITIONS],
    uw: DynArray[uint256[3], fp.MAX_POSITIONS],
    legs: uint256[4][fp.MAX_LINKED],
) -> DynArray[UnderlyingRisk, fp.MAX_POSITIONS]:
    """
    @dev The per-underlying terms of `_risk`, for the underlyings the account holds.
    """
    out: DynArray[UnderlyingRisk, fp.MAX_POSITIONS] = []
    for k: uint256 in range(len(unds), bound=fp.MAX_POSITIONS):
        d: UnderlyingRisk = empty(UnderlyingRisk)
        held: bool = False
        d, held = self._scan(unds[k], uw[k], ids, sizes, iw, legs)
        if held:
            out.append(d)
    return out


@pure
@internal
def _scan(
    u: uint256,
    uword: uint256[3],
    ids: DynArray[uint256, fp.MAX_POSITIONS],
    sizes: DynArray[int256, fp.MAX_POSITIONS],
    iw: DynArray[uint256[3], fp.MAX_POSITIONS],
    legs: uint256[4][fp.MAX_LINKED],
) -> (UnderlyingRisk, bool):
    """
    @dev Scan of one underlying `u` (uword = [spot | psr | ts, scenario count, som_rate]):
         worst scenario, its loss, pad, short-option minimum, risk; and whether any unsettled
         non-zero position is on `u`. The spot legs of collateral linked to `u` count only then.
    """
    n_s: uint256 = uword[1] & 255
    acc: int256[fp.MAX_SCENARIOS] = empty(int256[fp.MAX_SCENARIOS])
    pad_sum: int256 = 0
    short_options: int256 = 0
    held: bool = False
    for j: uint256 in range(len(ids), bound=fp.MAX_POSITIONS):
        q: int256 = sizes[j]
        # inline fp.id_underlying (hot loop)
        if q == 0 or (ids[j] >> fp.ID_UNDERLYING_SHIFT) & fp.MASK16 != u:
            continue
        words: uint256[3] = iw[j]
        e: uint256 = (words[0] >> fp.E_SHIFT) & 255
        if e == fp.E_SETTLED:
            continue
        held = True
        # |term| < 2**227 (module docstring).
        term: int256 = q << e
        if q < 0:
            # unsafe: 0 < -term < 2**227 and at most 32 terms; 0 < -q <= 1e30.
            pad_sum = unsafe_sub(pad_sum, term)
            # options only (kinds 1 and 2): futures and perps carry no short-option minimum
            if unsafe_sub(fp.id_kind(ids[j]), 1) < 2:
                short_options = unsafe_sub(short_options, q)
        # Unrolled over all 39 entry positions (constant indices: no bounds checks); entries
        # beyond the grid size are zero (the oracle stores none there), so they add nothing;
        # the last four are skipped on grids of at most 35 scenarios.
        # Entry i of a word sits at bits [16i, 16i + 16): shifting it to the top and back
        # with an arithmetic shift sign-extends it. |term * entry| < 2**242 (see above).
        w0: int256 = convert(convert(words[0], bytes32), int256)
        w1: int256 = convert(convert(words[1], bytes32), int256)
        w2: int256 = convert(convert(words[2], bytes32), int256)
        acc[0] = unsafe_add(acc[0], unsafe_mul(term, (w0 << 240) >> 240))
        acc[1] = unsafe_add(acc[1], unsafe_mul(term, (w0 << 224) >> 240))
        acc[2] = unsafe_add(acc[2], unsafe_mul(term, (w0 << 208) >> 240))
        acc[3] = unsafe_add(acc[3], unsafe_mul(term, (w0 << 192) >> 240))
        acc[4] = unsafe_add(acc[4], unsafe_mul(term, (w0 << 176) >> 240))
        acc[5] = unsafe_add(acc[5], unsafe_mul(term, (w0 << 160) >> 240))
        acc[6] = unsafe_add(acc[6], unsafe_mul(term, (w0 << 144) >> 240))
        acc[7] = unsafe_add(acc[7], unsafe_mul(term, (w1 << 240) >> 240))
        acc[8] = unsafe_add(acc[8], unsafe_mul(term, (w1 << 224) >> 240))
        acc[9] = unsafe_add(acc[9], unsafe_mul(term, (w1 << 208) >> 240))
        acc[10] = unsafe_add(acc[10], unsafe_mul(term, (w1 << 192) >> 240))
        acc[11] = unsafe_add(acc[11], unsafe_mul(term, (w1 << 176) >> 240))
        acc[12] = unsafe_add(acc[12], unsafe_mul(term, (w1 << 160) >> 240))
        acc[13] = unsafe_add(acc[13], unsafe_mul(term, (w1 << 144) >> 240))
        acc[14] = unsafe_add(acc[14], unsafe_mul(term, (w1 << 128) >> 240))
        acc[15] = unsafe_add(acc[15], unsafe_mul(term, (w1 << 112) >> 240))
        acc[16] = unsafe_add(acc[16], unsafe_mul(term, (w1 << 96) >> 240))
        acc[17] = unsafe_add(acc[17], unsafe_mul(term, (w1 << 80) >> 240))
        acc[18] = unsafe_add(acc[18], unsafe_mul(term, (w1 << 64) >> 240))
        acc[19] = unsafe_add(acc[19], unsafe_mul(term, (w1 << 48) >> 240))
        acc[20] = unsafe_add(acc[20], unsafe_mul(term, (w1 << 32) >> 240))
        acc[21] = unsafe_add(acc[21], unsafe_mul(term, (w1 << 16) >> 240))
        acc[22] = unsafe_add(acc[22], unsafe_mul(term, (w1 << 0) >> 240))
        acc[23] = unsafe_add(acc[23], unsafe_mul(term, (w2 << 240) >> 240))
        acc[24] = unsafe_add(acc[24], unsafe_mul(term, (w2 << 224) >> 240))
        acc[25] = unsafe_add(acc[25], unsafe_mul(term, (w2 << 208) >> 240))
        acc[26] = unsafe_add(acc[26], unsafe_mul(term, (w2 << 192) >> 240))
        acc[27] = unsafe_add(acc[27], unsafe_mul(term, (w2 << 176) >> 240))
        acc[28] = unsafe_add(acc[28], unsafe_mul(term, (w2 << 160) >> 240))
        acc[29] = unsafe_add(acc[29], unsafe_mul(term, (w2 << 144) >> 240))
        acc[30] = unsafe_add(acc[30], unsafe_mul(term, (w2 << 128) >> 240))
        acc[31] = unsafe_add(acc[31], unsafe_mul(term, (w2 << 112) >> 240))
        acc[32] = unsafe_add(acc[32], unsafe_mul(term, (w2 << 96) >> 240))
        acc[33] = unsafe_add(acc[33], unsafe_mul(term, (w2 << 80) >> 240))
        acc[34] = unsafe_add(acc[34], unsafe_mul(term, (w2 << 64) >> 240))
        if n_s > 35:
            acc[35] = unsafe_add(acc[35], unsafe_mul(term, (w2 << 48) >> 240))
            acc[36] = unsafe_add(acc[36], unsafe_mul(term, (w2 << 32) >> 240))
            acc[37] = unsafe_add(acc[37], unsafe_mul(term, (w2 << 16) >> 240))
            acc[38] = unsafe_add(acc[38], unsafe_mul(term, (w2 << 0) >> 240))
    if not held:
        return empty(UnderlyingRisk), False
    # A leg (docs/fixed-point.md §5.1), a future at a linked asset's price: [underlying |
    # holding << 16 | e << 24 | amount_wad << 32, entries 0..15, 16..31, 32..38], entry s in
    # lane s % 16 of word 1 + s // 16 (RiskOracle.spot_leg).
    for leg: uint256[4] in legs:
        head: uint256 = leg[0]
        if head & fp.MASK16 == u:
            # long: no pad, no minimum. amount_wad < 2**129 (deposit cap) and price < 2**96
            # give e <= 84: |amount_wad * 2**e| < 2**213, each term below 2**228.
            lterm: int256 = convert(convert((head >> 32) << ((head >> 24) & 255), bytes32), int256)
            for s: uint256 in range(n_s, bound=fp.MAX_SCENARIOS):
                lw: int256 = convert(convert(leg[1 + (s >> 4)], bytes32), int256)
                acc[s] = unsafe_add(acc[s], unsafe_mul(lterm, (lw << (240 - ((s & 15) << 4))) >> 240))
    # div_ceil is monotonic: divide the largest loss once. The worst scenario is the first
    # whose rounded loss equals it, i.e. whose loss exceeds (worst - 1) * WAD.
    # unsafe: |acc[s]| < 2**247.
    top: int256 = unsafe_sub(0, acc[0])
    for s: uint256 in range(1, n_s, bound=fp.MAX_SCENARIOS):
        top = max(top, unsafe_sub(0, acc[s]))
    worst: int256 = fp.div_ceil(top, fp.SWAD)
    above: int256 = (worst - 1) * fp.SWAD
    worst_s: uint256 = 0
    for s: uint256 in range(n_s, bound=fp.MAX_SCENARIOS):
        if unsafe_sub(0, acc[s]) > above:
            worst_s = s
            break
    spot: int256 = convert(uword[0] & fp.MASK96, int256)
    pad: int256 = fp.div_ceil(pad_sum, fp.SWAD)
    # unsafe: short_options <= 32e30 < 2**105 and spot < 2**96.
    short_notional: int256 = fp.div_ceil(unsafe_mul(short_options, spot), fp.SWAD)
    som: int256 = fp.div_ceil(short_notional * convert(uword[2], int256), fp.SWAD)
    risk: int256 = max(max(worst, 0) + pad, som)
    return UnderlyingRisk(underlying=u, worst_scenario=worst_s, worst_loss=worst, pad=pad, som=som, risk=risk), True
