# pragma version 0.4.3
"""
@title Test liquidator account that liquidates the same account twice in one transaction
@notice A margin account (funded through engine.deposit(..., this)) that calls
        Liquidator.liquidate twice in one call, to show that a second liquidation in the same
        block cannot take more than is still needed.
"""


interface ILiquidate:
    def liquidate(account: address, max_fraction: uint256) -> uint256: nonpayable


liquidator: public(ILiquidate)


@deploy
def __init__(liquidator_: ILiquidate):
    self.liquidator = liquidator_


@external
def liquidate_twice(account: address, first_cap: uint256, second_cap: uint256) -> (uint256, uint256):
    f1: uint256 = extcall self.liquidator.liquidate(account, first_cap)
    f2: uint256 = extcall self.liquidator.liquidate(account, second_cap)
    return f1, f2
