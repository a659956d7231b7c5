import struct

from orchestrator.air.airspace import Airspace, MediumConfig, Radio, mac_bytes
from orchestrator.air.propagation import Model
from orchestrator.medium import process as medium_process
from orchestrator.medium import hwsim

MACS = [f"02:00:00:00:00:{i:02x}" for i in range(3)]
FAMILY = 0x1F


def kernel_frame(tx: int, dest: bytes, cookie: int = 7, flags: int = 1, rates=((11, 2), (0, 3))) -> memoryview:
    """A HWSIM_CMD_FRAME as the kernel sends it (header, then attributes, cookie padded)."""
    frame = b"\x88\x02\x00\x00" + dest + mac_bytes(MACS[tx]) + dest + b"\x00" * 10
    info = []
    for i in range(4):
        info += rates[i] if i < len(rates) else (-1, 0)
    attrs = b"".join((
        hwsim.nla(hwsim.A_TRANSMITTER, mac_bytes(MACS[tx])), hwsim.nla(hwsim.A_FRAME, frame),
        hwsim.nla(hwsim.A_FLAGS, struct.pack("=I", flags)), hwsim.nla(hwsim.A_FREQ, struct.pack("=I", 2412)),
        hwsim.nla(hwsim.A_TX_INFO, struct.pack("=bBbBbBbB", *info)),
        hwsim.nla(20, b""),  # HWSIM_ATTR_PAD before a u64, as nla_put_u64_64bit may add
        hwsim.nla(hwsim.A_COOKIE, struct.pack("=Q", cookie)),
    ))
    hdr = struct.pack("=IHHIIBBH", 20 + len(attrs), FAMILY, 0, 0, 0, hwsim.HWSIM_CMD_FRAME, 1, 0)
    return memoryview(hdr + attrs)


def decode(msg: bytes) -> tuple[int, dict[int, bytes]]:
    length, family, flags, _, _ = struct.unpack_from("=IHHII", msg)
    assert length == len(msg) and family == FAMILY and flags == hwsim.NLM_F_REQUEST
    return msg[16], {k: bytes(v) for k, v in hwsim.parse_attrs(memoryview(msg), 20, length).items()}


def air():
    return Airspace(MediumConfig(freq=2412, model=Model("free_space"), loss=False,
                                 radios=tuple(Radio(f"n{i}", MACS[i], (100.0 * i, 0.0), 100.0) for i in range(3))))


def test_kernel_frame_decodes_with_its_retry_chain():
    buf = kernel_frame(0, mac_bytes(MACS[1]))
    tx = hwsim.decode_frame(hwsim.parse_attrs(buf, 20, len(buf)))
    assert tx.transmitter == mac_bytes(MACS[0]) and tx.cookie == 7 and tx.freq == 2412 and tx.flags == 1
    assert tx.dest == mac_bytes(MACS[1])
    assert tx.chain(11) == [(11, 2), (0, 3)]
    assert tx.chain(7) == [(7, 2), (0, 3)]  # clamped to a 5 GHz band's 8 rates


def test_a_frame_missing_an_attribute_is_ignored():
    assert hwsim.decode_frame({}) is None


def test_unicast_goes_to_its_receiver_and_the_sender_hears_an_ack():
    buf = kernel_frame(1, mac_bytes(MACS[2]), cookie=99)
    tx = hwsim.decode_frame(hwsim.parse_attrs(buf, 20, len(buf)))
    counters = medium_process.Counters()
    msgs = medium_process.route(air(), hwsim.Codec(FAMILY), tx, lambda: 0.5, 2412, counters)
    assert len(msgs) == 2
    cmd, rx = decode(msgs[0])
    assert cmd == hwsim.HWSIM_CMD_FRAME
    assert rx[hwsim.A_RECEIVER] == mac_bytes(MACS[2]) and rx[hwsim.A_FRAME] == tx.frame
    assert struct.unpack("=I", rx[hwsim.A_RX_RATE])[0] == 11
    assert struct.unpack("=i", rx[hwsim.A_SIGNAL])[0] == -60
    assert struct.unpack("=I", rx[hwsim.A_FREQ])[0] == 2412
    cmd, st = decode(msgs[1])
    assert cmd == hwsim.HWSIM_CMD_TX_INFO_FRAME
    assert st[hwsim.A_TRANSMITTER] == mac_bytes(MACS[1])
    assert struct.unpack("=I", st[hwsim.A_FLAGS])[0] == 1 | hwsim.HWSIM_TX_STAT_ACK
    assert struct.unpack("=Q", st[hwsim.A_COOKIE])[0] == 99
    assert struct.unpack("=bBbBbBbB", st[hwsim.A_TX_INFO]) == (11, 1, -1, 0, -1, 0, -1, 0)
    assert counters.acked == 1 and counters.deliveries == 1 and counters.frames == 1


def test_broadcast_reaches_both_neighbours_and_is_not_acked():
    buf = kernel_frame(1, b"\xff" * 6, flags=2)
    tx = hwsim.decode_frame(hwsim.parse_attrs(buf, 20, len(buf)))
    msgs = medium_process.route(air(), hwsim.Codec(FAMILY), tx, lambda: 0.5, 2412, medium_process.Counters())
    receivers = sorted(decode(m)[1][hwsim.A_RECEIVER] for m in msgs[:-1])
    assert receivers == [mac_bytes(MACS[0]), mac_bytes(MACS[2])]
    _, st = decode(msgs[-1])
    assert struct.unpack("=I", st[hwsim.A_FLAGS])[0] == 2


def test_out_of_range_unicast_reports_every_attempt_unacked():
    buf = kernel_frame(0, mac_bytes(MACS[2]))
    tx = hwsim.decode_frame(hwsim.parse_attrs(buf, 20, len(buf)))
    counters = medium_process.Counters()
    msgs = medium_process.route(air(), hwsim.Codec(FAMILY), tx, lambda: 0.5, 2412, counters)
    assert len(msgs) == 1
    _, st = decode(msgs[0])
    assert struct.unpack("=I", st[hwsim.A_FLAGS])[0] == 1
    assert struct.unpack("=bBbBbBbB", st[hwsim.A_TX_INFO]) == (11, 2, 0, 3, -1, 0, -1, 0)
    assert counters.unacked == 1


def test_a_radio_the_config_does_not_name_still_gets_its_status():
    buf = kernel_frame(0, b"\xff" * 6)
    tx = hwsim.decode_frame(hwsim.parse_attrs(buf, 20, len(buf)))
    tx = hwsim.TxFrame(b"\x02\x99\x99\x99\x99\x99", tx.frame, tx.flags, tx.tx_info, tx.cookie, tx.freq)
    counters = medium_process.Counters()
    msgs = medium_process.route(air(), hwsim.Codec(FAMILY), tx, lambda: 0.5, 2412, counters)
    assert len(msgs) == 1 and counters.unknown == 1  # the kernel's pending queue must not fill


def test_batches_join_messages_up_to_the_limit_and_keep_their_order():
    msgs = [bytes([i]) * 40 for i in range(5)]
    out = medium_process.batches(msgs, limit=100)
    assert out == [msgs[0] + msgs[1], msgs[2] + msgs[3], msgs[4]]
    assert medium_process.batches([b"x" * 300, b"y"], limit=100) == [b"x" * 300, b"y"]  # too big goes alone
    assert medium_process.batches([]) == []


def test_feed_routes_every_frame_of_one_receive_buffer():
    bufs = [bytes(kernel_frame(1, b"\xff" * 6, cookie=1)), bytes(kernel_frame(0, mac_bytes(MACS[1]), cookie=2))]
    joined = bufs[0] + bufs[1]
    counters = medium_process.Counters()
    msgs = medium_process.feed(memoryview(joined), len(joined), air(), hwsim.Codec(FAMILY), lambda: 0.5, counters)
    # the broadcast: two receivers and a status; the unicast: one receiver and a status
    assert [decode(m)[0] for m in msgs] == [hwsim.HWSIM_CMD_FRAME] * 2 + [hwsim.HWSIM_CMD_TX_INFO_FRAME] \
        + [hwsim.HWSIM_CMD_FRAME, hwsim.HWSIM_CMD_TX_INFO_FRAME]
    assert counters.frames == 2 and counters.deliveries == 3 and counters.data == 2


def test_frames_are_counted_by_kind():
    counters = medium_process.Counters()
    for fc, body in ((b"\x80\x00", b""), (b"\xd0\x00", b"\x0f"), (b"\xd0\x00", b"\x0d"), (b"\xb0\x00", b"")):
        frame = fc + b"\x00\x00" + b"\xff" * 6 + mac_bytes(MACS[0]) * 2 + b"\x00\x00" + body
        tx = hwsim.TxFrame(mac_bytes(MACS[0]), frame, 0, bytes(8), 1, 2412)
        medium_process.route(air(), hwsim.Codec(FAMILY), tx, lambda: 0.5, 2412, counters)
    assert (counters.beacons, counters.actions, counters.peering, counters.hwmp, counters.other_mgmt,
            counters.data) == (1, 2, 1, 1, 1, 0)
