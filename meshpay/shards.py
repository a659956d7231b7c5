"""FastPay shards: one authority as several processes, accounts partitioned by key.

As in the FastPay paper (section 5) and its reference implementation, an authority with
`shards` shards runs one process per shard behind one identity (one signing key) and one host;
shard k listens on the authority's wire port + k. An account belongs to exactly one shard,
`shard_of(key, shards)`, which alone holds its balance, sequence and lock, so shards never share
state and each can have a core to itself:
- a transfer order, a confirmation and an account-info request go to the shard of the account
  they name (the order's sender, the certificate's sender, the account asked about); a shard
  refuses the others with WRONG_SHARD;
- a confirmation is applied by the sender's shard; when the recipient lives in another shard, the
  credit is forwarded to it as a `ShardCredit` (the reference implementation's cross-shard
  `UpdateRecipient` request), durably: the debit and the pending forward commit together.

A shard trusts a credit from a sibling without checking the certificate's signatures again (the
sibling did), so the credit carries a MAC under a key only the authority's processes derive
(from its seed): anyone else on the mesh can reach the shard's port but cannot forge one.
"""

from __future__ import annotations

import hashlib
import hmac

from meshpay import wire
from meshpay.crypto import KeyPair
from meshpay.messages import AccountInfoRequest, Certificate, ConfirmationOrder, Message, TransferOrder
from meshpay.wire import MAX_SHARDS

__all__ = ["MAX_SHARDS", "credit_tag", "link_key", "routing_key", "shard_of", "tag_is_valid"]
_LINK_DOMAIN = b"meshpay/shard-link/v1\x00"


def shard_of(key: bytes, shards: int) -> int:
    """The shard (0 ..= shards-1) that holds account `key` at an authority of `shards` shards.

    Public keys are encodings of curve points derived from secret seeds, uniform in their first
    bytes, so the first 8 bytes taken as a number spread accounts evenly without hashing.
    """
    if shards == 1:
        return 0
    return int.from_bytes(key[:8], "big") % shards


def routing_key(msg: Message) -> bytes | None:
    """The account whose shard must get `msg`, or None when any shard may (a log request)."""
    if isinstance(msg, TransferOrder):
        return msg.sender
    if isinstance(msg, ConfirmationOrder):
        return msg.certificate.order.sender
    if isinstance(msg, AccountInfoRequest):
        return msg.account
    return None


def link_key(keypair: KeyPair) -> bytes:
    """The MAC key sibling shards share: derived from the authority's seed, which only they hold."""
    return keypair.derive_secret(_LINK_DOMAIN)


def credit_tag(key: bytes, certificate: Certificate) -> bytes:
    """HMAC-SHA256 (32 bytes) of the certificate's wire encoding under `key` (link_key)."""
    return hmac.new(key, wire.certificate_bytes(certificate), hashlib.sha256).digest()


def tag_is_valid(key: bytes, certificate: Certificate, tag: bytes) -> bool:
    return hmac.compare_digest(credit_tag(key, certificate), tag)
