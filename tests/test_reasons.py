"""Every revert reason of the contracts is asserted by some test (`ape.reverts("...")` or a
parametrised reason), except the few listed here with why no test can reach them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_REACHABLE = {
    # positions._set bounds sizes again for the liquidation hook; trades cannot exceed it because
    # the per-account position limit is bounded by MAX_SIZE and checked first.
    "engine: size out of bounds",
    # 2**32 listings.
    "oracle: too many instruments",
}


def _reasons() -> set[str]:
    found = set()
    for path in (ROOT / "contracts").rglob("*.vy"):
        if "test" in path.parts:
            continue
        found |= set(re.findall(r'"((?:oracle|engine|vault|roles): [^"]*)"', path.read_text()))
    return found


def _asserted() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    return set(re.findall(r'"((?:oracle|engine|vault|roles): [^"]*)"', text))


def test_every_reason_string_is_tested():
    missing = _reasons() - _asserted() - NOT_REACHABLE
    assert not missing, sorted(missing)


def test_reason_strings_have_area_prefix_and_fit_one_word():
    for reason in _reasons():
        assert len(reason.encode()) <= 32, reason
