"""Role bits of the contracts' ``roles`` module (``contracts/modules/roles.vy``).

``grant_role(account, role)`` takes one bit at a time: the keeper's role is held in
``RiskOracle`` (it posts there); the venue's and the guardian's in ``EngineAdmin`` (a venue books
trades in ``MarginEngine``, which asks EngineAdmin; a guardian pauses the engine through it).
``has_role(account, ROLE_VENUE)`` asks for one bit; any other value is refused on-chain
(``roles: unknown role``).
"""

from __future__ import annotations

__all__ = ["ROLE_GUARDIAN", "ROLE_KEEPER", "ROLE_VENUE"]

ROLE_KEEPER = 1
ROLE_VENUE = 2
ROLE_GUARDIAN = 4
