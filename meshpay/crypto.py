"""ed25519 keys and signatures.

Everything that is signed is prefixed with a domain tag by the caller (see messages.py), so a
client's order signature can never be replayed as an authority vote or the other way round.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nacl.bindings import crypto_core_ed25519_is_valid_point

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


class CryptoError(ValueError):
    """A key or seed that is not valid ed25519 material."""


class KeyPair:
    """An ed25519 signing key built from a 32-byte seed."""

    __slots__ = ("_private", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise CryptoError(f"ed25519 seed must be {SEED_SIZE} bytes, got {len(seed)}")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> "KeyPair":
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def from_hex(cls, seed_hex: str) -> "KeyPair":
        try:
            seed = bytes.fromhex(seed_hex)
        except ValueError as exc:
            raise CryptoError(f"seed is not hex: {exc}") from None
        return cls(seed)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def derive_secret(self, domain: bytes) -> bytes:
        """SHA-256 of `domain` and the seed: a 32-byte secret only holders of the seed can make
        (the MAC key of an authority's shards, shards.py)."""
        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return hashlib.sha256(domain + seed).digest()


@lru_cache(maxsize=65536)
def _load_public_key(public_key: bytes) -> Ed25519PublicKey | None:
    # Parsing a point costs about as much as a verification; committees and active accounts are
    # few, so caching the parsed key roughly halves the cost of checking a vote.
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return None


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True when `signature` is a valid ed25519 signature of `data` by `public_key`."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    key = _load_public_key(bytes(public_key))
    if key is None:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@lru_cache(maxsize=65536)
def is_public_key(raw: bytes) -> bool:
    """True when `raw` is a key someone can hold: 32 bytes that decode to a point of the curve
    in canonical form (RFC 8032 section 5.1.3), in the prime-order subgroup and not of small
    order, as every ed25519 public key derived from a secret is (libsodium's
    crypto_core_ed25519_is_valid_point, about 40 us; cached per key).

    Why not `Ed25519PublicKey.from_public_bytes`: OpenSSL takes any 32 bytes there and fails
    only at verification, so half of all random strings (no point at all) would pass."""
    return len(raw) == PUBLIC_KEY_SIZE and bool(crypto_core_ed25519_is_valid_point(bytes(raw)))


def parse_public_key(text: str) -> bytes:
    """A public key from its hex form, checked to be a valid ed25519 public key (is_public_key)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise CryptoError(f"public key is not hex: {text!r}") from None
    if not is_public_key(raw) or _load_public_key(raw) is None:
        raise CryptoError(f"not an ed25519 public key: {text!r}")
    return raw
