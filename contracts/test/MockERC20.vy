# pragma version 0.4.3
"""
@title MockERC20: a well-behaved ERC-20 with configurable decimals (tests only)
@custom:contract-name MockERC20
@custom:security Anyone can mint. Never deploy outside tests and the demo.
"""


from ethereum.ercs import IERC20


implements: IERC20


name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(name_: String[32], symbol_: String[8], decimals_: uint8):
    self.name = name_
    self.symbol = symbol_
    self.decimals = decimals_


@external
def mint(to: address, amount: uint256):
    """
    @notice Mint `amount` to `to` (tests only).
    """
    self.balanceOf[to] += amount
    self.totalSupply += amount
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@external
def burn(account: address, amount: uint256):
    """
    @notice Burn from any account (tests only: simulates a negative rebase of a holder).
    """
    self.balanceOf[account] -= amount
    self.totalSupply -= amount
    log IERC20.Transfer(sender=account, receiver=empty(address), value=amount)


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice ERC-20 approve.
    """
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transfer.
    """
    self._move(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transferFrom.
    """
    self.allowance[sender][msg.sender] -= amount
    self._move(sender, receiver, amount)
    return True


@internal
def _move(sender: address, receiver: address, amount: uint256):
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log IERC20.Transfer(sender=sender, receiver=receiver, value=amount)
