"""Run ape-foundry's anvil without `--steps-tracing`.

ape-foundry 0.8.12 always starts anvil with `--steps-tracing`, which records every EVM step with
its memory. A margin check walks ~10k steps over ~20 KB of memory, so anvil grew by about 1 GB
per trade at 12 positions and was OOM-killed near 32. Call traces (`debug_traceTransaction`
call tracer, used for `tx.return_value`) keep working without it.
"""

from ape_foundry.provider import FoundryProvider

_build = FoundryProvider.build_command


def _build_without_steps(self) -> list[str]:
    return [arg for arg in _build(self) if arg != "--steps-tracing"]


def install() -> None:
    """Patch the provider class (idempotent); call before the provider connects."""
    FoundryProvider.build_command = _build_without_steps
