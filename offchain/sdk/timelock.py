"""The timelock (``contracts/Timelock.vy``, snekmate's ``timelock_controller``) as the system's
admin: whether a deployment gets one, how it is installed, and the calldata of a proposal.

Every contract with an admin (RiskOracle, EngineAdmin, which configures MarginEngine, and the
Liquidator) has the timelock as its admin on a public network, so every admin action (a
parameter, a listing, a role grant, ``unpause``) is scheduled, visible for the minimum delay,
then executed. ``install_timelock`` hands the admin over in one atomic batch executed through
the timelock itself (the two-step ``accept_admin`` must come from the new admin).

A multisig (a Safe) proposes and executes by sending the calldata of a ``Proposal`` to the
timelock: ``proposal(client.oracle.set_max_age, 600).schedule_calldata``, then, after the
delay, ``execute_calldata`` (docs/deploy.md, "Change a timelocked deployment").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode
from eth_utils import (
    function_signature_to_4byte_selector,
    is_checksum_address,
    is_hex_address,
    keccak,
    to_checksum_address,
)

from offchain.errors import UserError, did_you_mean

__all__ = [
    "CANCELLER_ROLE",
    "DEFAULT_DELAY",
    "EXECUTOR_ROLE",
    "MAX_DELAY",
    "MIN_DELAY",
    "PROPOSER_ROLE",
    "Call",
    "Proposal",
    "TimelockSpec",
    "admin_contracts",
    "call_from_text",
    "check_delay",
    "encode_call",
    "execute",
    "install_timelock",
    "proposal",
    "schedule",
    "timelock_spec",
]

DAY = 86_400
DEFAULT_DELAY = 2 * DAY  # time for users to see a change and leave before it lands
# At least an hour (less is no notice), at most 30 days (an emergency fix must still land).
MIN_DELAY = 3_600
MAX_DELAY = 30 * DAY
ZERO32 = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20

PROPOSER_ROLE = keccak(b"PROPOSER_ROLE")
EXECUTOR_ROLE = keccak(b"EXECUTOR_ROLE")
CANCELLER_ROLE = keccak(b"CANCELLER_ROLE")
MULTISIG_ROLES = (PROPOSER_ROLE, CANCELLER_ROLE, EXECUTOR_ROLE)

Say = Callable[[str], None]


def _selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def check_delay(seconds: int, where: str = "--timelock-delay") -> int:
    """``seconds`` if it is a minimum delay the deployment accepts, else a one-line error."""
    if not MIN_DELAY <= seconds <= MAX_DELAY:
        raise UserError(
            f"{where} {seconds}: the timelock delay must be between {MIN_DELAY} seconds (1 hour) "
            f"and {MAX_DELAY} seconds (30 days); the default is {DEFAULT_DELAY} (2 days)"
        )
    return seconds


@dataclass(frozen=True)
class TimelockSpec:
    """The timelock a deployment installs: its minimum delay (seconds) and the multisig that
    proposes, cancels and executes."""

    delay: int
    multisig: str


def timelock_spec(
    network: str,
    local: bool,
    *,
    multisig: str | None,
    delay: int,
    requested: bool = False,
) -> TimelockSpec | None:
    """Whether a deployment on ``network`` installs the timelock, and with what.

    A public network always does and needs the multisig; a local one (the demo, the tests)
    stays administered directly by the deployer unless ``requested`` or a multisig is given.

    Raises:
        UserError: a public network without ``multisig``, or a delay out of bounds.
    """
    if not (requested or multisig or not local):
        return None
    if not multisig:
        raise UserError(
            f"{network} is not a local network: its admin is a timelock proposed to by a "
            "multisig; give the multisig (a Safe) with --timelock-admin 0x..."
        )
    if int(multisig, 16) == 0:
        raise UserError(
            "--timelock-admin 0x0...0: the zero address cannot propose, so nobody could ever "
            "change the deployment; give the multisig's address"
        )
    return TimelockSpec(delay=check_delay(delay), multisig=multisig)


@dataclass(frozen=True)
class Call:
    """One call the timelock makes: ``data`` (selector + arguments) sent to ``target``."""

    target: str
    data: bytes
    value: int = 0


def encode_call(method: Any, *args: Any) -> Call:
    """The call ``method(*args)`` of an Ape contract (``client.oracle.set_max_age, 600``), as
    the timelock will make it."""
    return Call(str(method.contract.address), bytes(method.encode_input(*args)))


@dataclass(frozen=True)
class Proposal:
    """An operation of the timelock: one call or a batch (applied atomically), with its
    ``salt`` (tells two identical operations apart) and ``delay`` (>= the minimum delay)."""

    calls: tuple[Call, ...]
    delay: int
    salt: bytes = ZERO32
    predecessor: bytes = ZERO32
    _fields: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.calls:
            raise UserError("a proposal needs at least one call")
        if len(self.salt) != 32 or len(self.predecessor) != 32:
            raise UserError("salt and predecessor are 32 bytes each")
        targets = [to_checksum_address(c.target) for c in self.calls]
        values = [c.value for c in self.calls]
        datas = [c.data for c in self.calls]
        object.__setattr__(self, "_fields", (targets, values, datas))

    @property
    def single(self) -> bool:
        return len(self.calls) == 1

    def _args(self) -> tuple[list[str], list[Any]]:
        """ABI types and values of (target(s), amount(s), payload(s), predecessor, salt), the
        head every function of the timelock shares and its operation id hashes."""
        targets, values, datas = self._fields
        if self.single:
            return (
                ["address", "uint256", "bytes", "bytes32", "bytes32"],
                [targets[0], values[0], datas[0], self.predecessor, self.salt],
            )
        return (
            ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32"],
            [targets, values, datas, self.predecessor, self.salt],
        )

    @property
    def operation_id(self) -> bytes:
        """The id the timelock files the operation under (``hash_operation[_batch]``)."""
        types, values = self._args()
        return keccak(encode(types, values))

    @property
    def schedule_calldata(self) -> bytes:
        """What a proposer sends to the timelock to schedule the operation."""
        types, values = self._args()
        name = "schedule" if self.single else "schedule_batch"
        sig = f"{name}({','.join(types)},uint256)"
        return _selector(sig) + encode([*types, "uint256"], [*values, self.delay])

    @property
    def execute_calldata(self) -> bytes:
        """What an executor sends to the timelock once the delay has passed."""
        types, values = self._args()
        name = "execute" if self.single else "execute_batch"
        return _selector(f"{name}({','.join(types)})") + encode(types, values)

    @property
    def cancel_calldata(self) -> bytes:
        """What a canceller sends to the timelock to drop the operation before it executes."""
        return _selector("cancel(bytes32)") + encode(["bytes32"], [self.operation_id])

    def as_transactions(self, timelock: str) -> dict[str, Any]:
        """The three transactions a multisig may send (to, value, data as hex)."""
        to = to_checksum_address(timelock)
        return {
            "operation_id": "0x" + self.operation_id.hex(),
            "delay": self.delay,
            "schedule": {"to": to, "value": 0, "data": "0x" + self.schedule_calldata.hex()},
            "execute": {
                "to": to,
                "value": sum(c.value for c in self.calls),
                "data": "0x" + self.execute_calldata.hex(),
            },
            "cancel": {"to": to, "value": 0, "data": "0x" + self.cancel_calldata.hex()},
        }


def proposal(method: Any, *args: Any, delay: int = DEFAULT_DELAY, salt: bytes = ZERO32) -> Proposal:
    """The proposal of one contract call: ``proposal(client.oracle.set_max_age, 600)``."""
    return Proposal((encode_call(method, *args),), delay=delay, salt=salt)


def _argument(kind: str, text: str, where: str) -> Any:
    """One argument typed on a command line, read as its ABI type ``kind``."""
    if kind.startswith(("uint", "int")):
        try:
            value = int(text, 0)
        except ValueError:
            raise UserError(
                f"{where} {text!r}: not a whole number (WAD amounts are integers)"
            ) from None
        if kind.startswith("uint") and value < 0:
            raise UserError(f"{where} {text!r}: must not be negative")
        return value
    if kind == "address":
        if not is_hex_address(text):
            raise UserError(f"{where} {text!r}: not an address (0x and 40 hex digits)")
        if text != text.lower() and not is_checksum_address(text):
            raise UserError(f"{where} {text}: checksum mismatch; copy the address again")
        return to_checksum_address(text)
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise UserError(f"{where} {text!r}: give true or false")
        return text.lower() == "true"
    if kind == "bytes32":
        raw = text.removeprefix("0x")
        if len(raw) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in raw):
            raise UserError(f"{where} {text!r}: give 32 bytes as 0x and 64 hex digits")
        return bytes.fromhex(raw)
    raise UserError(f"{where}: arguments of type {kind} are not read from text; use the SDK")


def call_from_text(contracts: dict[str, Any], name: str, method: str, texts: Sequence[str]) -> Call:
    """The call ``<name>.<method>(texts...)`` typed on a command line (``oracle set_max_age
    600``), each argument read by the method's ABI type.

    Raises:
        UserError: an unknown contract or method (the closest named), a wrong number of
            arguments (the signature shown) or an argument its type refuses.
    """
    if name not in contracts:
        raise UserError(
            f"no contract {name!r}{did_you_mean(name, contracts)}: one of {', '.join(contracts)}"
        )
    contract = contracts[name]
    abis = {abi.name: abi for abi in contract.contract_type.mutable_methods}
    if method not in abis:
        raise UserError(
            f"{name} has no function {method!r} that changes state"
            f"{did_you_mean(method, abis)}; see docs/contracts.md"
        )
    abi = abis[method]
    signature = f"{method}({', '.join(f'{i.type} {i.name}' for i in abi.inputs)})"
    if len(texts) != len(abi.inputs):
        raise UserError(f"{name}.{signature} takes {len(abi.inputs)} arguments, {len(texts)} given")
    args = [
        _argument(i.type, t, f"{name}.{method} {i.name}")
        for i, t in zip(abi.inputs, texts, strict=True)
    ]
    return encode_call(getattr(contract, method), *args)


def admin_contracts(project: Any, deployment: Any) -> list[Any]:
    """The deployment's contracts that have an admin (the engine's admin is EngineAdmin)."""
    found = [project.RiskOracle.at(deployment.oracle)]
    found.append(project.EngineAdmin.at(deployment.engine_admin))
    if deployment.liquidator:
        found.append(project.Liquidator.at(deployment.liquidator))
    return found


def install_timelock(
    project: Any,
    chain_manager: Any,
    deployer: Any,
    deployment: Any,
    spec: TimelockSpec,
    say: Say | None = None,
) -> Any:
    """Make a timelock the admin of every contract of ``deployment`` and record it there.

    The timelock is deployed with the deployer as its only proposer and executor and a delay of
    0; the deployer starts each two-step admin transfer, then schedules and executes through the
    timelock one batch that accepts every transfer, grants the multisig the proposer, canceller
    and executor roles, revokes the deployer's, and sets the real delay. The batch is atomic:
    either the multisig holds the timelock with its delay, or nothing changed hands. Completes a
    run interrupted after the deployment of the timelock (the deployment records it).
    """
    say = say or (lambda _msg: None)
    timelock = None
    if deployment.timelock and len(chain_manager.provider.get_code(deployment.timelock)) > 0:
        timelock = project.Timelock.at(deployment.timelock)
    if timelock is None:
        timelock = deployer.deploy(project.Timelock, 0, [deployer], [deployer], ZERO_ADDRESS)
        deployment.timelock = timelock.address
        say(f"deployed timelock {timelock.address}")
    contracts = admin_contracts(project, deployment)
    handed = [c for c in contracts if c.admin() != timelock.address]
    for c in handed:
        if c.pending_admin() != timelock.address:
            c.transfer_admin(timelock, sender=deployer)
    calls = [Call(c.address, bytes(c.accept_admin.encode_input())) for c in handed]
    grant = timelock.grantRole
    revoke = timelock.revokeRole
    for role in MULTISIG_ROLES:
        if not timelock.hasRole(role, spec.multisig):
            calls.append(Call(timelock.address, bytes(grant.encode_input(role, spec.multisig))))
    for role in MULTISIG_ROLES:
        if spec.multisig != deployer.address and timelock.hasRole(role, deployer):
            calls.append(Call(timelock.address, bytes(revoke.encode_input(role, deployer))))
    if timelock.get_minimum_delay() != spec.delay:
        upd = timelock.update_delay.encode_input(spec.delay)
        calls.append(Call(timelock.address, bytes(upd)))
    if calls:
        if not timelock.hasRole(PROPOSER_ROLE, deployer):
            raise UserError(
                f"the timelock {timelock.address} is no longer the deployer's to set up; the "
                "remaining steps are proposals of its multisig (docs/deploy.md)"
            )
        # a fresh salt per run: a batch left scheduled by an interrupted run cannot collide
        salt = chain_manager.blocks.head.number.to_bytes(32, "big")
        batch = Proposal(tuple(calls), delay=timelock.get_minimum_delay(), salt=salt)
        _send(timelock, deployer, batch)
        say(
            f"timelock {timelock.address} is the admin of {len(contracts)} contracts; delay "
            f"{spec.delay} s; proposer, canceller and executor: {spec.multisig}"
        )
    deployment.timelock_delay = spec.delay
    deployment.timelock_admin = spec.multisig
    return timelock


def _send(timelock: Any, sender: Any, p: Proposal) -> None:
    """Schedule ``p`` (delay 0 during the installation) and execute it at once."""
    targets = [c.target for c in p.calls]
    values = [c.value for c in p.calls]
    datas = [c.data for c in p.calls]
    timelock.schedule_batch(targets, values, datas, p.predecessor, p.salt, p.delay, sender=sender)
    timelock.execute_batch(targets, values, datas, p.predecessor, p.salt, sender=sender)


def schedule(timelock: Any, sender: Any, p: Proposal) -> Any:
    """Send ``p``'s schedule calldata from ``sender`` (a proposer)."""
    return sender.transfer(timelock, 0, data=p.schedule_calldata)


def execute(timelock: Any, sender: Any, p: Proposal) -> Any:
    """Send ``p``'s execute calldata from ``sender`` (an executor)."""
    return sender.transfer(timelock, 0, data=p.execute_calldata)
