# pragma version 0.4.3
"""
@title MockNoReturnToken: USDT-style, transfer functions return nothing (tests only)
@custom:contract-name MockNoReturnToken
@notice Reverts on failure, returns no data on success, 6 decimals by default.
@custom:security Anyone can mint. Never deploy outside tests and the demo.
"""


decimals: public(uint8)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(decimals_: uint8):
    self.decimals = decimals_


@external
def mint(to: address, amount: uint256):
    """
    @notice Mint (tests only).
    """
    self.balanceOf[to] += amount


@external
def approve(spender: address, amount: uint256):
    """
    @notice Approve, no return value.
    """
    self.allowance[msg.sender][spender] = amount


@external
def transfer(receiver: address, amount: uint256):
    """
    @notice Transfer, no return value.
    """
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount


@external
def transferFrom(sender: address, receiver: address, amount: uint256):
    """
    @notice TransferFrom, no return value.
    """
    self.allowance[sender][msg.sender] -= amount
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
