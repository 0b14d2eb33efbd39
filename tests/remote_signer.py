"""An Ape account whose key lives elsewhere, standing in for a cloud KMS or a hardware wallet.

``FakeKms`` holds the keys and signs 32-byte digests (as AWS KMS or a Ledger does); it counts
what it signed. ``RemoteAccount`` is an ``ape.api.AccountAPI`` the way ape-aws writes one: it
knows a key id, hashes what it is asked to sign, and has the service sign the digest. It holds
no key, so nothing in the keeper can decrypt or read one.
"""

from __future__ import annotations

from typing import Any

from ape.api.accounts import AccountAPI
from ape.types.signatures import MessageSignature, SignableMessage, TransactionSignature
from eth_account._utils.legacy_transactions import serializable_unsigned_transaction_from_dict
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_keys import keys


class FakeKms:
    """Keys by id; ``sign_digest`` is the only way to use one. ``signed`` counts signatures per
    key id; ``refuse`` makes the next signatures fail as an unreachable service would."""

    def __init__(self) -> None:
        self._keys: dict[str, keys.PrivateKey] = {}
        self.signed: dict[str, int] = {}
        self.refuse = False

    def create_key(self, key_id: str, secret: bytes) -> str:
        """Store ``secret`` under ``key_id``; return its address (what a KMS reports)."""
        self._keys[key_id] = keys.PrivateKey(secret)
        self.signed[key_id] = 0
        return self.address(key_id)

    def address(self, key_id: str) -> str:
        return self._keys[key_id].public_key.to_checksum_address()

    def sign_digest(self, key_id: str, digest: bytes) -> tuple[int, int, int]:
        """``(y_parity, r, s)`` of ``digest``."""
        if self.refuse:
            raise ConnectionError("kms: service unavailable")
        sig = self._keys[key_id].sign_msg_hash(digest)
        self.signed[key_id] += 1
        return sig.v, sig.r, sig.s


class RemoteAccount(AccountAPI):
    """An Ape account that signs through ``kms`` with key ``key_id``."""

    key_id: str
    kms: Any

    @property
    def address(self) -> Any:
        return self.network_manager.ethereum.decode_address(self.kms.address(self.key_id))

    @property
    def alias(self) -> str:
        return f"kms:{self.key_id}"

    def sign_message(self, msg: Any, **signer_options: Any) -> MessageSignature | None:
        if isinstance(msg, str):
            msg = encode_defunct(text=msg)
        if not isinstance(msg, SignableMessage):
            return None
        v, r, s = self.kms.sign_digest(self.key_id, _hash_eip191_message(msg))
        return MessageSignature(v=v + 27, r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big"))

    def sign_transaction(self, txn: Any, **signer_options: Any) -> Any:
        fields = txn.model_dump(mode="json", by_alias=True, exclude={"sender"})
        digest = serializable_unsigned_transaction_from_dict(fields).hash()
        v, r, s = self.kms.sign_digest(self.key_id, digest)
        txn.signature = TransactionSignature(v=v, r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big"))
        return txn
