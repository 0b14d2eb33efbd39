"""``ape console`` for people: the helpers answer with named records in human units, previews
name their outcome with the contracts' own code names, and bad input is refused with one line
(the problem and the fix), also in IPython, where it replaces the traceback."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from console_support import REPO, SPOTS, console_namespace, deploy_local, post_market

from offchain.fixed_point import WAD
from offchain.sdk import (
    InputError,
    LiquidationPreview,
    LiquidationStatus,
    MarginOutcome,
    MarginReport,
    MarginStatus,
    TradePreview,
)
from offchain.sdk.client import CLOCK_STEP
from offchain.sdk.records import (
    CONTRACT_CODES,
    Holding,
    Instrument,
    Position,
    UnderlyingRisk,
    to_token_units,
    to_wad,
    usd,
)

# --------------------------------------------------------------------------- pure parts


def _code_block(source: str, first: str) -> dict[str, int]:
    """The run of ``NAME: constant(uint256) = N`` lines that starts with ``first``."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{first}: constant("))
    out = {}
    for line in lines[start:]:
        m = re.fullmatch(r"(\w+): constant\(uint256\) = (\d+)", line)
        if not m:
            break
        out[m[1]] = int(m[2])
    return out


@pytest.mark.parametrize("codes", list(CONTRACT_CODES), ids=lambda e: e.__name__)
def test_outcome_enums_mirror_the_contract_codes(codes):
    """Same names, same values, none missing: a code added to the contract fails this test."""
    source = (REPO / CONTRACT_CODES[codes]).read_text()
    first = next(iter(codes)).name
    assert _code_block(source, first) == {m.name: m.value for m in codes}
    assert all(m.meaning for m in codes)


def test_records_docstring_examples():
    import doctest

    import offchain.sdk.records

    result = doctest.testmod(offchain.sdk.records)
    assert result.attempted >= 4 and result.failed == 0


def test_wad_and_token_amounts_convert_exactly():
    assert usd(1_234_500_000_000_000_000_000) == Decimal("1234.5")
    digits = str(2**255)  # the whole int256 range, no rounding
    assert str(usd(-(2**255))) == f"-{digits[:-18]}.{digits[-18:]}"
    assert to_wad("1.5", "size", "1") == 3 * WAD // 2
    assert to_wad(60_000, "price", "1") == 60_000 * WAD
    assert to_wad("10_000", "price", "1") == 10_000 * WAD
    assert to_token_units(0.1, 6, "amount", "1") == 100_000  # the float as typed, not 0.1000000001
    assert to_wad(Decimal("1e-18"), "size", "1") == 1


@pytest.mark.parametrize(
    "value,message",
    [
        (True, "size must be a number, not bool True: give e.g. 1"),
        ([1], "size must be a number, not list [1]: give e.g. 1"),
        (float("nan"), "size must be finite, not nan: give e.g. 1"),
        ("abc", "size 'abc' is not a number: give e.g. 1"),
        ("", "size '' is not a number: give e.g. 1"),
        ("1e-19", "size '1e-19' has more than 18 decimals: round it to 18 places"),
    ],
)
def test_bad_numbers_are_refused_in_one_line(value, message):
    with pytest.raises(InputError) as err:
        to_wad(value, "size", "1")
    assert str(err.value) == message


def _report(equity, im, mm, fresh=True):
    return MarginReport(
        account="0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        equity=Decimal(equity),
        initial_margin=Decimal(im),
        maintenance_margin=Decimal(mm),
        pending_charge=Decimal(0),
        fresh=fresh,
        positions=(Position("BTC-20270326-F", Decimal(3)),),
        worst=(
            UnderlyingRisk(
                "BTC",
                24,
                "-1 PSR, vol up, w 1",
                Decimal("21600.85"),
                Decimal(0),
                Decimal(0),
                Decimal("21600.85"),
            ),
        ),
        reference_equity=Decimal(equity),
        reference_maintenance_margin=Decimal(mm),
    )


def test_margin_report_reads_as_a_person_reads_it():
    report = _report("1000000", "27000.0", "21600.85")
    text = (
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65\n"
        "equity 1,000,000.00  IM 27,000.00  MM 21,600.85  health 978,399.15 (ok)\n"
        "  positions: 3 BTC-20270326-F\n"
        "  BTC: worst scenario 24 (-1 PSR, vol up, w 1) loss 21,600.85, pad 0.00, "
        "short-option minimum 0.00 -> risk 21,600.85\n"
        "off-chain reference: equity 1,000,000.00  MM 21,600.85 (equal)"
    )
    assert str(report) == repr(report) == text
    assert report.health == Decimal("978399.15")
    assert _report("10", "20", "5").status is MarginStatus.BELOW_IM
    assert _report("1", "20", "5").status is MarginStatus.LIQUIDATABLE
    assert _report("1", "20", "5", fresh=False).status is MarginStatus.BELOW_MM_STALE
    with pytest.raises(AttributeError):
        report.equity = Decimal(0)  # frozen


def test_previews_and_small_records_print_names_not_codes():
    trade = TradePreview(
        "0xA",
        "BTC-20270326-F",
        Decimal("-2"),
        Decimal(60_000),
        Decimal(1),
        Decimal(2),
        Decimal(3),
        MarginOutcome.DENIED_MARGIN,
    )
    assert str(trade) == (
        "sell 2 BTC-20270326-F at 60,000.00: DENIED_MARGIN (equity would be below initial "
        "margin); after it equity 1.00  IM 2.00  MM 3.00"
    )
    assert not trade.allowed
    z = Decimal(0)
    healthy = LiquidationPreview("0xA", LiquidationStatus.HEALTHY, z, (), z, z, z, z, (), z, z, z)
    assert repr(healthy) == "0xA: HEALTHY (healthy: equity is at or above MM)"
    assert str(Holding("WETH", Decimal("1.50"))) == "1.5 WETH"
    ins = Instrument(
        "BTC-20270326-C-100000",
        7,
        "BTC",
        "call",
        Decimal(100_000),
        datetime(2027, 3, 26, 8, tzinfo=UTC),
    )
    assert str(ins) == "BTC-20270326-C-100000: call 100,000.00 on BTC, expires 2027-03-26 08:00 UTC"


# --------------------------------------------------------------------------- on anvil


@pytest.fixture(scope="module")
def ns(project, chain, networks, admin, keeper, venue, tmp_path_factory):
    client = deploy_local(project, chain, admin, keeper, venue)
    post_market(client, keeper)
    return console_namespace(project, chain, networks, client, tmp_path_factory.mktemp("console"))


@pytest.fixture
def funded(ns, admin, venue, trader, maker):
    """``trader`` and ``maker`` with 100,000 USDC each in the engine, both authorising ``venue``."""
    usdc = ns["usdc"]
    for acct in (trader, maker):
        usdc.mint(acct, 100_000 * 10**6, sender=admin)
        ns["deposit"](acct, "USDC", 100_000)
        ns["authorise_venue"](acct, venue)
    return ns


def btc_future(ns):
    return ns["instruments"]("BTC", "future")[0]


def test_margin_of_is_a_record_in_usd_printed_once(funded, venue, trader, maker, capsys):
    ns = funded
    ns["trade"](venue, trader, maker, btc_future(ns), 2, 60_000)
    report = ns["margin_of"](trader)
    assert capsys.readouterr().out == ""  # the console echoes the record itself, once
    state = ns["system"].account_state(trader)
    assert report.equity == usd(state.equity) == Decimal(100_000)
    assert report.maintenance_margin == usd(state.maintenance_margin) > 0
    assert report.initial_margin == usd(state.initial_margin)
    assert report.reference_agrees and report.status is MarginStatus.OK
    assert report.positions == (Position(btc_future(ns).name, Decimal(2)),)
    assert [w.underlying for w in report.worst] == ["BTC"]
    assert "health" in repr(report) and "(equal)" in repr(report)


def test_balances_and_roles_by_name(funded, admin, venue, keeper, trader):
    ns = funded
    weth = ns["system"].tokens["WETH"]
    weth.mint(trader, 3 * WAD // 2, sender=admin)
    balances = ns["deposit"](trader, "weth", "1.5")
    assert balances.cash == Decimal(100_000)
    assert balances.collateral == (Holding("WETH", Decimal("1.5")),)
    assert ns["roles_of"](venue) == ("venue",)
    assert ns["roles_of"]("TEST::1") == ("keeper",)
    assert ns["roles_of"](trader.address.lower()) == ()


def test_previews_name_their_outcome(funded, chain, venue, trader, maker):
    ns = funded
    fut = btc_future(ns)
    ok = ns["trade_preview"](trader, fut.name, 1, 60_000)
    assert ok.outcome is MarginOutcome.ALLOWED and ok.allowed and ok.size == 1
    too_big = ns["trade_preview"](trader, fut, 1_000, 60_000)
    assert too_big.outcome is MarginOutcome.DENIED_MARGIN
    over = ns["withdraw_preview"](trader, "USDC", 100_001)
    assert over.outcome is MarginOutcome.DENIED_BALANCE and not over.allowed
    assert ns["withdraw_preview"](trader, "USDC", 100_000).outcome is MarginOutcome.ALLOWED
    ns["trade"](venue, trader, maker, fut, 1, 60_000)
    healthy = ns["liquidation_preview"](trader)
    assert healthy.status is LiquidationStatus.HEALTHY and healthy.taken == ()
    raw = ns["liquidation_views"].liquidation_preview(trader, WAD)
    assert healthy.status == raw.status
    # past the oracle's max_age the data is stale: both previews say so by name
    chain.mine(timestamp=chain.blocks.head.timestamp + int(ns["oracle"].max_age()) + 1)
    assert ns["trade_preview"](trader, fut, 1, 60_000).outcome is MarginOutcome.DENIED_STALE
    assert ns["liquidation_preview"](trader).status is LiquidationStatus.STALE


def test_an_underwater_account_previews_its_liquidation(
    funded, admin, venue, keeper, trader, maker
):
    """A futures long that loses most of its cash: the preview is OK (liquidatable), names the
    positions taken and the penalty in USD."""
    ns = funded
    fut = btc_future(ns)
    ns["trade"](venue, trader, maker, fut, 10, 60_000)
    # -90,000 on 10 contracts: equity 10,000, below MM (two posts: one moves BTC at most 9%,
    # the gap rate at a PSR of 12%)
    post_market(ns["system"], keeper, {**SPOTS, 1: 55_000 * WAD})
    post_market(ns["system"], keeper, {**SPOTS, 1: 51_000 * WAD})
    report = ns["margin_of"](trader)
    assert report.status is MarginStatus.LIQUIDATABLE
    pv = ns["liquidation_preview"](trader)
    assert pv.status is LiquidationStatus.OK and pv.fraction > 0
    assert pv.taken and all(p.instrument == fut.name and p.size > 0 for p in pv.taken)
    assert pv.penalty == pv.penalty_to_liquidator + pv.penalty_to_fund > 0
    assert str(pv).startswith(f"{trader.address}: OK (liquidatable)\n  fraction ")


def test_withdraw_sends_only_what_the_engine_allows(funded, usdc_of, trader, maker, venue):
    ns = funded
    ns["trade"](venue, trader, maker, btc_future(ns), 1, 60_000)
    before = usdc_of(trader)
    balances = ns["withdraw"](trader, "USDC", 1_000)
    # the withdrawal settles first: bought at the mark, the future's notional comes back as
    # variation margin, and the cash is the deposit less what left
    assert balances.cash == Decimal(100_000 - 1_000)
    assert usdc_of(trader) == before + 1_000 * 10**6
    nonce = trader.nonce
    with pytest.raises(InputError, match=r"^withdrawal refused: DENIED_BALANCE \(more than"):
        ns["withdraw"](trader, "USDC", 100_000)
    assert trader.nonce == nonce


@pytest.fixture
def usdc_of(ns):
    return lambda acct: int(ns["usdc"].balanceOf(acct))


BAD_INPUT = [
    ("margin_of", ("nobody",), "unknown account 'nobody': "),
    ("margin_of", (42,), "account must be an account, not int 42: give a 0x address"),
    ("margin_of", ("0x12",), "account '0x12' is not an address (40 hex digits after 0x): "),
    ("margin_of", ("TEST::99",), "account 'TEST::99' is not a test account: give TEST::0 .. "),
    ("trade_preview", ("TEST::4", "BTC-F", 1, 60_000), "unknown instrument 'BTC-F': "),
    ("trade_preview", ("TEST::4", 12345, 1, 60_000), "no instrument has id 12345: "),
    ("trade_preview", ("TEST::4", "FUT", "abc", 60_000), "size 'abc' is not a number: "),
    ("trade_preview", ("TEST::4", "FUT", 0, 60_000), "size must not be 0: "),
    ("trade_preview", ("TEST::4", "FUT", 1, -5), "price must be >= 0, not -5: "),
    ("withdraw_preview", ("TEST::4", "DOGE", 1), "unknown token 'DOGE': "),
    ("deposit", ("TEST::4", "USDC", "0.0000001"), "amount '0.0000001' has more than 6 decimals"),
    ("deposit", ("TEST::4", "USDC", -1), "amount must be > 0, not -1: "),
    ("deposit", ("TEST::4", "WBTC", 1), "holds 0 WBTC, fewer than 1 WBTC: fund it first"),
    ("instruments", ("DOGE",), "unknown underlying 'DOGE': one of BTC, ETH"),
    ("instruments", ("BTC", "swap"), "unknown kind 'swap': one of future, call, put"),
    ("trade", ("TEST::2", "TEST::4", "TEST::4", "FUT", 1, 60_000), "buyer and seller are the same"),
    ("trade", ("TEST::2", "TEST::4", "TEST::5", "FUT", -1, 60_000), "size must be > 0 (the buyer"),
    ("trade", ("TEST::7", "TEST::4", "TEST::5", "FUT", 1, 60_000), "does not hold the venue role"),
    ("trade", ("TEST::2", "TEST::4", "TEST::8", "FUT", 1, 60_000), "seller 0x"),
    (
        "trade",
        ("TEST::2", "TEST::4", "TEST::5", "FUT", 1_000, 60_000),
        "trade refused for the buyer",
    ),
    ("liquidation_preview", ("TEST::4", 2), "max_fraction must be in (0, 1], not 2: give"),
]


@pytest.mark.parametrize(
    "helper,args,message", BAD_INPUT, ids=[f"{h}-{m[:24]}" for h, _, m in BAD_INPUT]
)
def test_bad_input_is_one_line_naming_the_fix(funded, trader, maker, helper, args, message):
    ns = funded
    args = tuple(btc_future(ns) if a == "FUT" else a for a in args)
    nonce = trader.nonce
    with pytest.raises(InputError) as err:
        ns[helper](*args)
    text = str(err.value)
    assert message in text and "\n" not in text and ": " in text
    assert trader.nonce == nonce  # nothing was sent


def test_ipython_prints_one_line_instead_of_a_traceback(funded, venue, trader, maker, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    sys_path_extras = __import__("ape_console_extras")
    shell = InteractiveShell.instance(user_ns=dict(funded))
    try:
        sys_path_extras.install_one_line_errors(shell)
        shell.run_cell("margin_of('nobody')")
        err = capsys.readouterr().err
        assert err.startswith("error: unknown account 'nobody': ") and err.count("\n") == 1
        # a revert typed straight at a contract: its reason, one line
        fut = btc_future(funded).id
        shell.run_cell(
            f"engine.trade('{trader.address}', '{maker.address}', {fut}, 10**30, 1, "
            f"sender=accounts.test_accounts[3])"
        )
        err = capsys.readouterr().err
        assert err == "reverted: roles: not venue\n"
        # a helper called with the wrong arguments: Python's own message, one line
        shell.run_cell("margin_of('TEST::4', 3)")
        err = capsys.readouterr().err
        assert err == "error: Console.margin_of() takes 2 positional arguments but 3 were given\n"
        # what a contract call cannot take, and the wrong number of arguments
        shell.run_cell("usdc.mint('TEST::4', 1, sender=accounts.test_accounts[0])")
        err = capsys.readouterr().err
        assert err.startswith("error: No conversion registered to handle 'TEST::4'.")
        assert err.count("\n") == 1 and "account object" in err
        shell.run_cell("usdc.mint(1, sender=accounts.test_accounts[0])")
        err = capsys.readouterr().err
        assert err.startswith("error: The number of the given arguments (1) does not match")
        assert err.count("\n") == 1
        # other exceptions keep their traceback, a TypeError inside a call too
        shell.run_cell("1 / 0")
        assert "ZeroDivisionError" in capsys.readouterr().out
        shell.run_cell("def broken():\n    return len(5)\n\nbroken()")
        out = capsys.readouterr().out
        assert "TypeError" in out and "Traceback" in out and "has no len()" in out
    finally:
        InteractiveShell.clear_instance()


def test_anyone_can_wind_down_a_system_whose_keeper_is_dead(ns, chain, trader):
    """The console reads the escape hatch and triggers it: refused (one line, with the time it
    opens) while the keeper posted within the escape delay, accepted after, refused again."""
    hatch = ns["escape_hatch"]()
    assert not hatch.wound_down and hatch.escape_delay == 3 * 86_400
    assert hatch.opens_at == hatch.last_post + hatch.escape_delay + CLOCK_STEP + 1
    with pytest.raises(InputError, match="wind-down refused: .* anyone may wind down 20"):
        ns["wind_down"](trader)
    chain.mine(timestamp=hatch.opens_at)
    assert ns["wind_down"](trader).wound_down
    with pytest.raises(InputError, match="already wound down"):
        ns["wind_down"](trader)
