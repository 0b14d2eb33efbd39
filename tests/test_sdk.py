"""``offchain.sdk``: config parsing, ids and packing, decoding the oracle's words, the
deployment file; then on anvil: idempotent deployment, posts read back exactly, the reference
margin of ``account_int`` equal to the engine's, and ``ape console``'s ``margin_of``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from console_support import bounded_option
from hypothesis import given
from hypothesis import strategies as st

from offchain.codec import OptionPost, id_fields, instrument_id, pack_entries, unpack_entries
from offchain.fixed_point import (
    WAD,
    curve_shift_wad,
    encode_risk_array,
    futures_risk_array_wad,
    scenario_lin_wad,
)
from offchain.margin import Kind
from offchain.scenarios import CRYPTO_35
from offchain.sdk import (
    ROLE_GUARDIAN,
    ROLE_KEEPER,
    ROLE_VENUE,
    Client,
    Deployment,
    InstrumentMeta,
    decode_market,
    deploy_system,
    instrument_name,
    load_config,
    to_units,
)
from offchain.sdk.records import usd

REPO = Path(__file__).resolve().parents[1]
USD = 10**6


# --------------------------------------------------------------------------- pure parts


def test_exact_unit_conversions():
    assert to_units("1.5", 6) == 1_500_000
    with pytest.raises(ValueError):
        to_units("0.0000001", 6)


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=39))
def test_pack_unpack_round_trip(entries):
    words = pack_entries(entries)
    assert len(words) == (1 if len(entries) <= 7 else 2 if len(entries) <= 23 else 3)
    assert unpack_entries(words, len(entries)) == entries


@given(
    st.integers(1, 2**32 - 1),
    st.sampled_from([0, 1, 2]),
    st.integers(1, 2**16 - 1),
    st.integers(1, 2**40 - 1),
)
def test_ids_round_trip(serial, kind, und, expiry):
    assert id_fields(instrument_id(serial, kind, und, expiry)) == (serial, kind, und, expiry)


def test_instrument_names():
    names = {1: "BTC"}
    call = InstrumentMeta(1, 1, Kind.CALL, 9_000 * WAD, 1_585_296_000)
    assert call.name(names) == "BTC-20200327-C-9000"
    put = InstrumentMeta(2, 1, Kind.PUT, 2_500 * WAD // 10, 1_585_296_000)
    assert put.name(names) == "BTC-20200327-P-250"
    assert InstrumentMeta(3, 1, Kind.FUTURE, 0, 1_585_296_000).name(names) == "BTC-20200327-F"


def test_instrument_names_spell_out_an_expiry_other_than_0800():
    later = InstrumentMeta(4, 1, Kind.FUTURE, 0, 1_585_296_000 + 5_401)
    assert later.name({1: "BTC"}) == "BTC-20200327T093001-F"


def test_role_constants_are_the_contracts_bits():
    source = (REPO / "contracts" / "modules" / "roles.vy").read_text()
    for name, bit in (
        ("ROLE_KEEPER", ROLE_KEEPER),
        ("ROLE_VENUE", ROLE_VENUE),
        ("ROLE_GUARDIAN", ROLE_GUARDIAN),
    ):
        assert f"{name}: constant(uint256) = {bit}\n" in source


def test_decode_market_reads_the_storage_layout():
    iid = instrument_id(1, 1, 1, 2_000_000_000)
    w0 = (500 * WAD) << 160 | 56 << 152 | 1_700_000_000 << 112 | 0xFFFF0001
    settled = instrument_id(2, 0, 1, 1_600_000_000)
    s0 = (61_000 * WAD) << 160 | 255 << 152 | 1_700_000_000 << 112
    listed = instrument_id(3, 0, 1, 2_000_000_000)
    m = decode_market(
        {iid: [w0, 0, 0], settled: [s0, 0, 0], listed: [254 << 152, 0, 0]},
        {1: [60_000 * WAD | (10**17 << 96) | (1_700_000_000 << 160), 35, 10**17]},
        {"0xweth": 3_000 * WAD | 1_700_000_000 << 96},
        {"0xweth": (0, 2 * 10**17, 18)},
        125 * WAD // 100,
    )
    ins = m.market.instruments[iid]
    assert (ins.mark, ins.exponent, ins.entries[:3]) == (500 * WAD, 56, (1, -1, 0))
    assert m.settled == {settled: 61_000 * WAD} and listed not in m.market.instruments
    assert m.market.underlyings[1].spot == 60_000 * WAD
    assert m.market.collaterals[0].price == 3_000 * WAD and m.asset_index == {"0xweth": 0}


def test_decode_market_links_collateral_with_the_grid_at_the_posted_psr():
    """A linked asset gets its underlying; the underlying its lin = floor(c * psr / WAD)."""
    c = CRYPTO_35.linear_coefficients_wad()
    m = decode_market(
        {},
        {1: [60_000 * WAD | (10**17 << 96) | (1_700_000_000 << 160), 35, 10**17]},
        {"0xweth": 3_000 * WAD | 1_700_000_000 << 96},
        {"0xweth": (0, 2 * 10**17, 18), "0xusdt": (1, 0, 6)},
        WAD,
        links={"0xweth": 1, "0xusdt": 0},
        grids={1: c},
    )
    assert m.market.collaterals[0].underlying == 1 and m.market.collaterals[1].underlying is None
    assert list(m.market.underlyings[1].lin) == scenario_lin_wad(c, 10**17)


def test_decode_market_values_stale_collateral_at_zero_as_liquidation_does():
    assets = {"0xweth": (0, 2 * 10**17, 18), "0xwbtc": (1, 25 * 10**16, 8)}
    words = {"0xweth": 3_000 * WAD | 1_700_000_000 << 96}  # WBTC never posted

    def prices(stale_before):
        m = decode_market({}, {}, words, assets, WAD, stale_before=stale_before)
        return [m.market.collaterals[i].price for i in (0, 1)]

    assert prices(None) == [3_000 * WAD, 0]
    assert prices(1_700_000_000) == [3_000 * WAD, 0]  # stamped exactly at the limit: fresh
    assert prices(1_700_000_001) == [0, 0]


def test_deployment_file_round_trip(tmp_path):
    d = Deployment(
        "sepolia",
        11155111,
        5,
        "0xo",
        "0xa",
        "0xe",
        "0xv",
        "0xc",
        {"WETH": "0xw"},
        {"BTC": 1},
        {"BTC-20200327-F": 2**90 + 1},
        {"0xw": "ETH"},
    )
    d.save(tmp_path / "x" / "sepolia.json")
    assert Deployment.load(tmp_path / "x" / "sepolia.json") == d


# --------------------------------------------------------------------------- on anvil


@pytest.fixture(scope="module")
def deployed(project, chain, admin, keeper, venue):
    cfg = load_config(REPO / "deploy" / "config.json")
    return deploy_system(project, chain, admin, cfg, keepers=[keeper], venues=[venue])


def test_deploy_is_idempotent(deployed, project, chain, admin, keeper, venue):
    cfg = load_config(REPO / "deploy" / "config.json")
    nonce = admin.nonce
    again = deploy_system(
        project,
        chain,
        admin,
        cfg,
        keepers=[keeper],
        venues=[venue],
        existing=deployed.deployment,
    )
    assert admin.nonce == nonce  # nothing sent
    assert again.deployment == deployed.deployment
    metas = again.listed_instruments()
    assert sorted(m.name(again.underlying_names) for m in metas) == sorted(
        deployed.deployment.instruments
    )


def test_deploy_applies_a_changed_limit_or_haircut(deployed, project, chain, admin, keeper, venue):
    cfg = load_config(REPO / "deploy" / "config.json")
    first, weth = cfg.instruments[0], cfg.collateral[0]
    changed = replace(
        cfg,
        instruments=(
            replace(first, position_limit=first.position_limit // 2),
            *cfg.instruments[1:],
        ),
        collateral=(replace(weth, haircut=weth.haircut + 10**16), *cfg.collateral[1:]),
    )
    again = deploy_system(
        project,
        chain,
        admin,
        changed,
        keepers=[keeper],
        venues=[venue],
        existing=deployed.deployment,
    )
    iid = again.deployment.instruments[instrument_name(changed, changed.instruments[0])]
    token = again.deployment.collateral[weth.symbol]
    assert again.engine.position_limit(iid) == first.position_limit // 2
    assert again.engine.asset_haircut(token) == weth.haircut + 10**16


def post_everything(c: Client, chain, keeper):
    ts = chain.blocks.head.timestamp + 1
    chain.mine(timestamp=ts)
    ids = c.deployment.instruments
    psr = 12 * WAD // 100
    items = []
    for iid in sorted(ids.values()):
        _, kind, und, _ = id_fields(iid)
        spot = 60_000 * WAD if und == 1 else 3_000 * WAD
        if kind in (0, 3):  # a future or a perp: the mark only
            items.append(OptionPost.future(iid, spot))
        else:
            risk = [spot // 25 * c_ // WAD for c_ in CRYPTO_35.linear_coefficients_wad()]
            items.append(bounded_option(c.oracle, iid, spot, spot // 20, risk, ts))
    weth = c.deployment.collateral["WETH"]
    c.post(
        keeper,
        ts,
        [(1, 60_000 * WAD, psr), (2, 3_000 * WAD, psr)],
        items,
        [(weth, 3_000 * WAD), (c.deployment.collateral["WBTC"], 60_000 * WAD)],
    )
    return ts, psr, items


def test_posts_read_back_exactly(deployed, chain, keeper):
    c = deployed
    ts, psr, items = post_everything(c, chain, keeper)
    m = c.market_int()
    coeffs = CRYPTO_35.linear_coefficients_wad()
    for p in items:
        ins = m.market.instruments[p.instrument]
        assert ins.mark == p.mark and m.timestamps[p.instrument] == ts
        _, kind, und, expiry = id_fields(p.instrument)
        if kind in (0, 3):
            # the curve shift of its expiry: deploy/config.json sets a basis and roll window;
            # a perp sits at the spot end of the curve (h = 0)
            params = c.underlying_params(und)
            h = 0 if kind == 3 else curve_shift_wad(expiry, ts, params.basis, params.roll, psr)
            assert params.basis > 0
            tilts = CRYPTO_35.tilt_coefficients_wad()
            e, entries = encode_risk_array(futures_risk_array_wad(p.mark, coeffs, psr, tilts, h))
        else:
            e, entries = p.exponent, unpack_entries(p.words, len(coeffs))
        assert (ins.exponent, list(ins.entries)) == (e, entries)
    assert m.market.collaterals[m.asset_index[c.deployment.collateral["WETH"]]].price == (
        3_000 * WAD
    )


def test_account_int_reproduces_the_engine_and_console_prints_it(
    deployed,
    project,
    chain,
    networks,
    admin,
    keeper,
    venue,
    trader,
    maker,
    capsys,
    monkeypatch,
    tmp_path,
):
    c = deployed
    post_everything(c, chain, keeper)
    weth = c.deployment.collateral["WETH"]
    for acct in (trader, maker):
        c.fund(admin, acct, "cash", 1_000_000 * USD)
        c.deposit(acct, "cash", 1_000_000 * USD)
        c.authorise(acct, venue)
    c.fund(admin, trader, "WETH", 10 * WAD)
    c.deposit(trader, "WETH", 10 * WAD)
    ids = c.deployment.instruments
    fut = next(v for k, v in ids.items() if k.startswith("BTC") and k.endswith("-F"))
    put = next(v for k, v in ids.items() if k.startswith("ETH") and "-P-" in k)
    c.trade(venue, trader, maker, fut, 3 * WAD, 60_000 * WAD)
    c.trade(venue, maker, trader, put, 40 * WAD, 150 * WAD)
    m = c.market_int()
    for acct in (trader, maker):
        ref = m.account_margin(c.account_int(acct, m))
        state = c.account_state(acct)
        assert (ref.equity, ref.initial_margin, ref.maintenance_margin) == (
            state.equity,
            state.initial_margin,
            state.maintenance_margin,
        )
    assert c.account_int(trader, m).collateral == {m.asset_index[weth]: 10 * WAD}

    path = tmp_path / "local.json"
    c.deployment.save(path)
    monkeypatch.setenv("PM_DEPLOYMENT", str(path))
    sys.path.insert(0, str(REPO))
    try:
        import ape_console_extras
    finally:
        sys.path.remove(str(REPO))
    from ape import accounts as account_manager

    extras = ape_console_extras.ape_init_extras(project, chain, networks, account_manager)
    assert extras["engine"].address == c.engine.address
    report = extras["margin_of"](trader.address)
    assert capsys.readouterr().out == ""  # the record is the answer, echoed once by the console
    state = c.account_state(trader)
    eq, im, mm = state.equity, state.initial_margin, state.maintenance_margin
    assert (report.equity, report.initial_margin, report.maintenance_margin) == (
        usd(eq),
        usd(im),
        usd(mm),
    )
    out = repr(report)
    assert f"equity {eq / WAD:,.2f}" in out and "(equal)" in out and "worst scenario" in out


def test_event_reads_in_small_chunks_see_the_same_events(deployed, monkeypatch):
    import offchain.sdk.client as client_module

    whole = deployed.listed_instruments()
    monkeypatch.setattr(client_module, "LOG_CHUNK", 2)
    assert deployed.listed_instruments() == whole and len(whole) == 8  # 6 dated, 2 perps
