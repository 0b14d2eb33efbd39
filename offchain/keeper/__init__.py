"""Keeper infrastructure that does not depend on the contracts' ABI.

Modules: ``sources`` (market data behind one ``MarketDataSource`` interface), ``policy`` (what to
post, how to batch it, whom to liquidate, what to settle: plain functions), ``state`` (the keeper's
state file, written atomically), ``tx`` (``TxManager``: nonces, fees, retries, stuck / dropped /
reorged transactions, idempotency keys) and ``logfmt`` (key=value structured logs). See
``docs/keeper.md``.
"""
