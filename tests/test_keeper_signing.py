"""The keeper signs through Ape accounts, never a key of its own: a KMS-style account that only
signs digests posts a round on the real contracts (and a restart signs nothing twice), a
keyfile account signs once unlocked with autosign, and a signer that fails or hands back
something else than the transaction it was given costs no nonce and reaches no node."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from anvil_node import DEV_KEYS, AnvilNode, http_web3
from eth_account import Account
from eth_utils import keccak
from remote_signer import FakeKms, RemoteAccount
from test_keeper_integration import CONFIG, FAST, PSR, advance, tick
from web3 import Web3

from offchain.keeper.runner import open_keeper
from offchain.keeper.state import StateStore, TxStatus
from offchain.keeper.tx import SigningError, TxManager
from offchain.sdk import ROLE_KEEPER, deploy_system, parse_config

RECIPIENT = Web3.to_checksum_address("0x" + "cd" * 20)


@pytest.fixture(scope="module")
def sysm(project, chain, admin, keeper, venue):
    cfg = parse_config(CONFIG, now=chain.blocks.head.timestamp)
    return deploy_system(project, chain, admin, cfg, keepers=[keeper], venues=[venue])


@pytest.fixture
def node() -> Iterator[AnvilNode]:
    n = AnvilNode()
    yield n
    n.stop()


def open_store(folder, address: str) -> StateStore:
    """The state of one signer in ``folder``."""
    return StateStore(folder / f"{address}.json")


def funded_kms_account(node: AnvilNode, kms: FakeKms, key_id: str) -> RemoteAccount:
    address = kms.create_key(key_id, keccak(text=key_id))
    node.rpc("anvil_setBalance", address, hex(10**20))
    return RemoteAccount(key_id=key_id, kms=kms)


def test_the_keeper_posts_a_round_signed_by_a_kms_account(sysm, chain, admin, tmp_path):
    c, kms = sysm, FakeKms()
    address = kms.create_key("keeper-1", keccak(text="keeper-1"))
    signer = RemoteAccount(key_id="keeper-1", kms=kms)
    c.oracle.grant_role(address, ROLE_KEEPER, sender=admin)
    chain.set_balance(address, 10**21)

    k = open_keeper(c, signer, str(tmp_path), tx_config=FAST, psr=lambda u, ts: PSR[u])
    ts = advance(chain, 60)
    report = k.round(tick(ts, 60_000.0, 3_000.0))
    k.close()
    assert report.batches == 1 and len(report.posted) == 9
    assert kms.signed["keeper-1"] == report.transactions == 1
    rec = k.sender.tx.record(f"post:{ts}:0")
    sent = chain.provider.web3.eth.get_transaction(rec.mined_hash)
    assert sent["from"] == address and c.oracle.underlying_state(1)[2] == ts
    assert rec.raw != "" and Account.recover_transaction(rec.raw) == address

    again = open_keeper(c, signer, str(tmp_path), tx_config=FAST, psr=lambda u, ts: PSR[u])
    again.round(tick(ts, 60_000.0, 3_000.0))  # the same tick after a restart
    again.close()
    assert kms.signed["keeper-1"] == 1  # nothing signed twice


def keyfile_account(folder, passphrase: str):
    from ape_accounts import KeyfileAccount

    keyfile = folder / "keeper.json"
    keyfile.write_text(json.dumps(Account.encrypt(DEV_KEYS[2], passphrase)))
    return KeyfileAccount(keyfile_path=keyfile)


def test_a_keyfile_account_unlocked_from_ape_s_variable_signs_unattended(
    node, tmp_path, monkeypatch
):
    from scripts.keeper import unattended

    account = keyfile_account(tmp_path, "correct horse")
    monkeypatch.setenv("APE_ACCOUNTS_keeper_PASSPHRASE", "correct horse")
    unattended(account)  # what `ape run keeper --account keeper` does before its first round
    with open_store(tmp_path, account.address) as store:
        m = TxManager(http_web3(node.url), account, store, store.load(), FAST)
        m.send("transfer:1", RECIPIENT, value=7, gas=21_000)
        m.send("transfer:2", RECIPIENT, value=8, gas=21_000)  # no prompt for the second either
        assert m.wait("transfer:2", 30).status == TxStatus.CONFIRMED
    assert node.balance(RECIPIENT) == 15


def test_a_wrong_passphrase_is_one_usage_error_naming_the_variable(tmp_path, monkeypatch):
    import click

    from scripts.keeper import unattended

    account = keyfile_account(tmp_path, "correct horse")
    monkeypatch.setenv("APE_ACCOUNTS_keeper_PASSPHRASE", "wrong horse")
    with pytest.raises(click.BadParameter) as err:
        unattended(account)
    assert "cannot unlock keeper: Invalid password; set APE_ACCOUNTS_keeper_PASSPHRASE" in str(
        err.value.format_message()
    )


def test_a_signer_that_fails_costs_no_nonce_and_a_later_send_goes_through(node, tmp_path):
    kms = FakeKms()
    account = funded_kms_account(node, kms, "flaky")
    with open_store(tmp_path, account.address) as store:
        m = TxManager(http_web3(node.url), account, store, store.load(), FAST)
        kms.refuse = True
        with pytest.raises(SigningError, match="could not sign: ConnectionError"):
            m.send("transfer:1", RECIPIENT, value=5, gas=21_000)
        assert m.record("transfer:1") is None
        kms.refuse = False
        rec = m.send("transfer:1", RECIPIENT, value=5, gas=21_000)
        assert rec.nonce == 0
        assert m.wait("transfer:1", 30).status == TxStatus.CONFIRMED
    assert node.nonce(account.address) == 1 and node.balance(RECIPIENT) == 5


class RenumberingAccount(RemoteAccount):
    """A signer plugin that changes the nonce of what it is given before signing it."""

    def sign_transaction(self, txn, **signer_options):
        txn.nonce = txn.nonce + 5
        return super().sign_transaction(txn, **signer_options)


class WrongKeyAccount(RemoteAccount):
    """A signer whose address is one key's and whose signatures are another's."""

    other: str

    def sign_transaction(self, txn, **signer_options):
        return RemoteAccount(key_id=self.other, kms=self.kms).sign_transaction(txn)


class DecliningAccount(RemoteAccount):
    """A signer that says no (as a keyfile account without autosign answers a declined
    prompt)."""

    def sign_transaction(self, txn, **signer_options):
        return None


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda kms: RenumberingAccount(key_id="a", kms=kms), "other fields (nonce)"),
        (lambda kms: WrongKeyAccount(key_id="a", kms=kms, other="b"), "signed by 0x"),
        (lambda kms: DecliningAccount(key_id="a", kms=kms), "declined to sign"),
    ],
    ids=["renumbered", "another_key", "declined"],
)
def test_a_signature_that_is_not_this_transaction_by_this_account_is_never_sent(
    node, tmp_path, make, problem
):
    kms = FakeKms()
    funded_kms_account(node, kms, "a")
    funded_kms_account(node, kms, "b")
    account = make(kms)
    with open_store(tmp_path, account.address) as store:
        m = TxManager(http_web3(node.url), account, store, store.load(), FAST)
        with pytest.raises(SigningError, match=re.escape(problem)):
            m.send("transfer:1", RECIPIENT, value=5, gas=21_000)
        assert m.record("transfer:1") is None
    assert node.w3.eth.get_block("latest")["transactions"] == []
    assert node.balance(RECIPIENT) == 0
