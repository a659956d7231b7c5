"""The committee of authorities, their voting weights and the two thresholds of FastPay.

With total weight N = 3f+1, a quorum is any set weighing more than 2N/3 (2f+1) and validity is
f+1: any two quorums share an honest authority, and f+1 weight always includes an honest one.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshpay import crypto
from meshpay.messages import Certificate, ErrorCode, ProtocolError, TransferOrder, Vote


@dataclass(frozen=True, slots=True)
class AuthorityInfo:
    name: str
    public_key: bytes
    weight: int
    # None when the member's address is left to discovery on the mesh (meshpay/discovery.py).
    host: str | None = None
    port: int | None = None
    # Processes this authority runs (shards.py); shard k listens on port + k.
    shards: int = 1


class Committee:
    def __init__(self, members: list[AuthorityInfo] | tuple[AuthorityInfo, ...]) -> None:
        if not members:
            raise ValueError("a committee needs at least one authority")
        keys = [m.public_key for m in members]
        if len(set(keys)) != len(keys):
            raise ValueError("two committee members share a public key")
        if any(m.weight <= 0 for m in members):
            raise ValueError("committee weights must be positive")
        self.members: tuple[AuthorityInfo, ...] = tuple(members)
        self.weights: dict[bytes, int] = {m.public_key: m.weight for m in members}
        self.by_key: dict[bytes, AuthorityInfo] = {m.public_key: m for m in members}
        self.total_weight: int = sum(self.weights.values())
        self.quorum_threshold: int = self.total_weight * 2 // 3 + 1
        self.validity_threshold: int = self.total_weight - self.quorum_threshold + 1

    def weight(self, authority: bytes) -> int:
        return self.weights.get(authority, 0)

    def check_vote(self, vote: Vote, order: TransferOrder) -> None:
        if vote.order != order:
            raise ProtocolError(ErrorCode.INVALID_CERTIFICATE, "vote is for a different order")
        if vote.authority not in self.weights:
            raise ProtocolError(ErrorCode.INVALID_CERTIFICATE, "vote from outside the committee")
        if not vote.has_valid_signature():
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "vote signature does not verify")

    def check_certificate(self, certificate: Certificate) -> None:
        """Raise unless the certificate carries a quorum of valid, distinct committee signatures."""
        order = certificate.order
        if not order.has_valid_signature():
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "certificate's order is not signed by its sender")
        seen: set[bytes] = set()
        weight = 0
        message = order.vote_signing_bytes()
        for authority, signature in certificate.signatures:
            if authority in seen:
                raise ProtocolError(ErrorCode.INVALID_CERTIFICATE, f"duplicate signer {authority.hex()[:16]}")
            seen.add(authority)
            member_weight = self.weights.get(authority)
            if member_weight is None:
                raise ProtocolError(ErrorCode.INVALID_CERTIFICATE, f"signer {authority.hex()[:16]} is not in the committee")
            if not crypto.verify(authority, signature, message):
                raise ProtocolError(ErrorCode.BAD_SIGNATURE, f"signature of {authority.hex()[:16]} does not verify")
            weight += member_weight
        if weight < self.quorum_threshold:
            raise ProtocolError(
                ErrorCode.INVALID_CERTIFICATE,
                f"certificate weight {weight} is below the quorum {self.quorum_threshold}",
            )
