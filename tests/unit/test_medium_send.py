"""The medium's send path against a fake netlink socket: a refused, failing or short send loses no
message and duplicates none; what the kernel refuses is counted by kind; a radio that refused a
delivery is not reported as having acknowledged the next frame sent to it."""

import errno
import struct
from dataclasses import replace

import pytest

from orchestrator.air.airspace import mac_bytes
from orchestrator.medium import process as medium_process
from orchestrator.medium import hwsim

from test_medium import FAMILY, MACS, air, decode, kernel_frame


def messages(count: int, size: int = 40) -> list[bytes]:
    """Netlink messages of `size` bytes, each carrying its index in its sequence number."""
    return [struct.pack("=IHHII", size, FAMILY, 1, i, 0) + bytes(size - 16) for i in range(count)]


def seqs(packets: list[bytes]) -> list[int]:
    out = []
    for packet in packets:
        pos = 0
        for end in medium_process.message_ends(packet):
            out.append(struct.unpack_from("=I", packet, pos + 8)[0])
            pos = end
    return out


class FakeSocket:
    """The kernel's side of send(): `refuse(data)` returns an errno to refuse with, or the count of
    bytes to take (the whole length unless it says otherwise)."""

    def __init__(self, refuse):
        self.refuse = refuse
        self.taken: list[bytes] = []
        self.calls = 0

    def send(self, data: bytes) -> int:
        self.calls += 1
        verdict = self.refuse(data, self.calls)
        if isinstance(verdict, OSError):
            raise verdict
        taken = len(data) if verdict is None else verdict
        self.taken.append(data[:taken])
        return taken


def sender_for(sock: FakeSocket, counters: medium_process.Counters, clock=None):
    t = [0.0]

    def sleep(s):
        t[0] += s

    return medium_process.Sender(sock.send, counters, sleep=sleep, clock=clock or (lambda: t[0])), t


def test_a_batch_refused_for_a_moment_is_sent_again_whole_or_in_parts():
    # the kernel refuses any send over 100 bytes with ENOBUFS, and the 5th and 6th of any size
    sock = FakeSocket(lambda data, n: OSError(errno.ENOBUFS, "no buffer") if len(data) > 100 or n in (5, 6)
                      else None)
    counters = medium_process.Counters()
    sender, _ = sender_for(sock, counters)
    sender.send(messages(10))
    assert seqs(sock.taken) == list(range(10))  # every message once, in order
    assert counters.lost == 0 and counters.send_splits > 0 and counters.send_retries == 2


def test_a_short_send_goes_on_from_the_first_message_not_sent_whole():
    # the kernel takes 90 bytes of each send: two 40-byte messages and half of a third
    sock = FakeSocket(lambda data, n: min(len(data), 90))
    counters = medium_process.Counters()
    sender, _ = sender_for(sock, counters)
    sender.send(messages(7))
    whole = [data[:medium_process.message_ends(data)[-1]] for data in sock.taken if medium_process.message_ends(data)]
    assert seqs(whole) == list(range(7))
    assert counters.lost == 0


def test_eagain_and_enomem_are_retried_too():
    for code in (errno.EAGAIN, errno.ENOMEM):
        sock = FakeSocket(lambda data, n, code=code: OSError(code, "later") if n <= 3 else None)
        counters = medium_process.Counters()
        sender, _ = sender_for(sock, counters)
        sender.send(messages(1))
        assert seqs(sock.taken) == [0] and counters.send_retries == 3 and counters.lost == 0


def test_a_message_the_kernel_never_takes_is_counted_lost_and_the_rest_still_go():
    # message 3 is refused forever; the others whenever they come alone or with others
    def refuse(data, n):
        return OSError(errno.ENOBUFS, "no buffer") if 3 in seqs([data]) else None

    sock = FakeSocket(refuse)
    counters = medium_process.Counters()
    sender, t = sender_for(sock, counters)
    sender.send(messages(6))
    assert seqs(sock.taken) == [0, 1, 2, 4, 5]
    assert counters.lost == 1 and counters.medium_lost == 1
    assert t[0] >= medium_process.SEND_RETRY_S  # it was retried for the whole retry time first


def test_a_refusal_that_is_not_for_a_moment_is_not_retried():
    sock = FakeSocket(lambda data, n: OSError(errno.EINVAL, "bad"))
    counters = medium_process.Counters()
    sender, _ = sender_for(sock, counters)
    sender.send(messages(2))
    assert counters.lost == 2 and counters.send_retries == 0 and sock.calls == 3  # the pair, then each


def test_message_ends_walks_padded_messages():
    msgs = messages(3, size=22)  # padded to 24 when joined
    joined = b"".join(m + b"\0\0" for m in msgs)
    assert medium_process.message_ends(joined) == [24, 48, 72]


def error_reply(refused: bytes, code: int = -errno.EINVAL) -> bytes:
    """An NLMSG_ERROR as the kernel sends it without NETLINK_CAP_ACK: the refused message echoed."""
    body = struct.pack("=i", code) + refused
    return struct.pack("=IHHII", 16 + len(body), hwsim.NLMSG_ERROR, 0, 1, 0) + body


def test_a_refused_delivery_makes_its_receiver_deaf_and_unicast_to_it_unacknowledged():
    codec = hwsim.Codec(FAMILY)
    refused = codec.rx(mac_bytes(MACS[2]), b"\x08" * 30, 0, -50, 2412)
    late = codec.tx_status(hwsim.TxFrame(mac_bytes(MACS[1]), b"\x08" * 30, 0, bytes(8), 5, 2412), True, -50,
                           ((0, 1),))
    buf = error_reply(refused) + error_reply(late)
    counters, deaf = medium_process.Counters(), {}
    assert medium_process.feed(memoryview(buf), len(buf), air(), codec, lambda: 0.5, counters, deaf) == []
    assert (counters.kernel_errors, counters.refused, counters.late_status) == (2, 1, 1)
    assert set(deaf) == {mac_bytes(MACS[2])}
    # n1 sends to n2, in range: with n2 deaf, no delivery and no ACK (as out of range)
    frame = kernel_frame(1, mac_bytes(MACS[2]))
    msgs = medium_process.feed(frame, len(frame), air(), codec, lambda: 0.5, counters, deaf)
    assert [decode(m)[0] for m in msgs] == [hwsim.HWSIM_CMD_TX_INFO_FRAME]
    flags = struct.unpack("=I", decode(msgs[0])[1][hwsim.A_FLAGS])[0]
    assert not flags & hwsim.HWSIM_TX_STAT_ACK
    assert counters.unacked == 1 and counters.dropped_range == 1
    # a broadcast from n1 skips the deaf n2 and still reaches n0
    frame = kernel_frame(1, b"\xff" * 6, flags=2)
    msgs = medium_process.feed(frame, len(frame), air(), codec, lambda: 0.5, counters, deaf)
    assert [decode(m)[1][hwsim.A_RECEIVER] for m in msgs[:-1]] == [mac_bytes(MACS[0])]


def lossy_air():
    """The three radios of `air()` with every attempt on every link lost."""
    a = air()
    a.links = {tx: tuple(replace(link, loss=(1.0,) * len(link.loss)) for link in links)
               for tx, links in a.links.items()}
    a.by_dest = {tx: {link.mac: link for link in links} for tx, links in a.links.items()}
    return a


@pytest.mark.parametrize(("space", "dest", "expect"), [
    (air, 2, (0, 0)),  # n1 -> n2, in range, no loss: delivered
    (lossy_air, 2, (0, 1)),  # in range, every attempt lost by its draw: dropped by loss
    (air, 0, (0, 0)),
])
def test_model_drops_are_counted_apart_from_medium_losses(space, dest, expect):
    frame = kernel_frame(1, mac_bytes(MACS[dest]))
    counters = medium_process.Counters()
    medium_process.feed(frame, len(frame), space(), hwsim.Codec(FAMILY), lambda: 0.5, counters)
    assert (counters.dropped_range, counters.dropped_loss) == expect
    assert counters.medium_lost == 0


def test_out_of_range_unicast_is_a_range_drop_and_broadcast_losses_count_per_receiver():
    counters = medium_process.Counters()
    frame = kernel_frame(0, mac_bytes(MACS[2]))  # n0 -> n2: 200 m, out of range
    medium_process.feed(frame, len(frame), air(), hwsim.Codec(FAMILY), lambda: 0.5, counters)
    assert (counters.dropped_range, counters.dropped_loss, counters.model_dropped) == (1, 0, 1)
    frame = kernel_frame(1, b"\xff" * 6, flags=2)  # n1's two neighbours both lose it
    medium_process.feed(frame, len(frame), lossy_air(), hwsim.Codec(FAMILY), lambda: 0.5, counters)
    assert counters.dropped_loss == 2 and counters.medium_lost == 0
