"""Off-chain half of the portfolio margin engine.

Modules: ``pricing`` (Black-76), ``scenarios`` (scenario grids), ``risk_arrays`` (per-instrument
scenario value changes and their on-chain encoding), ``fixed_point`` (the integer conventions of
``docs/fixed-point.md``) and ``margin`` (integer reference model that equals the contracts, and a
vectorised float model for research).
"""
