# pragma version 0.4.3
"""
@title Admin with two-step transfer and a role bitmask (keeper, venue, guardian)
@custom:contract-name roles
@notice One admin (set at deployment, transferred in two steps, never renounced) grants and
        revokes roles. Roles are bits of one word per account, so a check is one SLOAD.
@custom:security There is no renounce: a contract without admin could never list, bound or
                 unpause again. The admin holds no role implicitly; it grants itself one if
                 needed, and every grant/revoke emits an event.
"""


from ..interfaces import IRoles


ROLE_KEEPER: constant(uint256) = 1
ROLE_VENUE: constant(uint256) = 2
ROLE_GUARDIAN: constant(uint256) = 4
ALL_ROLES: constant(uint256) = 7


admin: public(address)
pending_admin: public(address)
role_bits: public(HashMap[address, uint256])


@deploy
def __init__(admin_: address):
    assert admin_ != empty(address), "roles: zero admin"
    self.admin = admin_
    log IRoles.AdminTransferred(previous_admin=empty(address), new_admin=admin_)


@external
def transfer_admin(new_admin: address):
    """
    @notice Start a two-step admin transfer; `new_admin` must call `accept_admin`.
            Passing the zero address cancels a pending transfer.
    @param new_admin The proposed admin.
    """
    self._only_admin()
    self.pending_admin = new_admin
    log IRoles.AdminTransferStarted(admin=msg.sender, pending_admin=new_admin)


@external
def accept_admin():
    """
    @notice Complete a two-step admin transfer (called by the pending admin).
    """
    assert msg.sender == self.pending_admin, "roles: not pending admin"
    previous: address = self.admin
    self.admin = msg.sender
    self.pending_admin = empty(address)
    log IRoles.AdminTransferred(previous_admin=previous, new_admin=msg.sender)


@external
def grant_role(account: address, role: uint256):
    """
    @notice Grant one role (1 keeper, 2 venue, 4 guardian) to `account`.
    @param account The account receiving the role.
    @param role The role bit.
    """
    self._only_admin()
    self._check_role(role)
    assert account != empty(address), "roles: zero account"
    self.role_bits[account] = self.role_bits[account] | role
    log IRoles.RoleGranted(role=role, account=account, sender=msg.sender)


@external
def revoke_role(account: address, role: uint256):
    """
    @notice Revoke one role from `account`.
    @param account The account losing the role.
    @param role The role bit.
    """
    self._only_admin()
    self._check_role(role)
    self.role_bits[account] = self.role_bits[account] & (ALL_ROLES ^ role)
    log IRoles.RoleRevoked(role=role, account=account, sender=msg.sender)


@view
@external
def has_role(account: address, role: uint256) -> bool:
    """
    @notice Whether `account` holds the role bit `role`.
    """
    return self.role_bits[account] & role != 0


@view
@internal
def _only_admin():
    assert msg.sender == self.admin, "roles: not admin"


@view
@internal
def _only_keeper():
    assert self.role_bits[msg.sender] & ROLE_KEEPER != 0, "roles: not keeper"


@view
@internal
def _only_guardian():
    assert self.role_bits[msg.sender] & ROLE_GUARDIAN != 0 or msg.sender == self.admin, "roles: not guardian"


@pure
@internal
def _check_role(role: uint256):
    assert role == ROLE_KEEPER or role == ROLE_VENUE or role == ROLE_GUARDIAN, "roles: unknown role"
