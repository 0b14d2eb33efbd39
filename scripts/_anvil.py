"""How the project starts anvil: the native binary, and through Ape without `--steps-tracing`.

`node_modules/.bin/anvil` is a Node wrapper that spawns the native binary as its child; killing
the wrapper (Ape's fallback after SIGINT, or any SIGKILL) leaves the node running, orphaned. The
npm package ships the native binary in a per-platform package, so the project runs that.

ape-foundry 0.8.12 always starts anvil with `--steps-tracing`, which records every EVM step with
its memory. A margin check walks ~10k steps over ~20 KB of memory, so anvil grows by about 1 GB
per trade at 12 positions and is OOM-killed near 32. Call traces (`debug_traceTransaction`
call tracer, used for `tx.return_value`) keep working without it.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import sys
from pathlib import Path

_NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"
# @foundry-rs/anvil's names for platforms and CPUs (its const.mjs)
_PLATFORMS = {"linux": "linux", "darwin": "darwin", "win32": "win32"}
_CPUS = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def native_anvil() -> str:
    """The anvil executable itself: the npm package's native binary for this platform, else an
    `anvil` on PATH that is not the npm wrapper (a foundryup install)."""
    exe = "anvil.exe" if sys.platform == "win32" else "anvil"
    plat, cpu = _PLATFORMS.get(sys.platform), _CPUS.get(platform.machine().lower())
    package = f"@foundry-rs/anvil-{plat}-{cpu}"
    binary = _NODE_MODULES / package / "bin" / exe
    if plat and cpu and os.access(binary, os.X_OK):
        return str(binary)
    on_path = shutil.which("anvil")
    if on_path and Path(on_path).resolve().suffix != ".mjs":
        return on_path
    raise RuntimeError(f"anvil not found: no {binary}, no native anvil on PATH; run `make setup`")


def install() -> None:
    """Patch ape-foundry's provider (idempotent); call before the provider connects."""
    from ape_foundry.provider import FoundryProvider

    # a plain property: the original is a cached_property that runs the wrapper's `--version`
    FoundryProvider.anvil_bin = property(lambda self: native_anvil())
    build = FoundryProvider.build_command
    if hasattr(build, "__wrapped__"):
        return

    @functools.wraps(build)
    def build_without_steps(self) -> list[str]:
        return [arg for arg in build(self) if arg != "--steps-tracing"]

    FoundryProvider.build_command = build_without_steps
