"""Re-entrancy lint: one global lock in every contract that calls out, and only reviewed entry
points left open to re-entry.

Run: `python -m scripts.lint_reentrancy` (part of `make lint`). For every deployable contract
(`contracts/*.vy`; the mocks in `contracts/test/` are test doubles, one of them re-enters on
purpose, and are not checked), with the pip-installed vyper 0.4.3:

1. It *calls out* when its code holds CALL, CALLCODE, DELEGATECALL, CREATE, CREATE2 or
   SELFDESTRUCT, read from the assembly (`vyper -f asm`), where the selector tables are symbolic
   `DATA` (a disassembly of the bytecode would read their bytes as opcodes). STATICCALL alone
   cannot change state, so the read-only lenses (MarginViews, LiquidationViews, OracleViews)
   need no lock. A CREATE of init code the
   contract builds itself runs no foreign code: the reviewed `CREATES_OWN_CODE` (RiskOracle's
   grid data contracts) may hold CREATE and nothing else.
2. A contract that calls out must be compiled under `# pragma nonreentrancy on` and its layout
   (`vyper -f layout`) must hold exactly ONE non-reentrancy key, the global
   `$.nonreentrant_key`: no contract without it, and no second lock that one path could hold
   while another path re-enters.
   The reviewed `REENTRANT_BY_DESIGN` (the Timelock: it calls itself to change its own
   delay and roles) are exempt, each with the reason re-entry is safe.
3. The external functions the compiler leaves re-entrant in such a contract must equal the
   reviewed list `OPEN` below. Vyper applies the pragma per source file: functions a contract
   `exports:` from a module without the pragma (roles, vault, positions) are NOT locked, and
   neither are immutables or `@reentrant` functions. Adding one, or locking one, fails here until
   the list and docs/security.md ("Re-entrancy") are updated. Read from the compiler's own
   function types (vyper's Python API), not from the source text.

Exit status 1 on any failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
GLOBAL_KEY = "$.nonreentrant_key"
LOCK_TYPE = "nonreentrant lock"
# Opcodes by which a contract hands control to other code that may change state.
CALL_OPCODES = frozenset({"CALL", "CALLCODE", "DELEGATECALL", "CREATE", "CREATE2", "SELFDESTRUCT"})
# Reviewed contracts whose only hand-off of control is a CREATE of init code they build
# themselves (no foreign code runs, so nothing can re-enter); any other call opcode still counts.
CREATES_OWN_CODE: dict[str, str] = {
    "RiskOracle": "register_grid (admin) deploys the grid's data contract: a fixed copy "
    "prefix plus the coefficients, init code built by the oracle, no call inside",
}

# Reviewed contracts that must stay re-entrant: each calls out and is left without a lock on
# purpose (the reason says why re-entry is safe); any other call-out contract takes the rules.
REENTRANT_BY_DESIGN: dict[str, str] = {
    "Timelock": "snekmate's timelock_controller, unmodified: `execute` calls the system's "
    "contracts and the timelock itself (its delay and roles change by a call to itself), so a "
    "lock would block its own administration; `_after_call` re-checks that the operation is "
    "still ready, so a re-entered call cannot execute an operation twice or a cancelled one",
}

_ROLES = "roles module (no pragma): admin / pending-admin only, makes no call"
_VAULT = "vault getter (module without pragma): read-only, state consistent at every call-out"
_POSITIONS = "positions getter (module without pragma): read-only, consistent at every call-out"
_IMMUTABLE = "immutable: cannot change"
# Reviewed external functions left re-entrant, per contract that calls out (docs/security.md,
# "Re-entrancy": why each is safe).
OPEN: dict[str, dict[str, str]] = {
    "EngineAdmin": {
        "admin": _ROLES,
        "pending_admin": _ROLES,
        "has_role": _ROLES,
        "transfer_admin": _ROLES,
        "accept_admin": _ROLES,
        "revoke_role": _ROLES,
    },
    "MarginEngine": {
        "cash_token": _VAULT,
        "cash_scale": _VAULT,
        "cash_deposit_cap": _VAULT,
        "cash": _VAULT,
        "collateral": _VAULT,
        "total": _VAULT,
        "assets": _VAULT,
        "asset_index": _VAULT,
        "asset_haircut": _VAULT,
        "asset_deposit_cap": _VAULT,
        "asset_scale": _VAULT,
        "asset_mask": _VAULT,
        "open_interest": _POSITIONS,
        "positions_of": "@reentrant: Liquidator.touch reads it inside the engine's call to it",
        "oracle": _IMMUTABLE,
        "oracle_views": _IMMUTABLE,
        "engine_admin": _IMMUTABLE,
    },
    "Liquidator": {
        "admin": _ROLES,
        "pending_admin": _ROLES,
        "transfer_admin": _ROLES,
        "accept_admin": _ROLES,
        "engine": _IMMUTABLE,
    },
}


def _vyper() -> str:
    local = Path(sys.executable).parent / "vyper"
    return str(local) if local.exists() else (shutil.which("vyper") or "vyper")


def nonreentrant_keys(layout: dict) -> list[str]:
    """Dotted paths of every non-reentrancy lock in a `vyper -f layout` JSON object, in any
    section (storage, transient storage) and any nested module."""
    found: list[str] = []

    def walk(node: dict, path: list[str]) -> None:
        for name, value in node.items():
            if not isinstance(value, dict):
                continue
            if value.get("type") == LOCK_TYPE:
                found.append(".".join(path + [name]) if path else name)
            else:
                walk(value, path + [name])

    for section in layout.values():
        if isinstance(section, dict):
            walk(section, [])
    return found


def lock_problem(layout: dict) -> str | None:
    """Why a calling contract's layout fails the single-global-lock rule, or None."""
    keys = nonreentrant_keys(layout)
    if not keys:
        return "no non-reentrancy key in the layout"
    if len(keys) > 1:
        return f"{len(keys)} non-reentrancy keys {keys}, expected one"
    if keys[0] != GLOBAL_KEY:
        return f"lock {keys[0]!r} is not the global {GLOBAL_KEY!r}"
    return None


def calls_out(opcodes: str, name: str = "") -> bool:
    """Whether an assembly listing (`vyper -f asm`) can call or create code
    (a CREATE of a contract in `CREATES_OWN_CODE` excepted)."""
    watched = CALL_OPCODES - {"CREATE"} if name in CREATES_OWN_CODE else CALL_OPCODES
    return not watched.isdisjoint(opcodes.split())


def compile_layout_and_opcodes(path: Path) -> tuple[dict, str]:
    out = subprocess.run(
        [_vyper(), "-p", str(CONTRACTS), "-f", "layout,asm", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    layout, _, opcodes = out.partition("\n")
    return json.loads(layout), opcodes


def reentrancy_settings(path: Path) -> tuple[bool, set[str]]:
    """(pragma nonreentrancy on?, names of the external functions left re-entrant), from the
    compiler's annotated module."""
    from vyper.cli.vyper_compile import get_search_paths
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.phases import CompilerData

    # the compiler's own search paths (site-packages: snekmate), then the project's
    bundle = FilesystemInputBundle([*get_search_paths(), ROOT, CONTRACTS])
    data = CompilerData(bundle.load_file(path), bundle)
    module = data.annotated_vyper_module
    functions = module._metadata["type"].exposed_functions
    return bool(module.settings.nonreentrancy_by_default), {
        f.name for f in functions if not f.nonreentrant
    }


def check(name: str, layout: dict, opcodes: str, pragma_on: bool, open_: set[str]) -> list[str]:
    """Failures of one contract (empty: passes)."""
    if not calls_out(opcodes, name) or name in REENTRANT_BY_DESIGN:
        return []
    problems = []
    if not pragma_on:
        problems.append("calls out without `# pragma nonreentrancy on`")
    lock = lock_problem(layout)
    if lock:
        problems.append(lock)
    reviewed = set(OPEN.get(name, {}))
    for fn in sorted(open_ - reviewed):
        problems.append(f"`{fn}` is open to re-entry and not in the reviewed list OPEN")
    for fn in sorted(reviewed - open_):
        problems.append(f"`{fn}` is in OPEN but locked (or gone): update OPEN and the doc")
    return problems


def main() -> int:
    failures = 0
    for path in sorted(CONTRACTS.glob("*.vy")):
        rel = path.relative_to(ROOT)
        try:
            layout, opcodes = compile_layout_and_opcodes(path)
        except subprocess.CalledProcessError as err:
            print(f"FAIL {rel}: does not compile\n{err.stderr.strip()}")
            failures += 1
            continue
        pragma_on, open_ = reentrancy_settings(path)
        problems = check(path.stem, layout, opcodes, pragma_on, open_)
        if problems:
            failures += 1
            for p in problems:
                print(f"FAIL {rel}: {p}")
        elif path.stem in REENTRANT_BY_DESIGN:
            print(f"ok   {rel}: calls out, re-entrant by design (reviewed: REENTRANT_BY_DESIGN)")
        elif calls_out(opcodes, path.stem):
            print(f"ok   {rel}: calls out, one global lock, {len(open_)} reviewed open functions")
        else:
            print(f"ok   {rel}: no state-changing call (STATICCALL at most), no lock needed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
