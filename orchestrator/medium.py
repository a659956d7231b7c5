"""The lab's wireless medium: `python -m orchestrator.medium --lab-dir DIR`, run in the lab's
medium netns (plan.medium_netns).

It registers with mac80211_hwsim (HWSIM_CMD_REGISTER). From then on the kernel hands it every frame
the lab's radios transmit (HWSIM_CMD_FRAME) instead of copying each frame to every radio; it
delivers a frame (HWSIM_CMD_FRAME to the receiver) only to radios in range, with the signal of the
path-loss model and a loss drawn from the SNR (orchestrator/airspace.py decides), then reports the
outcome to the sender (HWSIM_CMD_TX_INFO_FRAME: acknowledged or not, attempts used), which is what
lets mac80211 retry, adapt its rate and notice a peer is gone.

hwsim scopes a medium by network namespace: it takes over the radios created from the netns it
registers in (their "netgroup"), wherever their phys were moved later. `up` creates the lab's radios
from the medium's netns, so two labs on one kernel never see each other's frames. If this process
dies, the kernel silently falls back to a perfect medium for those radios: `status` checks.

Hot path: one netlink socket, attributes parsed with struct.unpack_from on one receive buffer,
replies assembled from pre-packed pieces; the lab's configuration (medium.json) is re-read only when
its mtime changes. Counters go to medium-stats.json every STATS_INTERVAL_S.

Moving radios (a topology's `mobility:`): every MOBILITY_STEP_S the medium puts them where their
trajectories have them at this wall-clock time (airspace.Movers) and re-computes who hears whom;
their positions, and the time they are for, go to medium-stats.json with the counters.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.airspace import Airspace, MediumConfig, Movers, config_path, moving_positions, read_config

log = logging.getLogger("orchestrator.medium")

STATS_FILE = "medium-stats.json"
STATS_INTERVAL_S = 2.0
RELOAD_CHECK_S = 0.25
# A client walking at 5 m/s moves 2.5 m between steps: small next to a 100 m range.
MOBILITY_STEP_S = 0.5
RCVBUF = 8 << 20
# At most this many messages per wake-up: a saturated medium must still reload and report.
DRAIN_BATCH = 256
# Well under the socket's send buffer (net.core.wmem_default, 208 KiB), which bounds one send.
SEND_BATCH_BYTES = 64 << 10

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

_NLHDR = struct.Struct("=IHHII")
_GENLHDR = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
_U64 = struct.Struct("=Q")
_TX_INFO = struct.Struct("=" + "bB" * TX_MAX_RATES)
HDR_LEN = _NLHDR.size + _GENLHDR.size
_HDR = struct.Struct("=IHHIIBBH")  # nlmsghdr + genlmsghdr in one pack
# The fixed-size attributes after the frame, each packed as one struct: no per-attribute calls.
_RX_TAIL = struct.Struct("=HHIHHiHHI")  # RX_RATE u32, SIGNAL s32, FREQ u32
_TX_TAIL = struct.Struct("=HHIHHQHHiHH8s")  # FLAGS u32, COOKIE u64, SIGNAL s32, TX_INFO 8 bytes


def nla(kind: int, payload: bytes) -> bytes:
    pad = -len(payload) % 4
    return _NLA.pack(4 + len(payload), kind) + payload + b"\0" * pad


def parse_attrs(buf: memoryview, start: int, end: int) -> dict[int, memoryview]:
    attrs = {}
    while start + 4 <= end:
        length, kind = _NLA.unpack_from(buf, start)
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
            flags=_U32.unpack(attrs[A_FLAGS])[0], tx_info=bytes(attrs[A_TX_INFO][:_TX_INFO.size]),
            cookie=_U64.unpack(attrs[A_COOKIE])[0],
            freq=_U32.unpack(attrs[A_FREQ])[0] if A_FREQ in attrs else None,
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


@dataclass
class Counters:
    frames: int = 0  # frames the lab's radios transmitted
    deliveries: int = 0  # copies handed to receivers
    acked: int = 0  # unicast frames acknowledged
    unacked: int = 0  # unicast frames whose every attempt was lost or out of range
    unknown: int = 0  # frames from a radio the configuration does not name
    kernel_errors: int = 0  # deliveries the kernel refused (a receiver not up yet, off channel)
    overruns: int = 0  # times the receive buffer overflowed (frames lost before we saw them)
    # What the frames were (802.11 frame control): tells beacon load from peering, HWMP and data.
    beacons: int = 0
    actions: int = 0  # management action frames, of which:
    peering: int = 0  # self-protected (mesh peering open, confirm, close)
    hwmp: int = 0  # mesh action (HWMP path selection: PREQ, PREP, PERR, RANN)
    other_mgmt: int = 0
    data: int = 0


def route(air: Airspace, codec: Codec, tx: TxFrame, rand: Callable[[], float], default_freq: int,
          counters: Counters) -> list[bytes]:
    """The messages that carry one transmitted frame to its receivers and its status back."""
    counters.frames += 1
    fc = tx.frame[0] if tx.frame else 0
    if fc & 0x0C == 0x08:
        counters.data += 1
    elif fc == 0x80:
        counters.beacons += 1
    elif fc == 0xD0:
        counters.actions += 1
        category = tx.frame[24] if len(tx.frame) > 24 else -1
        if category == 15:
            counters.peering += 1
        elif category == 13:
            counters.hwmp += 1
    else:
        counters.other_mgmt += 1
    freq = tx.freq or default_freq
    if not air.knows(tx.transmitter):
        counters.unknown += 1
        return [codec.tx_status(tx, False, 0, ((0, 1),))]
    chain = tx.chain(11 - air.rate_offset) or [(0, 1)]
    out = air.transmit(tx.transmitter, tx.dest, chain, rand)
    frame_attr = nla(A_FRAME, tx.frame)
    msgs = [codec.rx(link.mac, tx.frame, rate, link.signal_dbm, freq, frame_attr) for link, rate in out.delivered]
    counters.deliveries += len(msgs)
    if not (tx.dest[0] & 1):
        if out.acked:
            counters.acked += 1
        else:
            counters.unacked += 1
    msgs.append(codec.tx_status(tx, out.acked, out.ack_signal_dbm, out.tries))
    return msgs


def feed(view: memoryview, n: int, air: Airspace, codec: Codec, rand: Callable[[], float],
         counters: Counters) -> list[bytes]:
    """The medium's per-frame path without its socket: one receive buffer of the kernel's
    messages in, the messages to send out."""
    out: list[bytes] = []
    family, freq = codec.family, air.config.freq
    pos = 0
    while pos + HDR_LEN <= n:
        length, kind = _NLHDR.unpack_from(view, pos)[:2]
        if kind == family and view[pos + 16] == HWSIM_CMD_FRAME:
            tx = decode_frame(parse_attrs(view, pos + HDR_LEN, pos + length))
            if tx is not None:
                out += route(air, codec, tx, rand, freq, counters)
        elif kind == NLMSG_ERROR and _S32.unpack_from(view, pos + 16)[0]:
            counters.kernel_errors += 1
        pos += (length + 3) & ~3
    return out


def batches(msgs: list[bytes], limit: int = SEND_BATCH_BYTES) -> list[bytes]:
    """The messages joined into as few sends as fit `limit` bytes each (one message larger than
    that goes alone): the kernel handles each netlink message of a send in turn, and under TCG
    a system call per delivery cost more than the delivery."""
    out: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for msg in msgs:
        if batch and size + len(msg) > limit:
            out.append(b"".join(batch))
            batch, size = [], 0
        batch.append(msg)
        size += len(msg)
    if batch:
        out.append(b"".join(batch))
    return out


class MediumError(RuntimeError):
    pass


def open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    sock.bind((0, 0))
    try:  # root may exceed net.core.rmem_max: beacons of 30 radios arrive in bursts
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.connect((0, 0))
    return sock


def _request(sock: socket.socket, msg: bytes, seq: int) -> list[dict[int, memoryview]]:
    """Send one request and collect replies until its ack; raises on a netlink error."""
    want_ack = bool(_NLHDR.unpack_from(msg)[2] & NLM_F_ACK)
    sock.send(msg)
    replies = []
    while True:
        data = memoryview(sock.recv(65536))
        pos = 0
        while pos + _NLHDR.size <= len(data):
            length, kind, _, rseq, _ = _NLHDR.unpack_from(data, pos)
            if rseq == seq:
                if kind == NLMSG_ERROR:
                    code = _S32.unpack_from(data, pos + 16)[0]
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
        replies = _request(sock, msg, ctrl.seq)
    except OSError as err:
        raise MediumError(f"the kernel has no {name} family ({err}): "
                          "`modprobe mac80211_hwsim radios=0` first") from None
    return struct.unpack_from("=H", replies[0][CTRL_ATTR_FAMILY_ID])[0]


class Medium:
    def __init__(self, lab_dir: Path, rand: Callable[[], float] = random.random) -> None:
        self.lab_dir = lab_dir
        self.rand = rand
        self.counters = Counters()
        self.sock = open_socket()
        self.codec = Codec(resolve_family(self.sock))
        self._mtime = 0
        self.movers = Movers()
        self.moved_at: float | None = None
        self.config = self._load()
        self.place()
        self.stop = False

    def _load(self) -> MediumConfig:
        self._mtime = config_path(self.lab_dir).stat().st_mtime_ns
        cfg = read_config(self.lab_dir)
        log.info("medium config version=%d radios=%d isolated=%s moving=%s", cfg.version, len(cfg.radios),
                 sorted(cfg.isolated), sorted(r.name for r in cfg.radios if r.motion) if cfg.moving else [])
        return cfg

    def place(self) -> None:
        """Work out who hears whom from the configuration, with the moving radios where they are
        now: one Airspace per configuration or step, its links are O(radios²) to compute."""
        cfg = self.config
        if cfg.moving:
            self.moved_at = time.time()
            cfg = self.movers.at(cfg, self.moved_at)
        self.air = Airspace(cfg)

    def maybe_reload(self) -> bool:
        """Re-read medium.json if it changed; True when a new configuration is in use."""
        try:
            if config_path(self.lab_dir).stat().st_mtime_ns != self._mtime:
                self.config = self._load()
                self.place()
                return True
        except (OSError, ValueError, KeyError) as exc:  # a verb mid-rewrite, or a bad edit
            log.warning("medium config not reloaded: %r", exc)
        return False

    def register(self) -> None:
        try:
            _request(self.sock, self.codec.register(), self.codec.seq)
        except OSError as err:
            if err.errno == errno.EBUSY:
                raise MediumError("another medium is already registered in this netns: "
                                  "stop it (or `meshpay-lab down`) first") from None
            raise MediumError(f"HWSIM_CMD_REGISTER failed: {err}") from None

    def run(self) -> None:
        buf = bytearray(1 << 16)
        view = memoryview(buf)
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        send, recv_into = self.sock.send, self.sock.recv_into
        counters = self.counters
        next_check = next_stats = next_move = time.monotonic()
        stats = StatsWriter(self.lab_dir, counters)
        while not self.stop:
            now = time.monotonic()
            if now >= next_check:
                if self.maybe_reload():
                    next_stats = now  # report the new version at once: `move` waits on it
                next_check = now + RELOAD_CHECK_S
            if now >= next_move:
                if self.config.moving:
                    self.place()
                next_move = now + MOBILITY_STEP_S
            if now >= next_stats:
                stats.write(self.config.version, self.mobility_report())
                next_stats = now + STATS_INTERVAL_S
            if not poller.poll(RELOAD_CHECK_S * 1000):
                continue
            # drain what is queued (a batch at most) before looking at the clock again
            for _ in range(DRAIN_BATCH):
                try:
                    n = recv_into(buf, 0, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError as err:
                    if err.errno == errno.ENOBUFS:
                        counters.overruns += 1
                        continue
                    raise
                for packet in batches(feed(view, n, self.air, self.codec, self.rand, counters)):
                    try:
                        send(packet)
                    except OSError:  # out of kernel memory for a moment: those frames are lost
                        counters.kernel_errors += 1
        stats.write(self.config.version, self.mobility_report())

    def mobility_report(self) -> dict:
        """For medium-stats.json: where the moving radios are, and the wall-clock time that is for."""
        if not self.config.moving:
            return {}
        return {"mobility_epoch": self.config.mobility_epoch, "positions_time": self.moved_at,
                "positions": moving_positions(self.air.config)}


class StatsWriter:
    """medium-stats.json: counters, rates over the last interval, CPU; `status` reads it."""

    def __init__(self, lab_dir: Path, counters: Counters) -> None:
        self.path = lab_dir / STATS_FILE
        self.counters = counters
        self.started = time.time()
        self.last = (time.monotonic(), 0, _cpu())

    def write(self, version: int, extra: dict | None = None) -> None:
        now, cpu = time.monotonic(), _cpu()
        then, frames_then, cpu_then = self.last
        dt = max(now - then, 1e-6)
        self.last = (now, self.counters.frames, cpu)
        t = os.times()
        # system time includes the receiving radios' 802.11 stack, which the kernel runs in the
        # softirq of our HWSIM_CMD_FRAME sends: user time is the medium's own cost
        data = {"pid": os.getpid(), "version": version, "time": time.time(),
                "uptime_s": round(time.time() - self.started, 1), "cpu_s": round(cpu, 2),
                "cpu_user_s": round(t.user, 2), "cpu_sys_s": round(t.system, 2),
                "frames_per_s": round((self.counters.frames - frames_then) / dt, 1),
                "cpu_pct": round(100 * (cpu - cpu_then) / dt, 1), **asdict(self.counters), **(extra or {})}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, self.path)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.medium", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=None, help="seed the loss draws (reproducible runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("MESHPAY_LOG", "INFO"),
                        format="%(asctime)s medium %(levelname)s %(message)s")
    rng = random.Random(args.seed)
    try:
        medium = Medium(args.lab_dir.resolve(), rng.random)
        medium.register()
    except (MediumError, LookupError, OSError) as exc:
        log.error("%s", exc)
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        medium.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("registered with mac80211_hwsim family=%d pid=%d", medium.codec.family, os.getpid())
    medium.run()
    log.info("medium exit %s", asdict(medium.counters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
