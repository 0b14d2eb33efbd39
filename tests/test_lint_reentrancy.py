"""The re-entrancy lint (`scripts/lint_reentrancy.py`) fails when it must: a calling contract
with two locks, with none, with a lock that is not the global one, without the pragma, or with
an unreviewed function open to re-entry. Pure Python on synthetic layouts, plus the real layout
of MarginEngine from the pip-installed compiler."""

from __future__ import annotations

import pytest

from scripts import lint_reentrancy as lint

LOCK = {"type": "nonreentrant lock", "slot": 0, "n_slots": 1}
ONE_LOCK = {
    "storage_layout": {
        "roles": {"admin": {"type": "address", "n_slots": 1, "slot": 0}},
        "im_factor": {"type": "uint256", "n_slots": 1, "slot": 3},
    },
    "transient_storage_layout": {"$.nonreentrant_key": LOCK},
}
# Vyper 0.3.x style named locks: two keys, a path can hold one while another re-enters.
TWO_LOCKS = {
    "storage_layout": {
        "nonreentrant.deposit": {"type": "nonreentrant lock", "slot": 0},
        "nonreentrant.withdraw": {"type": "nonreentrant lock", "slot": 1},
        "cash": {"type": "HashMap[address, int256]", "n_slots": 1, "slot": 2},
    }
}
NO_LOCK = {"storage_layout": {"cash": {"type": "HashMap[address, int256]", "slot": 0}}}
NESTED = {
    "storage_layout": {"vault": {"inner": {"type": "nonreentrant lock", "slot": 9}}},
    "transient_storage_layout": {"$.nonreentrant_key": LOCK},
}
CALLING = "PUSH1 0x00 DUP1 CALL POP STOP"
STATIC_ONLY = "PUSH1 0x00 STATICCALL POP STOP"


def test_single_global_key_passes():
    assert lint.nonreentrant_keys(ONE_LOCK) == ["$.nonreentrant_key"]
    assert lint.lock_problem(ONE_LOCK) is None


@pytest.mark.parametrize(
    "layout, words",
    [
        (TWO_LOCKS, "2 non-reentrancy keys"),
        (NO_LOCK, "no non-reentrancy key"),
        (NESTED, "2 non-reentrancy keys"),
        ({"storage_layout": {"nonreentrant.x": LOCK}}, "is not the global"),
        ({}, "no non-reentrancy key"),
    ],
)
def test_two_keys_none_or_a_named_key_fail(layout, words):
    problem = lint.lock_problem(layout)
    assert problem is not None and words in problem


def test_nested_module_locks_are_found():
    assert sorted(lint.nonreentrant_keys(NESTED)) == ["$.nonreentrant_key", "vault.inner"]


def test_calls_out_reads_opcodes_not_bytes():
    assert lint.calls_out(CALLING)
    assert lint.calls_out("PUSH0 PUSH0 PUSH0 PUSH0 PUSH0 GAS DELEGATECALL")
    assert not lint.calls_out(STATIC_ONLY)
    assert not lint.calls_out("PUSH1 0xF1 PUSH2 0xF4F1 STOP")  # CALL bytes inside push data


def test_only_a_reviewed_contract_may_create_its_own_code_without_a_lock():
    creating = "PUSH0 PUSH1 0x20 PUSH0 CREATE STOP"
    assert lint.calls_out(creating)
    assert not lint.calls_out(creating, "RiskOracle")  # its grid data contracts
    assert lint.calls_out(creating + " GAS CALL", "RiskOracle")  # any real call still counts
    assert lint.calls_out(creating, "MarginEngine")


def test_check_fails_without_pragma_lock_or_review():
    reviewed = set(lint.OPEN["Liquidator"])
    assert lint.check("Liquidator", ONE_LOCK, CALLING, True, reviewed) == []
    assert lint.check("Lens", NO_LOCK, STATIC_ONLY, False, {"anything"}) == []
    assert any("pragma" in p for p in lint.check("Liquidator", ONE_LOCK, CALLING, False, reviewed))
    assert any("no non-reentrancy" in p for p in lint.check("X", NO_LOCK, CALLING, True, set()))
    unreviewed = lint.check("Liquidator", ONE_LOCK, CALLING, True, reviewed | {"liquidate"})
    assert unreviewed == ["`liquidate` is open to re-entry and not in the reviewed list OPEN"]
    locked = lint.check("Liquidator", ONE_LOCK, CALLING, True, reviewed - {"admin"})
    assert locked == ["`admin` is in OPEN but locked (or gone): update OPEN and the doc"]


def test_margin_engine_compiles_to_one_global_lock():
    layout, opcodes = lint.compile_layout_and_opcodes(lint.CONTRACTS / "MarginEngine.vy")
    assert lint.calls_out(opcodes)
    assert lint.nonreentrant_keys(layout) == ["$.nonreentrant_key"]
    assert "$.nonreentrant_key" in layout["transient_storage_layout"]
    pragma_on, open_ = lint.reentrancy_settings(lint.CONTRACTS / "MarginEngine.vy")
    assert pragma_on and open_ == set(lint.OPEN["MarginEngine"])
    assert {"deposit", "withdraw", "trade", "settle", "account_state", "margin_inputs"}.isdisjoint(
        open_
    )
