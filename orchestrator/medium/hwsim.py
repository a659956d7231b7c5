"""mac80211_hwsim's generic netlink messages as the medium speaks them, packed and parsed by hand.

The medium is on the hot path of every frame, so it does not go through pyroute2: HWSIM_CMD_FRAME
and HWSIM_CMD_TX_INFO_FRAME are parsed with struct.unpack_from on one receive buffer and replies
assembled from pre-packed pieces (Codec). Also the socket (open_socket) and the family's id
(resolve_family). Layouts: drivers/net/wireless/mac80211_hwsim.h and include/uapi/linux/netlink.h
(6.1). Errors: MediumError when the kernel has no hwsim family.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from orchestrator.errors import MeshpayError

RCVBUF = 8 << 20

NETLINK_GENERIC = 16
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
GENL_ID_CTRL, CTRL_CMD_GETFAMILY = 16, 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
SO_RCVBUFFORCE = 33

# drivers/net/wireless/mac80211_hwsim.h (6.1)
HWSIM_CMD_REGISTER, HWSIM_CMD_FRAME, HWSIM_CMD_TX_INFO_FRAME = 1, 2, 3
A_RECEIVER, A_TRANSMITTER, A_FRAME, A_FLAGS, A_RX_RATE, A_SIGNAL, A_TX_INFO, A_COOKIE = 1, 2, 3, 4, 5, 6, 7, 8
A_FREQ = 19
HWSIM_TX_STAT_ACK = 4
TX_MAX_RATES = 4  # struct hwsim_tx_rate {s8 idx; u8 count;} x IEEE80211_TX_MAX_RATES

NLHDR = struct.Struct("=IHHII")
GENLHDR = struct.Struct("=BBH")
NLA = struct.Struct("=HH")
U32 = struct.Struct("=I")
S32 = struct.Struct("=i")
_U64 = struct.Struct("=Q")
_TX_INFO = struct.Struct("=" + "bB" * TX_MAX_RATES)
HDR_LEN = NLHDR.size + GENLHDR.size
_HDR = struct.Struct("=IHHIIBBH")  # nlmsghdr + genlmsghdr in one pack
# The fixed-size attributes after the frame, each packed as one struct: no per-attribute calls.
_RX_TAIL = struct.Struct("=HHIHHiHHI")  # RX_RATE u32, SIGNAL s32, FREQ u32
_TX_TAIL = struct.Struct("=HHIHHQHHiHH8s")  # FLAGS u32, COOKIE u64, SIGNAL s32, TX_INFO 8 bytes


def nla(kind: int, payload: bytes) -> bytes:
    pad = -len(payload) % 4
    return NLA.pack(4 + len(payload), kind) + payload + b"\0" * pad


def parse_attrs(buf: memoryview, start: int, end: int) -> dict[int, memoryview]:
    attrs = {}
    while start + 4 <= end:
        length, kind = NLA.unpack_from(buf, start)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = buf[start + 4:start + length]
        start += (length + 3) & ~3
    return attrs


@dataclass(frozen=True)
class TxFrame:
    """One frame a radio transmitted, as the kernel reports it."""

    transmitter: bytes
    frame: bytes
    flags: int
    tx_info: bytes
    cookie: int
    freq: int | None

    @property
    def dest(self) -> bytes:
        return self.frame[4:10]  # 802.11 addr1

    def chain(self, max_rate: int) -> list[tuple[int, int]]:
        """The retry chain [(rate index, attempts)] mac80211 asked for, clamped to the band."""
        raw = _TX_INFO.unpack(self.tx_info)
        return [(min(raw[i], max_rate), raw[i + 1]) for i in range(0, 2 * TX_MAX_RATES, 2)
                if raw[i] >= 0 and raw[i + 1] > 0]


def decode_frame(attrs: dict[int, memoryview]) -> TxFrame | None:
    """A HWSIM_CMD_FRAME from the kernel; None when an attribute the medium needs is missing."""
    try:
        return TxFrame(
            transmitter=bytes(attrs[A_TRANSMITTER]), frame=bytes(attrs[A_FRAME]),
            flags=U32.unpack(attrs[A_FLAGS])[0], tx_info=bytes(attrs[A_TX_INFO][:_TX_INFO.size]),
            cookie=_U64.unpack(attrs[A_COOKIE])[0],
            freq=U32.unpack(attrs[A_FREQ])[0] if A_FREQ in attrs else None,
        )
    except (KeyError, struct.error):
        return None


def encode_tx_info(used: tuple[tuple[int, int], ...]) -> bytes:
    flat: list[int] = []
    for i in range(TX_MAX_RATES):
        flat += used[i] if i < len(used) else (-1, 0)
    return _TX_INFO.pack(*flat)


class Codec:
    """Builds the two messages the medium sends, for one family id."""

    def __init__(self, family: int) -> None:
        self.family = family
        self.seq = 0
        self._mac_attr: dict[tuple[int, bytes], bytes] = {}

    def _msg(self, cmd: int, body: bytes, flags: int = NLM_F_REQUEST) -> bytes:
        self.seq += 1
        return _HDR.pack(HDR_LEN + len(body), self.family, flags, self.seq, 0, cmd, 1, 0) + body

    def mac(self, kind: int, mac: bytes) -> bytes:
        key = (kind, mac)
        attr = self._mac_attr.get(key)
        if attr is None:
            attr = self._mac_attr[key] = nla(kind, mac)
        return attr

    def rx(self, receiver: bytes, frame: bytes, rate: int, signal_dbm: int, freq: int,
           frame_attr: bytes | None = None) -> bytes:
        """`frame_attr` is nla(A_FRAME, frame) when the caller made it once for every receiver."""
        return self._msg(HWSIM_CMD_FRAME, b"".join((
            self.mac(A_RECEIVER, receiver), frame_attr or nla(A_FRAME, frame),
            _RX_TAIL.pack(8, A_RX_RATE, rate, 8, A_SIGNAL, signal_dbm, 8, A_FREQ, freq))))

    def tx_status(self, tx: TxFrame, acked: bool, signal_dbm: int, used: tuple[tuple[int, int], ...]) -> bytes:
        flags = tx.flags | HWSIM_TX_STAT_ACK if acked else tx.flags
        return self._msg(HWSIM_CMD_TX_INFO_FRAME, self.mac(A_TRANSMITTER, tx.transmitter) + _TX_TAIL.pack(
            8, A_FLAGS, flags, 12, A_COOKIE, tx.cookie, 8, A_SIGNAL, signal_dbm, 12, A_TX_INFO, encode_tx_info(used)))

    def register(self) -> bytes:
        return self._msg(HWSIM_CMD_REGISTER, b"", NLM_F_REQUEST | NLM_F_ACK)



class MediumError(MeshpayError):
    """The medium cannot take hwsim's frames (no hwsim family, another medium registered); the
    message says what to do. Raised in the medium process, which logs it and exits 1."""


def open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    sock.bind((0, 0))
    try:  # root may exceed net.core.rmem_max: beacons of 30 radios arrive in bursts
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.connect((0, 0))
    return sock


def request(sock: socket.socket, msg: bytes, seq: int) -> list[dict[int, memoryview]]:
    """Send one request and collect replies until its ack; raises on a netlink error."""
    want_ack = bool(NLHDR.unpack_from(msg)[2] & NLM_F_ACK)
    sock.send(msg)
    replies = []
    while True:
        data = memoryview(sock.recv(65536))
        pos = 0
        while pos + NLHDR.size <= len(data):
            length, kind, _, rseq, _ = NLHDR.unpack_from(data, pos)
            if rseq == seq:
                if kind == NLMSG_ERROR:
                    code = S32.unpack_from(data, pos + 16)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return replies
                replies.append(parse_attrs(data, pos + HDR_LEN, pos + length))
                if not want_ack:
                    return replies
            pos += (length + 3) & ~3


def resolve_family(sock: socket.socket, name: str = "MAC80211_HWSIM") -> int:
    ctrl = Codec(GENL_ID_CTRL)
    msg = ctrl._msg(CTRL_CMD_GETFAMILY, nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"))
    try:
        replies = request(sock, msg, ctrl.seq)
    except OSError as err:
        raise MediumError(f"the kernel has no {name} family ({err}): "
                          "`modprobe mac80211_hwsim radios=0` first") from None
    return struct.unpack_from("=H", replies[0][CTRL_ATTR_FAMILY_ID])[0]
