"""Compile every Vyper source under contracts/ and enforce the EIP-170 size limit.

Run: `python -m scripts.lint_contracts` (part of `make lint`). Uses the pip-installed vyper
0.4.3 (`vyper -p contracts`), so no compiler download. Deployable contracts (contracts/*.vy and
contracts/test/*.vy) must deploy below 24,576 bytes: the runtime bytecode plus the immutables,
which Vyper appends to the deployed code (an engine at 24,547 bytes with one 32-byte immutable
fails to deploy with CreateContractSizeLimit); modules
(contracts/modules/*.vy) must compile. Exit status 1 on any failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

LIMIT = 24_576
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


def main() -> int:
    failures = 0
    for path in sorted(CONTRACTS.rglob("*.vy")):
        rel = path.relative_to(ROOT)
        module = "modules" in path.relative_to(CONTRACTS).parts
        try:
            size = runtime_size(path)
        except subprocess.CalledProcessError as err:
            print(f"FAIL {rel}: does not compile\n{err.stderr.strip()}")
            failures += 1
            continue
        if module:
            print(f"ok   {rel} (module)")
        elif size >= LIMIT:
            print(f"FAIL {rel}: {size} bytes >= {LIMIT}")
            failures += 1
        else:
            print(f"ok   {rel}: {size} bytes ({LIMIT - size} left)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
