"""The FastPay protocol messages (frozen dataclasses), after fastpay_core/src/messages.rs.

Accounts are named by their owner's ed25519 public key (32 raw bytes). Every integer has a
range, checked where it enters (wire.py, api.py) and defined here once:
- amounts: 1 ..= MAX_AMOUNT, and the total supply at genesis is at most MAX_AMOUNT too;
- sequence numbers and positions in a log: 0 ..= MAX_SEQUENCE (they are SQLite INTEGERs);
- balances: -BALANCE_LIMIT < balance < BALANCE_LIMIT (stored and sent as 128-bit signed).
Why balances need more than 64 bits: an authority that missed some certificates (FastPay lets
it lag on credits or on debits) sees an account's credits and debits out of step, and money
that circulates can push that local view past any bound set by the supply. 2^127 is out of
reach (2^65 moves of the whole supply), as in FastPay's i128 balances.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from meshpay import crypto

# Domain tags: what a client signs (an order) and what an authority signs (a vote on an order)
# are different statements, so they must never be interchangeable byte strings.
ORDER_DOMAIN = b"meshpay/order/v1\x00"
VOTE_DOMAIN = b"meshpay/vote/v1\x00"

_BODY = struct.Struct(">32s32sQQ")
U64_MAX = 2**64 - 1
MAX_AMOUNT = 2**62
# next_sequence = sequence + 1 must still fit SQLite's signed 64-bit INTEGER.
MAX_SEQUENCE = 2**63 - 2
BALANCE_LIMIT = 2**127


@dataclass(frozen=True, slots=True)
class TransferOrder:
    """A client's signed request to move `amount` from `sender` to `recipient` at `sequence`."""

    sender: bytes
    recipient: bytes
    amount: int
    sequence: int
    signature: bytes

    def body(self) -> bytes:
        return _BODY.pack(self.sender, self.recipient, self.amount, self.sequence)

    def order_signing_bytes(self) -> bytes:
        return ORDER_DOMAIN + self.body()

    def vote_signing_bytes(self) -> bytes:
        return VOTE_DOMAIN + self.body()

    def has_valid_signature(self) -> bool:
        return crypto.verify(self.sender, self.signature, self.order_signing_bytes())

    @property
    def transfer_id(self) -> str:
        """Stable id of this (sender, sequence) slot: at most one certificate can ever exist for it."""
        return f"{self.sender.hex()}-{self.sequence}"


def sign_order(keypair: crypto.KeyPair, recipient: bytes, amount: int, sequence: int) -> TransferOrder:
    unsigned = TransferOrder(keypair.public_key, recipient, amount, sequence, b"")
    return TransferOrder(
        keypair.public_key, recipient, amount, sequence, keypair.sign(unsigned.order_signing_bytes())
    )


@dataclass(frozen=True, slots=True)
class Vote:
    """An authority's signature on a transfer order: it has locked the sender's sequence on it."""

    order: TransferOrder
    authority: bytes
    signature: bytes

    def has_valid_signature(self) -> bool:
        return crypto.verify(self.authority, self.signature, self.order.vote_signing_bytes())


def sign_vote(keypair: crypto.KeyPair, order: TransferOrder) -> Vote:
    return Vote(order, keypair.public_key, keypair.sign(order.vote_signing_bytes()))


@dataclass(frozen=True, slots=True)
class Certificate:
    """An order with votes from a quorum of the committee: the transfer is final."""

    order: TransferOrder
    signatures: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class ConfirmationOrder:
    certificate: Certificate


@dataclass(frozen=True, slots=True)
class ConfirmationAck:
    """Reply to a confirmation; `applied` is False when the certificate was already known."""

    sender: bytes
    sequence: int
    applied: bool


@dataclass(frozen=True, slots=True)
class AccountInfoRequest:
    """Ask for an account, its sent certificates from `sent_from` and received ones after `received_after`."""

    account: bytes
    sent_from: int = 0
    received_after: int = 0
    limit: int = 0


@dataclass(frozen=True, slots=True)
class AccountInfoResponse:
    account: bytes
    balance: int
    next_sequence: int
    pending: Vote | None
    sent: tuple[Certificate, ...]
    received: tuple[Certificate, ...]
    # Cursor to pass as `received_after` next time; it is local to the authority that sent it.
    received_cursor: int


@dataclass(frozen=True, slots=True)
class CertificateLogRequest:
    """An authority asks a peer for the certificates in its log after position `after`.

    Positions are local to the peer (its SQLite row ids): the asker keeps one cursor per peer
    (per shard of the peer, shards.py). Only certificates whose sender lies in shard `shard` of
    `shards` are sent (the asker's own shard; 0 of 1: all of them).
    """

    after: int
    limit: int
    shard: int = 0
    shards: int = 1


@dataclass(frozen=True, slots=True)
class ShardCredit:
    """A shard of an authority tells a sibling shard to credit a certificate's recipient, whose
    account it holds (shards.py); `tag` is the siblings' MAC over the certificate. Answered with
    a ConfirmationAck (`applied` False when the credit was already there)."""

    certificate: Certificate
    tag: bytes


@dataclass(frozen=True, slots=True)
class CertificateLogResponse:
    """Certificates of the peer's log in the order it applied them, from just after the asked
    position; `cursor` is the position of the last one sent, `head` the last in the log (a
    `head` below the asker's cursor means the peer's log was rebuilt: start again from 0)."""

    certificates: tuple[Certificate, ...]
    cursor: int
    head: int


class ErrorCode(IntEnum):
    MALFORMED = 1
    BAD_SIGNATURE = 2
    UNEXPECTED_SEQUENCE = 3
    INSUFFICIENT_BALANCE = 4
    CONFLICTING_ORDER = 5
    UNKNOWN_ACCOUNT = 6
    INVALID_AMOUNT = 7
    INVALID_CERTIFICATE = 8
    SEQUENCE_GAP = 9
    WRONG_ROLE = 10
    REFUSED = 11
    INTERNAL = 12
    INVALID_KEY = 13
    WRONG_SHARD = 14


@dataclass(frozen=True, slots=True)
class ErrorReply:
    code: ErrorCode
    message: str


class ProtocolError(Exception):
    """A request that the protocol refuses; carried back to the peer as an ErrorReply."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    def reply(self) -> ErrorReply:
        return ErrorReply(self.code, self.message)


Message = (
    TransferOrder
    | Vote
    | ConfirmationOrder
    | ConfirmationAck
    | AccountInfoRequest
    | AccountInfoResponse
    | CertificateLogRequest
    | CertificateLogResponse
    | ShardCredit
    | ErrorReply
)
