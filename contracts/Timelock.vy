# pragma version 0.4.3
"""
@title Timelock: the delayed admin of RiskOracle, EngineAdmin and the Liquidator
@custom:contract-name Timelock
@notice snekmate's `timelock_controller` as it ships (no code of ours): a proposer schedules a
        call, anyone watching sees it (`CallScheduled`) for at least `get_minimum_delay`
        seconds, then an executor executes it. Every admin action of the system (parameter
        changes, listings, role grants, `unpause`) is such a call, so users see each change
        coming and can leave before it lands. The guardian's `pause` is a role, not the admin,
        and stays immediate. The timelock administers itself: changing its delay or its
        proposers is a delayed call to itself too.
@custom:security Holds no funds of the system. Proposers also get the canceller role; an
                 executor role granted to the zero address opens execution to anyone.
"""


from snekmate.auth import access_control
from snekmate.governance import timelock_controller


initializes: access_control
initializes: timelock_controller[access_control := access_control]


exports: timelock_controller.__interface__


@deploy
def __init__(
    minimum_delay_: uint256,
    proposers_: DynArray[address, timelock_controller._DYNARRAY_BOUND],
    executors_: DynArray[address, timelock_controller._DYNARRAY_BOUND],
    admin_: address,
):
    """
    @param minimum_delay_ Seconds between scheduling and execution.
    @param proposers_ Accounts given the proposer and canceller roles.
    @param executors_ Accounts given the executor role.
    @param admin_ An optional account with the admin role over the timelock's roles (the zero
           address for none: the timelock then administers itself alone).
    """
    access_control.__init__()
    timelock_controller.__init__(minimum_delay_, proposers_, executors_, admin_)
