# pragma version 0.4.3
"""
@title MockFeeToken: burns `fee_bps` of every transfer (tests only)
@custom:contract-name MockFeeToken
@notice The sender's balance falls by the amount, the receiver gets amount - fee.
@custom:security Anyone can mint. Never deploy outside tests and the demo.
"""


decimals: public(uint8)
fee_bps: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(decimals_: uint8, fee_bps_: uint256):
    self.decimals = decimals_
    self.fee_bps = fee_bps_


@external
def mint(to: address, amount: uint256):
    """
    @notice Mint (tests only).
    """
    self.balanceOf[to] += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice ERC-20 approve.
    """
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Transfer minus the fee.
    """
    self._move(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice TransferFrom minus the fee.
    """
    self.allowance[sender][msg.sender] -= amount
    self._move(sender, receiver, amount)
    return True


@internal
def _move(sender: address, receiver: address, amount: uint256):
    fee: uint256 = amount * self.fee_bps // 10_000
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount - fee
