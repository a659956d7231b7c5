import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshpay import wire
from meshpay.messages import (
    AccountInfoRequest,
    AccountInfoResponse,
    BALANCE_LIMIT,
    MAX_AMOUNT,
    MAX_SEQUENCE,
    Certificate,
    CertificateLogRequest,
    CertificateLogResponse,
    ConfirmationAck,
    ConfirmationOrder,
    ErrorCode,
    ErrorReply,
    TransferOrder,
    Vote,
)

from meshpay_helpers import World

keys = st.binary(min_size=32, max_size=32)
sigs = st.binary(min_size=64, max_size=64)
seqs = st.integers(min_value=0, max_value=MAX_SEQUENCE)
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)
orders = st.builds(TransferOrder, keys, keys, amounts, seqs, sigs)
votes = st.builds(Vote, orders, keys, sigs)
certs = st.builds(Certificate, orders, st.lists(st.tuples(keys, sigs), max_size=5).map(tuple))
cert_lists = st.lists(certs, max_size=3).map(tuple)
messages = st.one_of(
    orders,
    votes,
    st.builds(ConfirmationOrder, certs),
    st.builds(ConfirmationAck, keys, seqs, st.booleans()),
    st.builds(AccountInfoRequest, keys, seqs, seqs, st.integers(0, 65535)),
    st.builds(CertificateLogRequest, seqs, st.integers(0, 65535)),
    st.builds(CertificateLogResponse, cert_lists, seqs, seqs),
    st.builds(
        AccountInfoResponse,
        keys,
        st.integers(-BALANCE_LIMIT + 1, BALANCE_LIMIT - 1),
        st.integers(0, MAX_SEQUENCE + 1),
        st.none() | votes,
        cert_lists,
        cert_lists,
        seqs,
    ),
    st.builds(ErrorReply, st.sampled_from(list(ErrorCode)), st.text(max_size=200)),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), messages)
def test_round_trip(request_id, msg):
    assert wire.decode_frame(wire.encode_frame(request_id, msg)) == (request_id, msg)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_wire_error(data):
    try:
        wire.decode_payload(data)
    except wire.WireError:
        pass
    try:
        wire.decode_frame(data)
    except wire.WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_mutated_frames_only_raise_wire_error(msg, data):
    frame = bytearray(wire.encode_frame(1, msg))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    try:
        wire.decode_frame(bytes(frame))
    except wire.WireError:
        pass


def _frame():
    w = World()
    return wire.encode_frame(7, ConfirmationOrder(w.certificate(w.order())))


def test_truncated_frames_are_rejected():
    frame = _frame()
    for cut in range(len(frame)):
        with pytest.raises(wire.WireError):
            wire.decode_frame(frame[:cut])


def test_trailing_bytes_are_rejected():
    payload = _frame()[4:]
    with pytest.raises(wire.WireError, match="trailing"):
        wire.decode_payload(payload + b"\x00")


def test_unknown_version_and_type_are_rejected():
    payload = bytearray(_frame()[4:])
    payload[0] = 2
    with pytest.raises(wire.WireError, match="version"):
        wire.decode_payload(bytes(payload))
    payload[0] = wire.VERSION
    payload[1] = 99
    with pytest.raises(wire.WireError, match="type"):
        wire.decode_payload(bytes(payload))


def test_oversized_frames_and_lists_are_rejected():
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.decode_frame(struct.pack(">I", wire.MAX_FRAME + 1) + b"\x00" * 16)
    w = World()
    order = w.order()
    head = struct.pack(">BBI", wire.VERSION, wire.T_CONFIRMATION, 1)
    body = wire.encode_frame(1, order)[4 + 6:] + struct.pack(">H", wire.MAX_SIGNERS + 1)
    with pytest.raises(wire.WireError, match="too many signers"):
        wire.decode_payload(head + body)


def test_non_canonical_values_are_rejected():
    payload = bytearray(wire.encode_frame(1, ConfirmationAck(b"\x01" * 32, 3, True))[4:])
    payload[-1] = 2
    with pytest.raises(wire.WireError, match="boolean"):
        wire.decode_payload(bytes(payload))
    err = bytearray(wire.encode_frame(1, ErrorReply(ErrorCode.REFUSED, "x"))[4:])
    err[6:8] = struct.pack(">H", 999)
    with pytest.raises(wire.WireError, match="error code"):
        wire.decode_payload(bytes(err))


def test_encoding_refuses_out_of_range_values():
    w = World()
    order = w.order()
    import dataclasses

    with pytest.raises(wire.WireError):
        wire.encode_frame(1, dataclasses.replace(order, amount=2**64))


def test_long_error_text_is_cut_on_a_character_boundary():
    _, msg = wire.decode_frame(wire.encode_frame(1, ErrorReply(ErrorCode.REFUSED, "é" * 2000)))
    assert isinstance(msg, ErrorReply) and len(msg.message.encode()) <= wire.MAX_TEXT


def test_encoding_refuses_wrongly_sized_fields():
    w = World()
    import dataclasses

    with pytest.raises(wire.WireError):
        wire.encode_frame(1, dataclasses.replace(w.order(), sender=b"\x01" * 31))


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 7), st.binary(max_size=700))
def test_random_bodies_behind_a_valid_header_only_raise_wire_error(msg_type, body):
    # Random bytes rarely pass the header; this sends them straight into each body decoder.
    try:
        wire.decode_payload(struct.pack(">BBI", wire.VERSION, msg_type, 1) + body)
    except wire.WireError:
        pass


def _frames_with_integer_fields() -> list[tuple[str, bytes, int]]:
    """(field, a valid frame, offset of that u64 field in the frame) for every u64 field."""
    w = World()
    order = w.order()
    cert = w.certificate(order)
    body = wire.LENGTH.size + 6  # length prefix, then version, type, request id
    info = wire.encode_frame(1, AccountInfoResponse(order.sender, 5, 1, None, (), (), 3))
    log_reply = wire.encode_frame(1, CertificateLogResponse((cert,), 1, 1))
    return [
        ("TransferOrder.amount", wire.encode_frame(1, order), body + 64),
        ("TransferOrder.sequence", wire.encode_frame(1, order), body + 72),
        ("Vote.order.amount", wire.encode_frame(1, Vote(order, order.sender, order.signature)), body + 64),
        ("Vote.order.sequence", wire.encode_frame(1, Vote(order, order.sender, order.signature)), body + 72),
        ("ConfirmationOrder.amount", wire.encode_frame(1, ConfirmationOrder(cert)), body + 64),
        ("ConfirmationOrder.sequence", wire.encode_frame(1, ConfirmationOrder(cert)), body + 72),
        ("ConfirmationAck.sequence", wire.encode_frame(1, ConfirmationAck(order.sender, 1, True)), body + 32),
        ("AccountInfoRequest.sent_from", wire.encode_frame(1, AccountInfoRequest(order.sender, 1, 2, 3)), body + 32),
        ("AccountInfoRequest.received_after", wire.encode_frame(1, AccountInfoRequest(order.sender, 1, 2, 3)), body + 40),
        ("AccountInfoResponse.next_sequence", info, body + 48),
        ("AccountInfoResponse.received_cursor", info, len(info) - 8),
        ("CertificateLogRequest.after", wire.encode_frame(1, CertificateLogRequest(1, 5)), body),
        ("CertificateLogResponse.cursor", log_reply, len(log_reply) - 16),
        ("CertificateLogResponse.head", log_reply, len(log_reply) - 8),
    ]


@pytest.mark.parametrize("value", [2**63, 2**64 - 1])
def test_every_u64_field_out_of_range_is_malformed(value):
    for field, frame, offset in _frames_with_integer_fields():
        wire.decode_frame(frame)  # the untouched frame is valid
        bad = frame[:offset] + value.to_bytes(8, "big") + frame[offset + 8:]
        with pytest.raises(wire.WireError, match="out of range"):
            wire.decode_frame(bad)
        print(field, "refused")


@pytest.mark.parametrize("field", ["amount", "sequence"])
def test_2_to_the_64_cannot_be_encoded(field):
    import dataclasses

    order = dataclasses.replace(World().order(), **{field: 2**64})
    with pytest.raises(wire.WireError):
        wire.encode_frame(1, order)


def test_balance_at_the_128_bit_limit_is_malformed():
    frame = wire.encode_frame(1, AccountInfoResponse(b"k" * 32, 0, 1, None, (), (), 3))
    offset = wire.LENGTH.size + 6 + 32
    bad = frame[:offset] + (-BALANCE_LIMIT).to_bytes(16, "big", signed=True) + frame[offset + 16:]
    with pytest.raises(wire.WireError, match="out of range"):
        wire.decode_frame(bad)
    with pytest.raises(wire.WireError):
        wire.encode_frame(1, AccountInfoResponse(b"k" * 32, BALANCE_LIMIT, 1, None, (), (), 3))
