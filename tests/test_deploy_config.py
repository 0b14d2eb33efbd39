"""The deploy config is read strictly and checked before the first transaction.

Pure: an unknown key at any level names the closest valid one; wrong types and out-of-bound
values are one line each; expiries are dates. On anvil: ``preflight`` refuses a token address
without code, a token whose decimals or symbol differ from the config, a past expiry and a
deployer without funds, and sends nothing (the deployer's nonce is unchanged); a re-run a day
later lists no new instrument. ``ape run deploy`` itself (tests/test_deploy_cli.py) turns each
into one line and exit code 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from offchain.data import InputError
from offchain.errors import UserError
from offchain.fixed_point import WAD, to_wad
from offchain.margin import Kind
from offchain.params import margin_params
from offchain.sdk import deploy_system, deploy_token, load_config, parse_config
from offchain.sdk.config import check_bounds
from offchain.sdk.deploy import instrument_name, is_local_network, preflight

REPO = Path(__file__).resolve().parents[1]
CONFIG = json.loads((REPO / "deploy" / "config.json").read_text())
USD = 10**6


def edited(edit) -> dict:
    cfg = json.loads(json.dumps(CONFIG))
    edit(cfg)
    return cfg


def refused(edit, *parts: str) -> str:
    """The one-line message ``parse_config`` refuses the edited config with."""
    with pytest.raises(InputError) as err:
        parse_config(edited(edit))
    message = str(err.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


def rename(obj: dict, old: str, new: str) -> None:
    obj[new] = obj.pop(old)


# --------------------------------------------------------------------------- pure parts


def test_shipped_configs_parse():
    cfg = load_config(REPO / "deploy" / "config.json")
    assert [u.name for u in cfg.underlyings] == ["BTC", "ETH"]
    assert {c.symbol for c in cfg.collateral} == {"WETH", "WBTC"}
    assert cfg.cash.deposit_cap == 10**11 * USD and cfg.im_factor == 125 * WAD // 100
    assert cfg.collateral[0].haircut == WAD // 5
    # WETH and WBTC move with ETH and BTC in the scan (docs/fixed-point.md §5.1)
    assert [(c.priced_by, c.linked) for c in cfg.collateral] == [("ETH", True), ("BTC", True)]
    # a date is 08:00 UTC that day; a perp per underlying, which has none
    dated = [i for i in cfg.instruments if i.kind is not Kind.PERP]
    assert {i.expiry for i in dated} == {int(datetime(2027, 12, 31, 8, tzinfo=UTC).timestamp())}
    perps = [(i.underlying, i.expiry) for i in cfg.instruments if i.kind is Kind.PERP]
    assert perps == [("BTC", 0), ("ETH", 0)]
    demo = load_config(REPO / "deploy" / "demo.json")
    assert len(demo.instruments) == 18 and demo.max_age == 86_400
    assert [i.underlying for i in demo.instruments if i.kind is Kind.PERP] == ["BTC", "ETH"]
    assert demo.instruments[0].expiry == 1_584_086_400  # 2020-03-13T08:00:00Z


@pytest.mark.parametrize(
    "edit,where,typo,suggestion",
    [
        (
            lambda c: c.update(im_factr=1.25),
            "config: top level",
            "im_factr",
            "im_factor",
        ),
        (lambda c: rename(c["grids"], "crypto-35", "crypto35"), "grids", "crypto35", "crypto-35"),
        (lambda c: c["cash"].update(adress="0x" + "11" * 20), "cash", "adress", "address"),
        (
            lambda c: rename(c["collateral"][0], "haircut", "haircutt"),
            "collateral[0]",
            "haircutt",
            "haircut",
        ),
        (
            lambda c: c["underlyings"][1].update(psr_mn=0.04),
            "underlyings[1]",
            "psr_mn",
            "psr_min",
        ),
        (lambda c: c["instruments"][2].update(strke=1), "instruments[2]", "strke", "strike"),
    ],
)
def test_an_unknown_key_at_any_level_names_the_closest_valid_one(edit, where, typo, suggestion):
    refused(edit, f"{where}: unknown key {typo!r} (did you mean {suggestion!r}?)")


def test_margin_parameters_are_filled_from_the_one_parameter_set():
    """The shipped configs omit som_rate, psr_min, psr_max and im_factor: they come from
    params/margin.json, the file every published table reads; the same value given explicitly
    is accepted."""
    p = margin_params()
    for name in ("config.json", "demo.json"):
        cfg = load_config(REPO / "deploy" / name)
        assert cfg.im_factor == to_wad(p.im_factor)
        for u in cfg.underlyings:
            assert (u.som_rate, u.psr_min, u.psr_max) == (
                to_wad(p.som_rate),
                to_wad(p.psr_min),
                to_wad(p.psr_max),
            )
    same = parse_config(
        edited(lambda c: c["underlyings"][0].update(som_rate=str(p.som_rate), psr_max=0.5))
    )
    assert same.underlyings[0].som_rate == to_wad(p.som_rate)


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda c: c["underlyings"][0].update(som_rate=0.1), "underlyings[0].som_rate: 0.1"),
        (lambda c: c["underlyings"][1].update(psr_min=0.6), "underlyings[1].psr_min: 0.6"),
        (lambda c: c["underlyings"][0].update(psr_max=0.4), "underlyings[0].psr_max: 0.4"),
        (lambda c: c.update(im_factor=0.9), "im_factor: 0.9"),
    ],
)
def test_a_margin_parameter_differing_from_the_parameter_set_is_refused(edit, field):
    refused(edit, field, "differs from params/margin.json's", "remove it")


def test_an_unknown_key_with_no_close_match_lists_the_valid_ones():
    refused(
        lambda c: c["cash"].update(colour="blue"), "unknown key 'colour'", "valid keys: address"
    )


def test_the_cash_token_takes_no_haircut_key():
    refused(lambda c: c["cash"].update(haircut=0.1), "cash: unknown key 'haircut'")


def test_expiry_days_is_refused_with_the_date_to_give_instead():
    refused(
        lambda c: c["instruments"][0].update(expiry_days=30),
        "instruments[0].expiry_days",
        "re-run would list new instruments",
        '"expiry": "2027-03-26"',
    )


@pytest.mark.parametrize(
    "edit,parts",
    [
        (lambda c: c["cash"].update(decimals="6"), ("cash.decimals", "whole number", '"6"')),
        (lambda c: c["collateral"][0].update(haircut=True), ("collateral[0].haircut", "number")),
        (lambda c: c["collateral"][0].update(haircut="abc"), ("haircut: must be a number",)),
        (lambda c: c["underlyings"][0].update(psr_max="NaN"), ("psr_max: must be a finite",)),
        (lambda c: c.update(instruments={}), ("instruments: must be a non-empty list",)),
        (lambda c: c.update(cash=[]), ("cash: must be a JSON object",)),
        (lambda c: c["cash"].update(address="0x1234"), ("cash.address", "40-hex-digit")),
        (
            lambda c: c["cash"].update(address="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49"),
            ("fails its checksum",),
        ),
        (lambda c: c["instruments"][1].update(kind="cal"), ("kind 'cal' (did you mean 'call'?)",)),
        (lambda c: c["instruments"][0].update(underlying="BTCC"), ("(did you mean 'BTC'?)",)),
        (lambda c: c["collateral"][0].update(priced_by="ETHH"), ("priced_by", "'ETH'")),
        (lambda c: c["collateral"][0].update(linked="yes"), ("linked: must be true or false",)),
        (lambda c: c["collateral"][0].update(linkd=True), ("(did you mean 'linked'?)",)),
        (lambda c: c["underlyings"][0].update(grid="crypto-36"), ("grid", "'crypto-35'")),
        (lambda c: c["instruments"][0].update(expiry="next friday"), ('"2027-03-26"',)),
        (lambda c: c["instruments"][0].update(expiry=1_830_240_000), ("ISO date",)),
        (lambda c: c["instruments"][0].update(strike=9000), ("a future has no strike",)),
        (lambda c: c["instruments"][1].pop("strike"), ("instruments[1].strike: missing",)),
        (lambda c: c["cash"].update(deposit_cap=0.0000001), ("more than 6 decimals",)),
        (lambda c: c["collateral"][1].update(symbol="WETH"), ("WETH is listed twice",)),
        (lambda c: c["underlyings"][1].update(id=1), ("id 1 is already",)),
        (lambda c: c["instruments"].append(c["instruments"][0]), ("listed twice",)),
    ],
)
def test_a_wrong_type_or_reference_is_one_line_naming_the_field(edit, parts):
    refused(edit, *parts)


@pytest.mark.parametrize(
    "edit,parts",
    [
        (
            lambda c: c["collateral"][0].update(haircut=1.5),
            ("collateral WETH", "haircut must be in [0, 0.9]"),
        ),
        (lambda c: c["instruments"][1].update(strike=-5), ("strike must be > 0",)),
        (lambda c: c.update(max_age=10), ("max_age: must be in [30, 86400]",)),
        (lambda c: c.update(escape_delay=3_600), ("escape_delay: must be in [86400, 2592000]",)),
        (lambda c: c.update(escape_delay=31 * 86_400), ("escape_delay", "1 to 30 days")),
        (lambda c: c["underlyings"][0].update(max_array_ratio=11), ("max_array_ratio",)),
        (lambda c: c["cash"].update(decimals=24), ("cash.decimals: must be >= 0 and <= 18",)),
        (lambda c: c["instruments"][0].update(position_limit=2_000_000), ("position_limit",)),
    ],
)
def test_values_out_of_the_contracts_bounds_are_refused_before_deploying(edit, parts):
    refused(edit, *parts)


@pytest.mark.parametrize(
    "text,moment",
    [
        ("2027-03-26", datetime(2027, 3, 26, 8, tzinfo=UTC)),
        ("2027-03-26T16:30:00Z", datetime(2027, 3, 26, 16, 30, tzinfo=UTC)),
        ("2027-03-26T08:00:00+02:00", datetime(2027, 3, 26, 6, tzinfo=UTC)),
        ("2027-03-26T08:00:00", datetime(2027, 3, 26, 8, tzinfo=UTC)),
    ],
)
def test_expiries_are_dates_at_0800_utc_or_iso_times(text, moment):
    cfg = parse_config(edited(lambda c: c["instruments"][0].update(expiry=text)))
    assert cfg.instruments[0].expiry == int(moment.timestamp())


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(edited(lambda c: c.pop("cash"))))
    with pytest.raises(InputError, match=r"c\.json: cash: missing"):
        load_config(path)
    path.write_text("{")
    with pytest.raises(InputError, match=r"c\.json: line 1: invalid JSON"):
        load_config(path)
    with pytest.raises(InputError, match="nope.json"):
        load_config(tmp_path / "nope.json")


def test_mock_tokens_and_simulated_prices_belong_to_local_networks():
    assert is_local_network("local") and is_local_network("mainnet-fork")
    assert not is_local_network("sepolia") and not is_local_network("mainnet")


# --------------------------------------------------------------------------- on anvil


def with_tokens(cfg, cash=None, weth=None, wbtc=None):
    coll = dict(zip(("WETH", "WBTC"), (weth, wbtc), strict=True))
    return replace(
        cfg,
        cash=replace(cfg.cash, address=cash or cfg.cash.address),
        collateral=tuple(replace(c, address=coll[c.symbol] or c.address) for c in cfg.collateral),
    )


@pytest.fixture
def shipped():
    return load_config(REPO / "deploy" / "config.json")


def refused_before_sending(project, chain, admin, cfg, *parts, **kw) -> None:
    nonce = admin.nonce
    with pytest.raises(UserError) as err:
        deploy_system(project, chain, admin, cfg, **kw)
    assert admin.nonce == nonce  # nothing deployed, nothing listed
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


def test_a_token_address_without_code_is_refused_before_any_transaction(
    project, chain, admin, shipped
):
    nowhere = "0x000000000000000000000000000000000000dEaD"
    refused_before_sending(
        project,
        chain,
        admin,
        with_tokens(shipped, weth=nowhere),
        f"collateral WETH at {nowhere}: no contract",
    )


def test_a_token_whose_decimals_or_symbol_differ_is_refused(project, chain, admin, shipped):
    usdc18 = deploy_token(project, admin, "USDC", 18)
    refused_before_sending(
        project,
        chain,
        admin,
        with_tokens(shipped, cash=usdc18.address),
        "has 18 decimals, the config says 6",
    )
    usdt = deploy_token(project, admin, "USDT", 6)
    refused_before_sending(
        project,
        chain,
        admin,
        with_tokens(shipped, cash=usdt.address),
        "symbol is 'USDT'",
        "\"symbol\": 'USDT'",
    )


def test_a_contract_that_is_not_a_token_is_refused(project, chain, admin, shipped):
    stub = to_checksum_address("0x" + "00" * 18 + "c0de")
    chain.provider.set_code(stub, "0x00")  # code that answers nothing
    refused_before_sending(
        project, chain, admin, with_tokens(shipped, wbtc=stub), "decimals() does not answer"
    )


def test_an_expiry_before_the_chains_time_is_refused(project, chain, admin, shipped):
    past = replace(shipped.instruments[0], expiry=chain.blocks.head.timestamp - 86_400)
    cfg = replace(shipped, instruments=(past, *shipped.instruments[1:]))
    refused_before_sending(
        project, chain, admin, cfg, "is not after the chain's time", "later 'expiry'"
    )


def test_a_deployer_without_funds_is_refused(project, chain, accounts, shipped):
    broke = accounts.generate_test_account()
    refused_before_sending(
        project, chain, broke, shipped, f"the deployer {broke.address} holds 0 ETH", "fund it"
    )


def test_values_of_a_config_built_in_code_are_checked_too(project, chain, admin, shipped):
    cfg = replace(shipped, im_factor=5 * WAD)
    refused_before_sending(project, chain, admin, cfg, "im_factor: must be in [1, 3], got 5")


def test_a_rerun_a_day_later_lists_the_same_instruments(
    project, chain, admin, keeper, venue, shipped
):
    first = deploy_system(project, chain, admin, shipped, keepers=[keeper], venues=[venue])
    chain.mine(timestamp=chain.blocks.head.timestamp + 86_400)
    again_cfg = load_config(REPO / "deploy" / "config.json")
    assert preflight(chain, admin, again_cfg, existing=first.deployment) is True
    nonce = admin.nonce
    again = deploy_system(
        project,
        chain,
        admin,
        again_cfg,
        keepers=[keeper],
        venues=[venue],
        existing=first.deployment,
    )
    assert admin.nonce == nonce
    assert again.deployment.instruments == first.deployment.instruments
    # linked once, at the first deployment
    ea = first.engine_admin
    for symbol, und in (("WETH", "ETH"), ("WBTC", "BTC")):
        token = first.deployment.collateral[symbol]
        assert ea.asset_underlying(token) == first.deployment.underlyings[und]


def test_the_escape_delay_of_the_config_is_what_the_oracle_enforces(
    project, chain, admin, keeper, venue, shipped
):
    client = deploy_system(
        project, chain, admin, replace(shipped, escape_delay=7 * 86_400), keepers=[keeper]
    )
    assert client.escape_hatch().escape_delay == 7 * 86_400
    assert shipped.escape_delay == 3 * 86_400  # deploy/config.json


def test_the_documented_example_config_parses():
    doc = (REPO / "docs" / "deploy.md").read_text()
    example = doc.split("### The config file", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    cfg = parse_config(json.loads(example))
    assert cfg.cash.address == "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238"
    assert [i.kind.name for i in cfg.instruments] == ["FUTURE", "CALL"]


# --------------------------------------------------------------------------- perpetuals


def with_perps(c: dict, *extra: dict) -> None:
    """The shipped dated instruments, a BTC perp (instruments[6]), then ``extra``."""
    dated = [i for i in c["instruments"] if i["kind"] != "perp"]
    c["instruments"] = [*dated, {"underlying": "BTC", "kind": "perp"}, *extra]


def test_a_perp_needs_no_expiry_and_takes_its_funding_cap_from_the_parameters():
    cfg = parse_config(edited(lambda c: with_perps(c, {"underlying": "ETH", "kind": "perp"})))
    perps = [i for i in cfg.instruments if i.kind is Kind.PERP]
    cap = to_wad(margin_params().funding.cap_per_hour)
    assert cap == 3 * 10**16
    assert [(p.underlying, p.expiry, p.strike, p.contract_size, p.funding_cap) for p in perps] == [
        ("BTC", 0, 0, WAD, cap),
        ("ETH", 0, 0, WAD, cap),
    ]
    # the same number given explicitly is accepted
    explicit = {"underlying": "ETH", "kind": "perp", "funding_cap": 0.03, "position_limit": 500}
    spec = parse_config(edited(lambda c: with_perps(c, explicit))).instruments[-1]
    assert (spec.funding_cap, spec.position_limit) == (cap, 500 * WAD)
    # named without a date: PERP_EXPIRY is not one
    assert instrument_name(cfg, perps[0]) == "BTC-PERP"


@pytest.mark.parametrize(
    "extra,parts",
    [
        (
            {"underlying": "BTC", "kind": "perp"},
            ("instruments[7]", "BTC has a perp already: one per underlying"),
        ),
        (
            {"underlying": "ETH", "kind": "perp", "expiry": "2027-12-31"},
            ("instruments[7].expiry", "a perp has no expiry: remove it"),
        ),
        (
            {"underlying": "ETH", "kind": "perp", "strike": 1},
            ("instruments[7].strike", "a perp has no strike"),
        ),
        (
            {"underlying": "ETH", "kind": "perp", "contract_size": 10},
            ("instruments[7].contract_size", "a perp's contract_size is 1"),
        ),
        (
            {"underlying": "ETH", "kind": "perp", "funding_cap": 0.01},
            ("instruments[7].funding_cap", "differs from params/margin.json's", "0.03"),
        ),
        (
            {"underlying": "ETH", "kind": "future", "expiry": "2027-12-31", "funding_cap": 0.03},
            ("instruments[7].funding_cap", "only a perp has a funding_cap"),
        ),
        (
            {"underlying": "ETH", "kind": "prep"},
            ("instruments[7].kind", "unknown kind 'prep'", "perp"),
        ),
    ],
)
def test_a_bad_perp_is_one_line_naming_the_field(extra, parts):
    refused(lambda c: with_perps(c, extra), *parts)


def test_a_perp_built_in_code_is_bounded_like_the_oracle():
    cfg = parse_config(edited(with_perps))
    perp = cfg.instruments[-1]
    for bad, part in (
        (replace(perp, funding_cap=5 * 10**16), "funding_cap must be in (0, "),
        (replace(perp, funding_cap=10**12 + 1), "a multiple of 0.000001"),
        (replace(perp, expiry=1), "a perp has no strike and no expiry"),
        (replace(perp, contract_size=2 * WAD), "a perp's contract_size is 1"),
        (replace(cfg.instruments[0], funding_cap=10**12), "only a perp has a funding_cap"),
    ):
        with pytest.raises(InputError, match=re.escape(part)):
            check_bounds(replace(cfg, instruments=(bad,)))
