"""The keeper bot's round metrics for Prometheus: a Silverback recorder that writes the session
file as ``--record`` does and also serves each metric the handlers return.

    silverback run offchain.keeper.bot:bot ... --record \\
        --recorder offchain.keeper.metrics:PrometheusRecorder

Serves ``http://KEEPER_METRICS_HOST:KEEPER_METRICS_PORT/metrics`` (default 127.0.0.1:9101):

- ``keeper_<name>_total`` counters for what adds up over rounds (posts, gas, liquidations,
  settlements, ...) and for the steps without a round (``idle``, ``source_errors``,
  ``failed_rounds``);
- ``keeper_<name>`` gauges for the last value of the rest (``data_age``, ``round_seconds``,
  ``accounts``, ``below_mm``, ``data_ts``);
- ``keeper_handler_errors_total{task}``: handler runs that raised (they count towards
  ``--max-exceptions``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from silverback.recorder import JSONLineRecorder, TaskResult
from silverback.types import SilverbackID

from offchain.keeper.service import KeeperOptions

__all__ = ["COUNTED", "PrometheusRecorder"]

#: metrics that add up over rounds; every other metric is a gauge of its last value
COUNTED = frozenset(
    {
        "posts",
        "batches",
        "transactions",
        "gas",
        "liquidations",
        "settlement_prices",
        "settlements",
        "idle",
        "source_errors",
        "failed_rounds",
    }
)


class PrometheusRecorder(JSONLineRecorder):
    """``JSONLineRecorder`` plus a Prometheus endpoint of the handlers' metrics."""

    async def init(self, bot_id: SilverbackID) -> None:
        await super().init(bot_id)
        options = KeeperOptions.from_env()
        self.registry = CollectorRegistry()
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._errors = Counter(
            "keeper_handler_errors",
            "handler runs that raised",
            ["task"],
            registry=self.registry,
        )
        try:
            self.server, self.thread = start_http_server(
                options.metrics_port, options.metrics_host, registry=self.registry
            )
        except OSError as exc:  # port taken, host not ours: one line, not a traceback
            raise SystemExit(
                f"error: cannot serve metrics on {options.metrics_host}:{options.metrics_port} "
                f"({exc}): set KEEPER_METRICS_HOST / KEEPER_METRICS_PORT"
            ) from None

    async def add_result(self, result: TaskResult) -> None:
        await super().add_result(result)
        if result.error is not None:
            self._errors.labels(result.task_name).inc()
        for name, point in result.metrics.items():
            value = float(point.data)
            if name in COUNTED:
                if name not in self._counters:
                    self._counters[name] = Counter(
                        f"keeper_{name}", f"{name} over all rounds", registry=self.registry
                    )
                self._counters[name].inc(max(value, 0.0))
            else:
                if name not in self._gauges:
                    self._gauges[name] = Gauge(
                        f"keeper_{name}", f"{name} of the last round", registry=self.registry
                    )
                self._gauges[name].set(value)

    def close(self) -> None:
        """Stop serving (tests; Silverback has no recorder shutdown hook)."""
        self.server.shutdown()
        self.server.server_close()
