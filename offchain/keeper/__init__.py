"""Keeper infrastructure that does not depend on the contracts' ABI.

Modules: ``sources`` (market data behind one ``MarketDataSource`` interface), ``policy`` and
``quotes`` (what to quote and post, how to batch it, whom to liquidate, what to settle: plain
functions), ``config`` (the keeper's knobs), ``replay`` (history on a later chain clock),
``state`` and ``runner_state`` (the SQLite state, a transaction per change), ``tx`` (``TxManager``:
nonces, fees, retries, stuck / dropped / reorged transactions, idempotency keys), ``senders``
(signing or a dry run, behind one interface), ``runner`` (the loop) and ``logfmt`` (key=value
structured logs). See ``docs/keeper.md``.
"""
