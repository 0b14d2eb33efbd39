# pragma version 0.4.3
"""
@title MockFalseToken: returns false instead of reverting on a failed transfer (tests only)
@custom:contract-name MockFalseToken
@notice A transfer without balance or allowance returns false and moves nothing; `fail_all`
        makes every transfer return false; `noop_all` makes every transfer return true and
        move nothing (a lying token).
@custom:security Anyone can mint. Never deploy outside tests and the demo.
"""


decimals: public(uint8)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
fail_all: public(bool)
noop_all: public(bool)


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
def set_fail_all(fail: bool):
    """
    @notice Make every transfer return false.
    """
    self.fail_all = fail


@external
def set_noop_all(noop: bool):
    """
    @notice Make every transfer return true without moving anything.
    """
    self.noop_all = noop


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
    @notice Returns false when it cannot transfer.
    """
    if self.fail_all or self.balanceOf[msg.sender] < amount:
        return False
    if self.noop_all:
        return True
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Returns false when it cannot transfer.
    """
    if self.fail_all or self.balanceOf[sender] < amount or self.allowance[sender][msg.sender] < amount:
        return False
    if self.noop_all:
        return True
    self.allowance[sender][msg.sender] -= amount
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    return True
