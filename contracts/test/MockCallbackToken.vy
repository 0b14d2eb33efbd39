# pragma version 0.4.3
"""
@title MockCallbackToken: calls a target in the middle of transfer / transferFrom and records
       what it returned (tests only)
@custom:contract-name MockCallbackToken
@notice A read-only re-entrancy probe (Curve/Vyper 2023): when armed, the next transfer or
        transferFrom first calls `target` with `data` (a STATICCALL when `static` is set, so a
        view can be read while the calling contract is mid-transaction) and records whether it
        succeeded and its return data. A test then compares that with the same call made after
        the transaction. Like MockReentrantToken it can act as an account (`execute`).
@custom:security Anyone can mint or arm. Never deploy outside tests.
"""


decimals: public(uint8)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
hook_target: public(address)
hook_data: public(Bytes[260])
hook_static: public(bool)
armed: public(bool)
calls: public(uint256)
last_ok: public(bool)
last_result: public(Bytes[4096])


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
def arm(target: address, data: Bytes[260], static: bool):
    """
    @notice Make the next transfer call `target` with `data` first (a static call if `static`).
    """
    self.hook_target = target
    self.hook_data = data
    self.hook_static = static
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
    self.calls += 1
    ok: bool = False
    out: Bytes[4096] = b""
    if self.hook_static:
        ok, out = raw_call(
            self.hook_target, self.hook_data, max_outsize=4096, is_static_call=True, revert_on_failure=False
        )
    else:
        ok, out = raw_call(self.hook_target, self.hook_data, max_outsize=4096, revert_on_failure=False)
    self.last_ok = ok
    self.last_result = out
