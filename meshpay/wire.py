"""The node-to-node binary encoding: versioned, length-prefixed frames with strict decoding.

Frame: u32 big-endian length of the payload, then the payload:
    version u8 | type u8 | request id u32 | body
Bodies are fixed-width big-endian fields (keys 32 bytes, signatures 64, amounts, sequence
numbers and log positions u64, balances i128) and u16-counted lists. Decoding refuses truncated
input, trailing bytes, oversized frames and lists, unknown versions and types, non-canonical
values and integers outside their range (messages.py), always by raising WireError and never
anything else: a value that decodes is one the node can store and compute with.
"""

from __future__ import annotations

import struct

from meshpay.messages import (
    AccountInfoRequest,
    AccountInfoResponse,
    Certificate,
    CertificateLogRequest,
    CertificateLogResponse,
    ConfirmationAck,
    ConfirmationOrder,
    BALANCE_LIMIT,
    MAX_AMOUNT,
    MAX_SEQUENCE,
    ErrorCode,
    ErrorReply,
    Message,
    ShardCredit,
    TransferOrder,
    Vote,
)

VERSION = 1
MAX_FRAME = 1 << 20
MAX_SIGNERS = 256
MAX_CERTIFICATES = 256
MAX_TEXT = 1024

LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">BBI")
_ORDER = struct.Struct(">32s32sQQ64s")
_KEY_SIG = struct.Struct(">32s64s")
_U16 = struct.Struct(">H")
_ACK = struct.Struct(">32sQB")
_INFO_REQ = struct.Struct(">32sQQH")
_INFO_HEAD = struct.Struct(">32s16sQB")
_U64 = struct.Struct(">Q")
_LOG_REQ = struct.Struct(">QHHH")
_LOG_TAIL = struct.Struct(">QQ")

T_TRANSFER_ORDER = 1
T_VOTE = 2
T_CONFIRMATION = 3
T_CONFIRMATION_ACK = 4
T_ACCOUNT_INFO_REQUEST = 5
T_ACCOUNT_INFO_RESPONSE = 6
T_ERROR = 7
T_LOG_REQUEST = 8
T_LOG_RESPONSE = 9
T_SHARD_CREDIT = 10
_TAG = struct.Struct(">32s")
# Shards of one authority (meshpay/shards.py): more than cores is no gain; bounds port + shard.
MAX_SHARDS = 64


class WireError(ValueError):
    """Bytes that are not a valid frame of this protocol version."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: struct.Struct) -> tuple:
        end = self.pos + fmt.size
        if end > len(self.data):
            raise WireError(f"truncated: need {fmt.size} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise WireError(f"truncated: need {size} bytes at offset {self.pos}")
        chunk = bytes(self.data[self.pos:end])
        self.pos = end
        return chunk

    def count(self, limit: int, what: str) -> int:
        (n,) = self.unpack(_U16)
        if n > limit:
            raise WireError(f"too many {what}: {n} > {limit}")
        return n

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise WireError(f"{len(self.data) - self.pos} trailing bytes")


def _check_sizes(*fields: tuple[bytes, int]) -> None:
    # struct's "32s" pads or cuts silently; a key of the wrong size must fail, not be rewritten.
    for value, size in fields:
        if len(value) != size:
            raise WireError(f"field of {len(value)} bytes where {size} are required")


def _put_order(out: list[bytes], order: TransferOrder) -> None:
    _check_sizes((order.sender, 32), (order.recipient, 32), (order.signature, 64))
    out.append(_ORDER.pack(order.sender, order.recipient, order.amount, order.sequence, order.signature))


def _in_range(value: int, high: int, what: str, low: int = 0) -> int:
    if not low <= value <= high:
        raise WireError(f"{what} {value} out of range {low}..{high}")
    return value


def _get_order(r: _Reader) -> TransferOrder:
    sender, recipient, amount, sequence, signature = r.unpack(_ORDER)
    # Zero is in range here: it is a well-formed order the protocol refuses (INVALID_AMOUNT).
    _in_range(amount, MAX_AMOUNT, "amount")
    _in_range(sequence, MAX_SEQUENCE, "sequence")
    return TransferOrder(sender, recipient, amount, sequence, signature)


def _put_vote(out: list[bytes], vote: Vote) -> None:
    _put_order(out, vote.order)
    _check_sizes((vote.authority, 32), (vote.signature, 64))
    out.append(_KEY_SIG.pack(vote.authority, vote.signature))


def _get_vote(r: _Reader) -> Vote:
    order = _get_order(r)
    authority, signature = r.unpack(_KEY_SIG)
    return Vote(order, authority, signature)


def _put_certificate(out: list[bytes], cert: Certificate) -> None:
    if len(cert.signatures) > MAX_SIGNERS:
        raise WireError(f"too many signers: {len(cert.signatures)}")
    _put_order(out, cert.order)
    out.append(_U16.pack(len(cert.signatures)))
    for authority, signature in cert.signatures:
        _check_sizes((authority, 32), (signature, 64))
        out.append(_KEY_SIG.pack(authority, signature))


def certificate_bytes(cert: Certificate) -> bytes:
    """A certificate's encoding inside a frame (what a shard credit's MAC covers)."""
    out: list[bytes] = []
    _put_certificate(out, cert)
    return b"".join(out)


def certificate_size(cert: Certificate) -> int:
    """Bytes a certificate takes inside a frame."""
    return _ORDER.size + _U16.size + _KEY_SIG.size * len(cert.signatures)


def _get_certificate(r: _Reader) -> Certificate:
    order = _get_order(r)
    n = r.count(MAX_SIGNERS, "signers")
    return Certificate(order, tuple(r.unpack(_KEY_SIG) for _ in range(n)))


def _put_certificates(out: list[bytes], certs: tuple[Certificate, ...]) -> None:
    if len(certs) > MAX_CERTIFICATES:
        raise WireError(f"too many certificates: {len(certs)}")
    out.append(_U16.pack(len(certs)))
    for cert in certs:
        _put_certificate(out, cert)


def _get_certificates(r: _Reader) -> tuple[Certificate, ...]:
    n = r.count(MAX_CERTIFICATES, "certificates")
    return tuple(_get_certificate(r) for _ in range(n))


def _encode_body(msg: Message) -> tuple[int, list[bytes]]:
    out: list[bytes] = []
    match msg:
        case TransferOrder():
            _put_order(out, msg)
            return T_TRANSFER_ORDER, out
        case Vote():
            _put_vote(out, msg)
            return T_VOTE, out
        case ConfirmationOrder():
            _put_certificate(out, msg.certificate)
            return T_CONFIRMATION, out
        case ConfirmationAck():
            out.append(_ACK.pack(msg.sender, msg.sequence, 1 if msg.applied else 0))
            return T_CONFIRMATION_ACK, out
        case AccountInfoRequest():
            out.append(_INFO_REQ.pack(msg.account, msg.sent_from, msg.received_after, msg.limit))
            return T_ACCOUNT_INFO_REQUEST, out
        case AccountInfoResponse():
            if not -BALANCE_LIMIT < msg.balance < BALANCE_LIMIT:
                raise WireError(f"balance {msg.balance} out of range")
            balance = msg.balance.to_bytes(16, "big", signed=True)
            out.append(_INFO_HEAD.pack(msg.account, balance, msg.next_sequence, 0 if msg.pending is None else 1))
            if msg.pending is not None:
                _put_vote(out, msg.pending)
            _put_certificates(out, msg.sent)
            _put_certificates(out, msg.received)
            out.append(_U64.pack(msg.received_cursor))
            return T_ACCOUNT_INFO_RESPONSE, out
        case CertificateLogRequest():
            out.append(_LOG_REQ.pack(msg.after, msg.limit, msg.shard, msg.shards))
            return T_LOG_REQUEST, out
        case ShardCredit():
            _put_certificate(out, msg.certificate)
            _check_sizes((msg.tag, 32))
            out.append(msg.tag)
            return T_SHARD_CREDIT, out
        case CertificateLogResponse():
            _put_certificates(out, msg.certificates)
            out.append(_LOG_TAIL.pack(msg.cursor, msg.head))
            return T_LOG_RESPONSE, out
        case ErrorReply():
            text = msg.message.encode("utf-8")[:MAX_TEXT]
            # Cutting may split a multi-byte character; drop the broken tail so decoding stays strict.
            text = text.decode("utf-8", "ignore").encode("utf-8")
            out.append(_U16.pack(int(msg.code)))
            out.append(_U16.pack(len(text)))
            out.append(text)
            return T_ERROR, out
    raise WireError(f"cannot encode {type(msg).__name__}")


def encode_frame(request_id: int, msg: Message) -> bytes:
    """The full frame (length prefix included) carrying `msg` as request `request_id`."""
    try:
        msg_type, parts = _encode_body(msg)
        payload = _HEADER.pack(VERSION, msg_type, request_id) + b"".join(parts)
    except struct.error as exc:
        raise WireError(f"value out of range: {exc}") from None
    if len(payload) > MAX_FRAME:
        raise WireError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> tuple[int, Message]:
    """(request id, message) from a frame payload (the bytes after the length prefix)."""
    if len(payload) > MAX_FRAME:
        raise WireError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    r = _Reader(payload)
    version, msg_type, request_id = r.unpack(_HEADER)
    if version != VERSION:
        raise WireError(f"unsupported wire version {version} (this node speaks {VERSION})")
    msg: Message
    if msg_type == T_TRANSFER_ORDER:
        msg = _get_order(r)
    elif msg_type == T_VOTE:
        msg = _get_vote(r)
    elif msg_type == T_CONFIRMATION:
        msg = ConfirmationOrder(_get_certificate(r))
    elif msg_type == T_CONFIRMATION_ACK:
        sender, sequence, applied = r.unpack(_ACK)
        _in_range(sequence, MAX_SEQUENCE, "sequence")
        if applied > 1:
            raise WireError(f"boolean byte must be 0 or 1, got {applied}")
        msg = ConfirmationAck(sender, sequence, applied == 1)
    elif msg_type == T_ACCOUNT_INFO_REQUEST:
        account, sent_from, received_after, limit = r.unpack(_INFO_REQ)
        msg = AccountInfoRequest(account, _in_range(sent_from, MAX_SEQUENCE, "sent_from"),
                                 _in_range(received_after, MAX_SEQUENCE, "received_after"), limit)
    elif msg_type == T_ACCOUNT_INFO_RESPONSE:
        account, balance_bytes, next_sequence, has_pending = r.unpack(_INFO_HEAD)
        balance = _in_range(int.from_bytes(balance_bytes, "big", signed=True), BALANCE_LIMIT - 1, "balance", 1 - BALANCE_LIMIT)
        _in_range(next_sequence, MAX_SEQUENCE + 1, "next_sequence")
        if has_pending > 1:
            raise WireError(f"boolean byte must be 0 or 1, got {has_pending}")
        pending = _get_vote(r) if has_pending else None
        sent = _get_certificates(r)
        received = _get_certificates(r)
        (cursor,) = r.unpack(_U64)
        _in_range(cursor, MAX_SEQUENCE, "received_cursor")
        msg = AccountInfoResponse(account, balance, next_sequence, pending, sent, received, cursor)
    elif msg_type == T_LOG_REQUEST:
        after, limit, shard, shards = r.unpack(_LOG_REQ)
        _in_range(shards, MAX_SHARDS, "shards", 1)
        msg = CertificateLogRequest(_in_range(after, MAX_SEQUENCE, "after"), limit, _in_range(shard, shards - 1, "shard"), shards)
    elif msg_type == T_SHARD_CREDIT:
        certificate = _get_certificate(r)
        (tag,) = r.unpack(_TAG)
        msg = ShardCredit(certificate, tag)
    elif msg_type == T_LOG_RESPONSE:
        certificates = _get_certificates(r)
        cursor, head = r.unpack(_LOG_TAIL)
        _in_range(cursor, MAX_SEQUENCE, "cursor")
        _in_range(head, MAX_SEQUENCE, "head")
        msg = CertificateLogResponse(certificates, cursor, head)
    elif msg_type == T_ERROR:
        (code,) = r.unpack(_U16)
        try:
            error_code = ErrorCode(code)
        except ValueError:
            raise WireError(f"unknown error code {code}") from None
        length = r.count(MAX_TEXT, "error text bytes")
        try:
            text = r.take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("error text is not UTF-8") from None
        msg = ErrorReply(error_code, text)
    else:
        raise WireError(f"unknown message type {msg_type}")
    r.finish()
    return request_id, msg


def decode_frame(frame: bytes) -> tuple[int, Message]:
    """Decode one whole frame, length prefix included (used by tests and tools)."""
    if len(frame) < LENGTH.size:
        raise WireError("truncated: no length prefix")
    (length,) = LENGTH.unpack_from(frame)
    if length > MAX_FRAME:
        raise WireError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    if len(frame) - LENGTH.size != length:
        raise WireError(f"length prefix says {length} bytes, frame has {len(frame) - LENGTH.size}")
    return decode_payload(frame[LENGTH.size:])
