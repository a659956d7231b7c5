"""Shared builders for the meshpay unit tests: a committee of 3f+1 authorities and some clients."""

from __future__ import annotations

from meshpay.authority import Account, Authority
from meshpay.committee import AuthorityInfo, Committee
from meshpay.crypto import KeyPair
from meshpay.messages import Certificate, TransferOrder, sign_order, sign_vote


def keypair(i: int) -> KeyPair:
    return KeyPair(bytes([i]) * 32)


class World:
    def __init__(self, n_authorities: int = 4, n_clients: int = 3) -> None:
        self.auth_keys = [keypair(100 + i) for i in range(n_authorities)]
        self.committee = Committee(
            [AuthorityInfo(f"auth{i + 1}", k.public_key, 1, "127.0.0.1", 7100 + i) for i, k in enumerate(self.auth_keys)]
        )
        self.authorities = [Authority(k, self.committee) for k in self.auth_keys]
        self.clients = [keypair(1 + i) for i in range(n_clients)]

    def order(self, sender: int = 0, recipient: int = 1, amount: int = 10, sequence: int = 0) -> TransferOrder:
        return sign_order(self.clients[sender], self.clients[recipient].public_key, amount, sequence)

    def certificate(self, order: TransferOrder, signers: list[int] | None = None) -> Certificate:
        signers = list(range(self.committee.quorum_threshold)) if signers is None else signers
        return Certificate(order, tuple((self.auth_keys[i].public_key, sign_vote(self.auth_keys[i], order).signature) for i in signers))


def funded(balance: int = 100) -> Account:
    return Account(balance=balance)
