"""The lab's wireless medium: `python -m orchestrator.medium.process --lab-dir DIR`, run in the lab's
medium netns (plan.medium_netns).

It registers with mac80211_hwsim (HWSIM_CMD_REGISTER). From then on the kernel hands it every frame
the lab's radios transmit (HWSIM_CMD_FRAME) instead of copying each frame to every radio; it
delivers a frame (HWSIM_CMD_FRAME to the receiver) only to radios in range, with the signal of the
path-loss model and a loss drawn from the SNR (orchestrator/air/airspace.py decides), then reports the
outcome to the sender (HWSIM_CMD_TX_INFO_FRAME: acknowledged or not, attempts used), which is what
lets mac80211 retry, adapt its rate and notice a peer is gone.

hwsim scopes a medium by network namespace: it takes over the radios created from the netns it
registers in (their "netgroup"), wherever their phys were moved later. `up` creates the lab's radios
from the medium's netns, so two labs on one kernel never see each other's frames. If this process
dies, the kernel silently falls back to a perfect medium for those radios: `status` checks.

Hot path: one netlink socket, the messages packed and parsed by hand (medium/hwsim.py); the lab's configuration (medium.json) is re-read only when
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
import sys
import time
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator import atomic, labfiles
from orchestrator.air import airtime
from orchestrator.air.airspace import (Airspace, Link, MediumConfig, Movers, Outcome, config_path, mac_bytes,
                                   moving_positions, read_config)
from orchestrator.air.airtime import Channel
from orchestrator.air.capture import Capture, Captures
from orchestrator.air.shaping import Shaping
from orchestrator.medium.hwsim import (A_FRAME, GENLHDR, HDR_LEN, HWSIM_CMD_FRAME, HWSIM_CMD_TX_INFO_FRAME, NLA,
                                       NLHDR, NLMSG_ERROR, S32, U32, Codec, MediumError, TxFrame, decode_frame,
                                       nla, open_socket, parse_attrs, request, resolve_family)

log = logging.getLogger("orchestrator.medium.process")

STATS_FILE = labfiles.MEDIUM_STATS
STATS_INTERVAL_S = 2.0
RELOAD_CHECK_S = 0.25
# A client walking at 5 m/s moves 2.5 m between steps: small next to a 100 m range.
MOBILITY_STEP_S = 0.5
# At most this many messages per wake-up: a saturated medium must still reload and report.
DRAIN_BATCH = 256
# Well under the socket's send buffer (net.core.wmem_default, 208 KiB), which bounds one send.
SEND_BATCH_BYTES = 64 << 10
# A radio the kernel refused a delivery to (down, off channel) hears nothing for this long: frames
# to it are then unacknowledged, as out of range, instead of acknowledged and silently refused.
DEAF_S = 1.0
# How long one message is retried while the kernel refuses it for a moment (ENOBUFS, EAGAIN):
# beyond this the kernel is out of memory for good, and the frame is counted lost.
SEND_RETRY_S = 2.0

@dataclass
class Counters:
    frames: int = 0  # frames the lab's radios transmitted
    deliveries: int = 0  # copies handed to receivers
    acked: int = 0  # unicast frames acknowledged
    unacked: int = 0  # unicast frames whose every attempt was lost or out of range
    unknown: int = 0  # frames from a radio the configuration does not name
    # Frames the model dropped, as a real channel would, each counted once under one cause: a
    # unicast frame whose receiver is not in range (or is isolated, or refused the last delivery);
    # losses drawn from the SNR (a unicast frame whose every attempt was lost so, none to a
    # collision; one per receiver in range that lost a group frame to the draw); with airtime on,
    # losses to collisions (a unicast frame whose every attempt failed, at least one collided;
    # one per receiver whose copy of a group frame collided).
    dropped_range: int = 0
    dropped_loss: int = 0
    dropped_collision: int = 0
    dropped_rate: int = 0  # deliveries past a link's rate cap with its line full (Impairment)
    # With airtime on: transmissions a collision destroyed at their receiver (every unicast attempt,
    # those a retry made good included; one per receiver of a group frame). It says how busy the
    # channel's hidden terminals are, not how many frames were lost, so model_dropped leaves it out.
    collisions: int = 0
    delayed: int = 0  # deliveries held back by a link's delay or rate cap, then delivered
    # Frames the medium itself lost: messages (deliveries, statuses) it could not hand to the
    # kernel even after retrying and splitting; and times its receive buffer overflowed (the
    # kernel then dropped frames before the medium saw them; how many, it does not say).
    lost: int = 0
    overruns: int = 0
    send_retries: int = 0  # sends refused for a moment (ENOBUFS, EAGAIN) and made again
    send_splits: int = 0  # batches the kernel refused whole, sent again in halves
    # Replies the kernel sent back refusing a message, all kinds (kernel_errors), and by kind:
    # `refused`, a delivery to a radio that is not listening (not up, off channel): the medium
    # then treats it as out of range for DEAF_S, so senders are not told a lie of an ACK;
    # `late_status`, a status for a frame the kernel had already given up on (its radio's queue
    # of frames awaiting a status overflowed: the medium was behind).
    kernel_errors: int = 0
    refused: int = 0
    late_status: int = 0
    # What the frames were (802.11 frame control): tells beacon load from peering, HWMP and data.
    beacons: int = 0
    actions: int = 0  # management action frames, of which:
    peering: int = 0  # self-protected (mesh peering open, confirm, close)
    hwmp: int = 0  # mesh action (HWMP path selection: PREQ, PREP, PERR, RANN)
    other_mgmt: int = 0
    data: int = 0

    @property
    def medium_lost(self) -> int:
        """Frames the medium lost for its own reasons (overflows count once each: a lower bound)."""
        return self.lost + self.overruns

    @property
    def model_dropped(self) -> int:
        """Frames (unicast) and copies (group, one per receiver) the model dropped, each once."""
        return self.dropped_range + self.dropped_loss + self.dropped_collision + self.dropped_rate


def route(air: Airspace, codec: Codec, tx: TxFrame, rand: Callable[[], float], default_freq: int,
          counters: Counters, deaf: Container[bytes] = frozenset(), capture: Capture | None = None,
          shaping: Shaping | None = None, channel: Channel | None = None) -> list[bytes]:
    """The messages that carry one transmitted frame to its receivers and its status back.
    `deaf`: receivers (MAC) the kernel lately refused deliveries to; they hear nothing, so a
    unicast frame to one is reported unacknowledged, as when it is out of range. `capture`: where
    to record the frame, when a capture runs. `shaping`: where deliveries on delayed or
    rate-capped links wait (those are not in the returned messages). `channel`: the channel's
    time when airtime is on (the configuration says); then every delivery and the status wait in
    `shaping` until the frame's end and its ACK."""
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
    dest = tx.dest
    timed = channel is not None and shaping is not None and air.config.airtime
    deliver_at = status_at = 0.0
    collided = 0  # this frame's transmissions lost to a collision (attempts; group: receivers)
    if not (dest[0] & 1) and dest in deaf:
        out = Outcome((), False, tuple(chain), 0)
    elif timed:
        assert channel is not None
        before = channel.collisions
        out, deliver_at, status_at = airtime.transmit(air, channel, tx.transmitter, dest, chain, len(tx.frame),
                                                      time.monotonic(), rand)
        collided = channel.collisions - before
        counters.collisions += collided
    else:
        out = air.transmit(tx.transmitter, dest, chain, rand)
    delivered = out.delivered
    if dest[0] & 1 or not air.knows(dest):  # everyone in range, no acknowledgement
        # a receiver's copy is lost to the draw or to a collision, never both (airtime.transmit)
        counters.dropped_collision += collided
        counters.dropped_loss += len(air.links[tx.transmitter]) - len(delivered) - collided
        if deaf:
            delivered = tuple(d for d in delivered if d[0].mac not in deaf)
    elif not out.acked:
        if dest in deaf or dest not in air.by_dest[tx.transmitter]:
            counters.dropped_range += 1
        elif collided:
            counters.dropped_collision += 1
        else:
            counters.dropped_loss += 1
    frame_attr = nla(A_FRAME, tx.frame)
    acked = out.acked
    reached = delivered  # all that will arrive, now or held back
    if shaping is not None and (air.shaped or timed):
        delivered, reached, acked = shape(tx, delivered, acked, codec, freq, frame_attr, rand, counters, shaping,
                                          deliver_at if timed else None)
    msgs = [codec.rx(link.mac, tx.frame, rate, link.signal_dbm, freq, frame_attr) for link, rate in delivered]
    counters.deliveries += len(msgs)
    if capture is not None:
        capture.frame(tx.transmitter, tx.frame, freq, [(link.mac, rate, link.signal_dbm) for link, rate in reached],
                      acked, out.tries)
    if not (dest[0] & 1):
        if acked:
            counters.acked += 1
        else:
            counters.unacked += 1
    status = codec.tx_status(tx, acked, out.ack_signal_dbm if acked else 0, out.tries)
    if timed:
        assert shaping is not None
        shaping.hold(status_at, status)  # mac80211 hears of the frame once its exchange is over
        return msgs
    msgs.append(status)
    return msgs


def shape(tx: TxFrame, delivered: tuple[tuple[Link, int], ...], acked: bool, codec: Codec, freq: int,
          frame_attr: bytes, rand: Callable[[], float], counters: Counters,
          shaping: Shaping, on_air_until: float | None = None
          ) -> tuple[tuple[tuple[Link, int], ...], tuple[tuple[Link, int], ...], bool]:
    """Hold back the deliveries on delayed or rate-capped links; returns the ones to send now, all
    that will arrive (now or later), and whether the frame still counts as acknowledged (not when its one delivery was dropped by a
    full rate-cap line). The sender's status goes now: on a wire under netem, too, the sender is
    done once the frame is on its way. With airtime on (`on_air_until`, the end of the frame on
    the air), every delivery waits at least until then."""
    send_now, reached = [], []
    now = time.monotonic() if on_air_until is None else on_air_until
    for link, rate in delivered:
        if on_air_until is None and not (link.delay_s or link.jitter_s or link.rate_bps):
            send_now.append((link, rate))
            reached.append((link, rate))
            continue
        due = shaping.due_at(tx.transmitter, link, len(tx.frame), now, rand)
        if due is None:
            counters.dropped_rate += 1
            acked = False
            continue
        shaping.hold(due, codec.rx(link.mac, tx.frame, rate, link.signal_dbm, freq, frame_attr))
        reached.append((link, rate))
        counters.delayed += 1
        counters.deliveries += 1
    return tuple(send_now), tuple(reached), acked


def feed(view: memoryview, n: int, air: Airspace, codec: Codec, rand: Callable[[], float],
         counters: Counters, deaf: dict[bytes, float] | None = None, capture: Capture | None = None,
         shaping: Shaping | None = None, channel: Channel | None = None) -> list[bytes]:
    """The medium's per-frame path without its socket: one receive buffer of the kernel's
    messages in, the messages to send out. A refused delivery makes its receiver deaf (in
    `deaf`, MAC -> time.monotonic() until which) for DEAF_S."""
    out: list[bytes] = []
    family, freq = codec.family, air.config.freq
    deaf_now: dict[bytes, float] = {} if deaf is None else deaf
    pos = 0
    while pos + HDR_LEN <= n:
        length, kind = NLHDR.unpack_from(view, pos)[:2]
        if kind == family and view[pos + 16] == HWSIM_CMD_FRAME:
            tx = decode_frame(parse_attrs(view, pos + HDR_LEN, pos + length))
            if tx is not None:
                out += route(air, codec, tx, rand, freq, counters, deaf_now, capture, shaping, channel)
        elif kind == NLMSG_ERROR and S32.unpack_from(view, pos + 16)[0]:
            refused_error(view[pos:pos + length], counters, deaf_now)
        pos += (length + 3) & ~3
    return out


# An error reply echoes the refused message (NETLINK_CAP_ACK is off): after the error code come its
# netlink and generic headers, then its first attribute, which is the receiver's MAC in a
# delivery and the transmitter's in a status (Codec puts it first).
_ECHO_CMD = NLHDR.size + 4 + NLHDR.size
_ECHO_MAC = _ECHO_CMD + GENLHDR.size + NLA.size


def refused_error(msg: memoryview, counters: Counters, deaf: dict[bytes, float]) -> None:
    """Count one error reply by what it refused; a refused delivery makes its receiver deaf."""
    counters.kernel_errors += 1
    if len(msg) < _ECHO_MAC + 6:
        return
    cmd = msg[_ECHO_CMD]
    if cmd == HWSIM_CMD_FRAME:
        counters.refused += 1
        deaf[bytes(msg[_ECHO_MAC:_ECHO_MAC + 6])] = time.monotonic() + DEAF_S
    elif cmd == HWSIM_CMD_TX_INFO_FRAME:
        counters.late_status += 1


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


def message_ends(packet: bytes) -> list[int]:
    """The offsets at which each netlink message of a batch ends (padded, as the kernel walks them)."""
    ends, pos = [], 0
    while pos + NLHDR.size <= len(packet):
        length = U32.unpack_from(packet, pos)[0]
        if length < NLHDR.size:
            break
        pos = min(pos + ((length + 3) & ~3), len(packet))
        ends.append(pos)
    return ends


# Errors that mean "not now" (the kernel is short of memory for a moment), not "never".
RETRY_LATER = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.ENOMEM})


class Sender:
    """Hands the medium's messages to the kernel, in order, without losing one for its own reasons.

    A netlink send to the kernel is taken whole or refused whole: the error (ENOBUFS when no
    buffer could be allocated, EMSGSIZE past the send buffer) comes before the kernel reads any
    message, so sending a refused batch again duplicates nothing. A batch refused whole is split
    in two at a message boundary (a smaller buffer is easier to find) until single messages are
    left; a single message refused for a moment (RETRY_LATER) is sent again after a growing pause,
    for up to SEND_RETRY_S; a short send (datagram sockets do not make them, but a count below the
    length would mean it) goes on from the first message not sent whole. Only a message that
    still fails after all that is counted in `counters.lost`, with a warning in the log."""

    def __init__(self, send: Callable[[bytes], int], counters: Counters,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self._send, self.counters, self._sleep, self._clock = send, counters, sleep, clock
        self._warned_at = -1e9

    def send(self, msgs: list[bytes]) -> None:
        for packet in batches(msgs):
            self.send_batch(packet)

    def send_batch(self, packet: bytes) -> None:
        counters = self.counters
        todo: list[tuple[bytes, float | None, int]] = [(packet, None, 0)]  # (bytes, retry deadline, tries)
        while todo:
            data, deadline, tries = todo.pop()
            try:
                sent = self._send(data)
            except OSError as err:
                ends = message_ends(data)
                if len(ends) > 1:
                    cut = ends[len(ends) // 2 - 1]
                    counters.send_splits += 1
                    todo += ((data[cut:], None, 0), (data[:cut], None, 0))
                    continue
                now = self._clock()
                deadline = now + SEND_RETRY_S if deadline is None else deadline
                if err.errno in RETRY_LATER and now < deadline:
                    counters.send_retries += 1
                    self._sleep(min(0.001 * 2 ** tries, 0.05))
                    todo.append((data, deadline, tries + 1))
                    continue
                counters.lost += 1
                self._warn(f"a message to the kernel was lost after {tries + 1} tries: {err}")
                continue
            if sent < len(data):
                done = max((end for end in message_ends(data) if end <= sent), default=0)
                if done == 0:  # no whole message went: as if refused for a moment
                    now = self._clock()
                    deadline = now + SEND_RETRY_S if deadline is None else deadline
                    if now >= deadline:
                        counters.lost += len(message_ends(data)) or 1
                        self._warn(f"the kernel took {sent} of {len(data)} bytes again and again: lost")
                        continue
                    counters.send_retries += 1
                    self._sleep(min(0.001 * 2 ** tries, 0.05))
                    todo.append((data, deadline, tries + 1))
                else:
                    todo.append((data[done:], None, 0))

    def _warn(self, text: str) -> None:
        now = self._clock()
        if now - self._warned_at >= 1.0:  # a struggling kernel must not also flood the log
            self._warned_at = now
            log.warning("%s (%d lost so far); the kernel is short of memory: give the VM more",
                        text, self.counters.lost)


class Medium:
    def __init__(self, lab_dir: Path, rand: Callable[[], float] = random.random,
                 sock: socket.socket | None = None, family: int | None = None) -> None:
        """`sock` and `family`: the kernel's netlink socket and hwsim's family id (tests pass a
        stand-in; by default the socket is opened and the family asked for)."""
        self.lab_dir = lab_dir
        self.rand = rand
        self.counters = Counters()
        self.deaf: dict[bytes, float] = {}  # receivers the kernel refused a delivery to, until when
        self.captures = Captures(lab_dir)
        self.shaping = Shaping()
        self.channel = Channel()
        self.sock = open_socket() if sock is None else sock
        self.codec = Codec(resolve_family(self.sock) if family is None else family)
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
            request(self.sock, self.codec.register(), self.codec.seq)
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
        recv_into = self.sock.recv_into
        counters = self.counters
        sender = Sender(self.sock.send, counters)
        deaf, shaping = self.deaf, self.shaping
        next_check = next_stats = next_move = time.monotonic()
        stats = StatsWriter(self.lab_dir, counters)
        while not self.stop:
            now = time.monotonic()
            if now >= next_check:
                if self.maybe_reload():
                    next_stats = now  # report the new version at once: `move` waits on it
                next_check = now + RELOAD_CHECK_S
                for mac in [mac for mac, until in deaf.items() if until <= now]:
                    del deaf[mac]  # listening again, or it will refuse the next delivery
                radios = {r.name: mac_bytes(r.mac) for r in self.config.radios}
                if self.captures.poll(radios, self.air.rate_offset):
                    next_stats = now  # `capture` waits to see it started or stopped
            if now >= next_move:
                if self.config.moving:
                    self.place()
                next_move = now + MOBILITY_STEP_S
            if now >= next_stats:
                self.captures.flush()  # a capture is readable while it runs
                stats.write(self.config.version, self.report())
                next_stats = now + STATS_INTERVAL_S
            if len(shaping):
                sender.send(shaping.pop_due(now))
            wait = RELOAD_CHECK_S
            due = shaping.next_due()
            if due is not None:
                wait = min(wait, max(0.0, due - time.monotonic()))
            if not poller.poll(wait * 1000):
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
                sender.send(feed(view, n, self.air, self.codec, self.rand, counters, deaf, self.captures.active,
                                 shaping, self.channel))
        sender.send(shaping.pop_due(float("inf")))  # held back a little: still the medium's to deliver
        self.captures.stop()
        stats.write(self.config.version, self.report())

    def report(self) -> dict:
        """What medium-stats.json carries besides the counters."""
        extra = self.mobility_report()
        capture = self.captures.report()
        if capture:
            extra["capture"] = capture
        return extra

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
                "cpu_pct": round(100 * (cpu - cpu_then) / dt, 1), **asdict(self.counters),
                "medium_lost": self.counters.medium_lost, "model_dropped": self.counters.model_dropped,
                **(extra or {})}
        atomic.write_text(self.path, json.dumps(data) + "\n")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.medium.process", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random draws (loss): `up` passes the topology's `medium: seed`")
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
    log.info("registered with mac80211_hwsim family=%d pid=%d seed=%s", medium.codec.family, os.getpid(), args.seed)
    medium.run()
    log.info("medium exit %s", asdict(medium.counters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
