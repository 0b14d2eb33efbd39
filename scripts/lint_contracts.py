"""Compile every Vyper source under contracts/ and enforce the EIP-170 size limit with room.

Run: `python -m scripts.lint_contracts` (part of `make lint`). Uses the pip-installed vyper
0.4.3 (`vyper -p contracts`), so no compiler download. The deployed size of a contract is the
runtime bytecode plus the immutables, which Vyper appends to the deployed code (an engine at
24,547 bytes with one 32-byte immutable fails to deploy with CreateContractSizeLimit). Product
contracts (contracts/*.vy) must keep at least ROOM bytes under the 24,576-byte limit, so the
next feature fits; test doubles (contracts/test/*.vy) must deploy. Modules
(contracts/modules/*.vy) must compile; a module that `uses:` another one compiles only inside
the contracts that initialise it, which are compiled here too. Prints each size and its room;
exit status 1 on any failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

LIMIT = 24_576
ROOM = 256
ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"


def _vyper() -> str:
    local = Path(sys.executable).parent / "vyper"
    return str(local) if local.exists() else (shutil.which("vyper") or "vyper")


def runtime_size(path: Path) -> int:
    """Deployed code size in bytes of one source: runtime bytecode plus immutables (raises
    CalledProcessError on errors)."""
    out = subprocess.run(
        [_vyper(), "-p", str(CONTRACTS), "-f", "bytecode_runtime,layout", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    code, _, layout = out.partition("\n")
    immutables = json.loads(layout).get("code_layout", {}) if layout.strip() else {}
    return (len(code.strip()) - 2) // 2 + sum(v["length"] for v in immutables.values())


def _uses_other_modules(path: Path) -> bool:
    return any(line.startswith("uses:") for line in path.read_text().splitlines())


def main() -> int:
    failures = 0
    for path in sorted(CONTRACTS.rglob("*.vy")):
        rel = path.relative_to(ROOT)
        parts = path.relative_to(CONTRACTS).parts
        if "modules" in parts and _uses_other_modules(path):
            print(f"ok   {rel} (module, compiled inside the contracts that initialise it)")
            continue
        try:
            size = runtime_size(path)
        except subprocess.CalledProcessError as err:
            print(f"FAIL {rel}: does not compile\n{err.stderr.strip()}")
            failures += 1
            continue
        room = LIMIT - size
        if "modules" in parts:
            print(f"ok   {rel} (module)")
        elif room <= 0:
            print(f"FAIL {rel}: {size} bytes >= {LIMIT}")
            failures += 1
        elif "test" not in parts and room < ROOM:
            print(f"FAIL {rel}: {size} bytes, {room} left (needs {ROOM} of room)")
            failures += 1
        else:
            print(f"ok   {rel}: {size} bytes ({room} left)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
