"""Revert data as text for the keeper's log lines: ``Error(string)`` decoded with eth-abi (the
reason a Vyper ``assert ..., "oracle: not newer"`` gives), ``Panic(uint256)`` named, any other
data shown by its selector.

    >>> from eth_abi import encode
    >>> decode_revert(ERROR_SELECTOR + encode(["string"], ["oracle: not newer"]))
    'oracle: not newer'
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_abi.exceptions import DecodingError

__all__ = ["decode_revert", "revert_reason"]

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
PANICS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an invalid internal function",
}


def _as_bytes(data: Any) -> bytes | None:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        try:
            return bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    return None


def decode_revert(data: bytes | str) -> str:
    """The reason text of revert ``data`` (bytes or 0x-hex)."""
    raw = _as_bytes(data)
    if raw is None:
        return f"unreadable revert data {str(data)[:80]!r}"
    if not raw:
        return "reverted without a reason"
    selector, body = raw[:4], raw[4:]
    try:
        if selector == ERROR_SELECTOR:
            (text,) = decode(["string"], body)
            return text
        if selector == PANIC_SELECTOR:
            (code,) = decode(["uint256"], body)
            return f"panic 0x{code:02x}: {PANICS.get(code, 'unknown panic code')}"
    except (DecodingError, UnicodeDecodeError, OverflowError):
        pass
    return f"custom error 0x{selector.hex()} with {len(body)} bytes of data"


def revert_reason(exc: BaseException) -> str:
    """The reason text of a revert exception from web3 (``ContractLogicError``: its ``data``
    decoded) or Ape (its ``revert_message``); else the exception's message."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if _as_bytes(data) is not None:
        return decode_revert(data)
    message = getattr(exc, "revert_message", None) or getattr(exc, "message", None) or str(exc)
    return str(message).removeprefix("execution reverted: ")
