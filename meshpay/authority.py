"""Authority logic as pure state transitions, after fastpay_core/src/authority.rs.

Each handler takes the current account state and a message and returns the new state and the
reply, or raises ProtocolError. Nothing here touches sockets or the database: the caller loads
the accounts, calls a handler and stores what it returns in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from meshpay import crypto
from meshpay.committee import Committee
from meshpay.shards import shard_of
from meshpay.messages import (
    BALANCE_LIMIT,
    MAX_AMOUNT,
    MAX_SEQUENCE,
    AccountInfoResponse,
    Certificate,
    ConfirmationAck,
    ErrorCode,
    ProtocolError,
    TransferOrder,
    Vote,
    sign_vote,
)


@dataclass(frozen=True, slots=True)
class Account:
    balance: int
    next_sequence: int = 0
    # The vote this authority signed for `next_sequence`: the lock that prevents a second order.
    pending: Vote | None = None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Result of a confirmation: the new sender and recipient states, or no change.

    `recipient` is None when the recipient's account lives in another shard of this authority:
    the caller forwards the credit there (shards.py) in the same commit as the debit.
    """

    sender: Account
    recipient: Account | None
    ack: ConfirmationAck

    @property
    def applied(self) -> bool:
        return self.ack.applied


class Authority:
    """One committee member's decisions (one shard of them: `shard` of `shards`, shards.py).
    Immutable: its key, the committee and its shard."""

    def __init__(self, keypair: crypto.KeyPair, committee: Committee, shard: int = 0, shards: int = 1) -> None:
        if keypair.public_key not in committee.weights:
            raise ValueError("this authority's key is not in the committee")
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
        self.keypair = keypair
        self.committee = committee
        self.name = keypair.public_key
        self.shard = shard
        self.shards = shards

    def holds(self, key: bytes) -> bool:
        """True when account `key` lives in this shard."""
        return self.shards == 1 or shard_of(key, self.shards) == self.shard

    def check_shard(self, key: bytes) -> None:
        if not self.holds(key):
            raise ProtocolError(ErrorCode.WRONG_SHARD, f"account {key.hex()} lives in shard {shard_of(key, self.shards)} "
                                f"of this authority's {self.shards}, not in shard {self.shard}")

    def handle_order(self, account: Account | None, order: TransferOrder) -> tuple[Account, Vote]:
        """Vote for `order` and lock the sender's sequence number on it, or refuse."""
        self.check_shard(order.sender)
        check_order_shape(order)
        if account is not None and account.pending is not None and account.pending.order == order:
            # Byte-identical to the order already verified and locked: answer the same vote.
            return account, account.pending
        if not order.has_valid_signature():
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "order signature does not verify against the sender key")
        if account is None:
            raise ProtocolError(ErrorCode.UNKNOWN_ACCOUNT, f"no account {order.sender.hex()}")
        if account.pending is not None and account.pending.order.sequence == order.sequence:
            raise ProtocolError(
                ErrorCode.CONFLICTING_ORDER,
                f"a different order is already locked for sequence {order.sequence}",
            )
        if order.sequence != account.next_sequence:
            raise ProtocolError(
                ErrorCode.UNEXPECTED_SEQUENCE,
                f"expected sequence {account.next_sequence}, got {order.sequence}",
            )
        if order.amount > account.balance:
            raise ProtocolError(
                ErrorCode.INSUFFICIENT_BALANCE,
                f"balance {account.balance} does not cover {order.amount}",
            )
        vote = sign_vote(self.keypair, order)
        return replace(account, pending=vote), vote

    def handle_confirmation(
        self, sender: Account | None, recipient: Account | None, certificate: Certificate
    ) -> Confirmation:
        """Apply a certified transfer exactly once; older certificates are acknowledged unchanged.

        `recipient` is ignored when the recipient lives in another shard: the Confirmation's
        recipient is then None and the credit is the other shard's (apply_credit)."""
        order = certificate.order
        self.check_shard(order.sender)
        credit_here = self.holds(order.recipient)
        if sender is not None and order.sequence < sender.next_sequence:
            # This (sender, sequence) slot is settled here already, and at most one certificate
            # can exist for it, so nothing in this one can change state: answer before paying
            # for any signature check (replays cost more than votes otherwise). The ack vouches
            # for the slot, not for this certificate's signatures.
            return Confirmation(sender, (recipient or Account(balance=0)) if credit_here else None,
                                ConfirmationAck(order.sender, order.sequence, False))
        check_order_shape(order)
        self.committee.check_certificate(certificate)
        if sender is None:
            # A quorum vouched for this sender, so it exists; this authority only missed its
            # creation (it was credited by a confirmation we have not seen yet).
            sender = Account(balance=0)
        if recipient is None or not credit_here:
            recipient = Account(balance=0)
        if order.sequence > sender.next_sequence:
            raise ProtocolError(
                ErrorCode.SEQUENCE_GAP,
                f"certificate for sequence {order.sequence} but the sender is at {sender.next_sequence}; "
                "send the missing certificates first",
            )
        # The balance may go below zero here, or a credit above the supply: a quorum already
        # checked the funds, and this authority only lags on certificates it will receive later
        # (as in FastPay). A valid certificate is never refused for that; the 128-bit bound
        # cannot be reached (messages.py), it only keeps every stored value representable.
        if not -BALANCE_LIMIT < sender.balance - order.amount or not recipient.balance + order.amount < BALANCE_LIMIT:
            raise ProtocolError(ErrorCode.INVALID_AMOUNT, "a balance would leave the range ±2^127")
        new_sender = Account(sender.balance - order.amount, sender.next_sequence + 1, None)
        new_recipient = replace(recipient, balance=recipient.balance + order.amount) if credit_here else None
        return Confirmation(new_sender, new_recipient, ConfirmationAck(order.sender, order.sequence, True))

    def apply_credit(self, recipient: Account | None, certificate: Certificate) -> Account:
        """The recipient's side of a certificate whose sender another shard of this authority
        holds (and has debited). Trusted: the sibling checked the certificate, and the caller
        checked the sibling's MAC (shards.tag_is_valid). Applied once per certificate: the store
        refuses a certificate it holds already."""
        order = certificate.order
        self.check_shard(order.recipient)
        if recipient is None:
            recipient = Account(balance=0)
        if not recipient.balance + order.amount < BALANCE_LIMIT:
            raise ProtocolError(ErrorCode.INVALID_AMOUNT, "a balance would leave the range ±2^127")
        return replace(recipient, balance=recipient.balance + order.amount)

    def account_info(
        self,
        account_key: bytes,
        account: Account | None,
        sent: tuple[Certificate, ...] = (),
        received: tuple[Certificate, ...] = (),
        received_cursor: int = 0,
    ) -> AccountInfoResponse:
        self.check_shard(account_key)
        if account is None:
            raise ProtocolError(ErrorCode.UNKNOWN_ACCOUNT, f"no account {account_key.hex()}")
        return AccountInfoResponse(
            account_key, account.balance, account.next_sequence, account.pending, sent, received, received_cursor
        )


def check_order_shape(order: TransferOrder) -> None:
    """Refuse orders no honest client can produce, before spending time on signatures."""
    if order.amount <= 0:
        raise ProtocolError(ErrorCode.INVALID_AMOUNT, "amount must be positive")
    if order.amount > MAX_AMOUNT:
        raise ProtocolError(ErrorCode.INVALID_AMOUNT, f"amount exceeds {MAX_AMOUNT}")
    if not 0 <= order.sequence <= MAX_SEQUENCE:
        raise ProtocolError(ErrorCode.MALFORMED, f"sequence outside 0..{MAX_SEQUENCE}")
    if order.sender == order.recipient:
        raise ProtocolError(ErrorCode.INVALID_AMOUNT, "sender and recipient are the same account")
    # Money sent to bytes that are no one's key is gone for good. The sender needs no check
    # here: only an existing account can be debited, and every account entered as a checked
    # genesis key or as a recipient that passed this line.
    if not crypto.is_public_key(order.recipient):
        raise ProtocolError(ErrorCode.INVALID_KEY, f"recipient {order.recipient.hex()} is not an ed25519 public key")
