"""Role bits of the contracts' ``roles`` module (``contracts/modules/roles.vy``).

``grant_role(account, role)`` takes one bit at a time: the keeper posts to ``RiskOracle``, a venue
books trades in ``MarginEngine``, a guardian pauses the engine. ``has_role(account, ROLE_VENUE)``
asks for one bit; any other value is refused on-chain (``roles: unknown role``).
"""

from __future__ import annotations

__all__ = ["ROLE_GUARDIAN", "ROLE_KEEPER", "ROLE_VENUE"]

ROLE_KEEPER = 1
ROLE_VENUE = 2
ROLE_GUARDIAN = 4
