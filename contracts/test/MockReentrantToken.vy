# pragma version 0.4.3
"""
@title MockReentrantToken: calls back into a target during transfer / transferFrom (tests only)
@custom:contract-name MockReentrantToken
@notice The token can act as an account itself (`execute`), e.g. deposit into the vault and
        withdraw; when armed, its next transfer or transferFrom first makes the armed call
        (e.g. a second withdrawal) and records whether it succeeded.
@custom:security Anyone can mint or arm. Never deploy outside tests and the demo.
"""


decimals: public(uint8)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
hook_target: public(address)
hook_data: public(Bytes[260])
armed: public(bool)
reentry_attempts: public(uint256)
reentry_succeeded: public(bool)


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
def arm(target: address, data: Bytes[260]):
    """
    @notice Make the next transfer call `target` with `data` first.
    """
    self.hook_target = target
    self.hook_data = data
    self.armed = True


@external
def execute(target: address, data: Bytes[260]):
    """
    @notice Act as an account: call `target` with `data` (reverts if the call does).
    """
    raw_call(target, data)


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
    @notice Transfer, after the armed call.
    """
    self._hook()
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice TransferFrom, after the armed call.
    """
    self._hook()
    self.allowance[sender][msg.sender] -= amount
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    return True


@internal
def _hook():
    if not self.armed:
        return
    self.armed = False
    self.reentry_attempts += 1
    self.reentry_succeeded = raw_call(self.hook_target, self.hook_data, revert_on_failure=False)
