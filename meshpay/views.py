"""JSON views of node state for the REST API, and the error it answers refusals with.

Shapes: a certificate as `certificate_json`, an account as `account_json`, a transfer id as
`<sender key hex>-<sequence>` (TRANSFER_ID_PATTERN). Used by both roles' services and api.py.
"""

from __future__ import annotations

import re
from typing import Any

from meshpay.authority import Account
from meshpay.config import NodeConfig
from meshpay.messages import MAX_SEQUENCE, Certificate
from meshpay.store import Store


class NodeError(Exception):
    """A request the node refuses; `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def certificate_json(cert: Certificate, config: NodeConfig) -> dict[str, Any]:
    o = cert.order
    return {
        "id": o.transfer_id,
        "sender": o.sender.hex(),
        "recipient": o.recipient.hex(),
        "amount": o.amount,
        "sequence": o.sequence,
        "order_signature": o.signature.hex(),
        "signatures": [
            {"authority": config.account_name(a), "public_key": a.hex(), "signature": s.hex()}
            for a, s in cert.signatures
        ],
    }


def account_json(key: bytes, account: Account, config: NodeConfig) -> dict[str, Any]:
    pending = account.pending
    return {
        "id": key.hex(),
        "name": config.account_name(key),
        "balance": account.balance,
        "next_sequence": account.next_sequence,
        "pending": None
        if pending is None
        else {"sequence": pending.order.sequence, "recipient": pending.order.recipient.hex(), "amount": pending.order.amount},
    }


TRANSFER_ID_PATTERN = "^[0-9a-fA-F]{64}-[0-9]{1,19}$"
TRANSFER_ID_TEXT = f"<sender public key, 64 hex digits>-<sequence, 0..{MAX_SEQUENCE}>"


def parse_transfer_id(transfer_id: str) -> tuple[bytes, int]:
    """(sender key, sequence) from `<64 hex digits>-<decimal sequence>`: NodeError 400 when the
    id does not have that shape, 404 when the sequence is past MAX_SEQUENCE (no transfer can
    have it; the id matches the published pattern, so it is not malformed)."""
    if re.fullmatch(TRANSFER_ID_PATTERN, transfer_id) is None:
        raise NodeError(400, f"transfer id is {TRANSFER_ID_TEXT}, got {transfer_id[:200]!r}")
    sender, _, sequence = transfer_id.partition("-")
    if int(sequence) > MAX_SEQUENCE:
        raise NodeError(404, f"no transfer has sequence {sequence}: sequences end at {MAX_SEQUENCE}")
    return bytes.fromhex(sender), int(sequence)


def certificate_record(store: Store, config: NodeConfig, transfer_id: str) -> dict[str, Any]:
    cert = store.certificate(*parse_transfer_id(transfer_id))
    if cert is None:
        raise NodeError(404, f"no transfer {transfer_id} known to {config.name}")
    return {"id": transfer_id, "outcome": "confirmed", "certificate": certificate_json(cert, config)}

