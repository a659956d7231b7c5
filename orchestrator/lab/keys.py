"""Key material a lab hands its nodes: ed25519 seeds and the API bearer token."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def new_seed() -> str:
    return secrets.token_hex(32)


def public_key(seed_hex: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def new_token() -> str:
    return secrets.token_urlsafe(32)
