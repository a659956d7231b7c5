"""Packet capture of what the medium sees, as pcapng with one IEEE 802.11 + radiotap interface per
captured radio (link type 127), which Wireshark and tshark open as they are.

Each captured radio is one interface, named after its node, seen as a monitor on that radio would:
  - a frame it sent: radiotap rate (of the last attempt), channel, TX flags (FAIL: a unicast frame
    no attempt of which was acknowledged; NOACK: a group frame, which nobody acknowledges) and
    data retries (attempts beyond the first);
  - a frame it received: radiotap rate and channel, and the signal (dBm) of that delivery.
A frame between two captured radios is therefore in the file twice, once on each interface.

Control goes through `capture.json` in the lab directory (written by the `capture` verb, read by
the medium every RELOAD_CHECK_S): while it names a capture the medium writes it, and the medium
reports the capture's state and record count in medium-stats.json. With no capture the medium's
per-frame path pays one `is None` test.

Sources: pcapng (IETF draft-ietf-opsawg-pcapng: section header, interface description with
if_name and if_tsresol, enhanced packet blocks), radiotap (radiotap.org: fields 2 Rate, 3 Channel,
5 dBm antenna signal, 15 TX flags, 17 data retries, each aligned to its size).
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator import atomic, labfiles
from orchestrator.air import rates
from orchestrator.errors import NotFound

log = logging.getLogger("orchestrator.air.capture")

REQUEST_FILE = labfiles.CAPTURE_REQUEST
LINKTYPE_IEEE802_11_RADIOTAP = 127
SNAPLEN = 65535

CHAN_CCK, CHAN_OFDM, CHAN_2GHZ, CHAN_5GHZ = 0x0020, 0x0040, 0x0080, 0x0100
TX_FAIL, TX_NOACK = 0x0001, 0x0008

# radiotap: version, pad, length, present bitmap; then the fields, each aligned to its own size
_RT_RX = struct.Struct("<BBHI" "B" "x" "HH" "b" "x")  # rate, pad, channel freq+flags, signal, pad
_RT_RX_PRESENT = (1 << 2) | (1 << 3) | (1 << 5)
_RT_TX = struct.Struct("<BBHI" "B" "x" "HH" "H" "B" "x")  # rate, pad, channel, tx flags, retries, pad
_RT_TX_PRESENT = (1 << 2) | (1 << 3) | (1 << 15) | (1 << 17)

_BLOCK = struct.Struct("<II")
_EPB = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, captured, original


def channel_flags(freq: int, rate_500k: int) -> int:
    band = CHAN_5GHZ if freq >= rates.FIVE_GHZ_MHZ else CHAN_2GHZ
    cck = any(rates.units_500k(i) == rate_500k for i in range(rates.OFDM_FROM))
    return band | (CHAN_CCK if cck else CHAN_OFDM)


def rate_500k(rate_idx: int, rate_offset: int) -> int:
    """hwsim's rate index (as in the frame's retry chain) in radiotap's 500 kb/s units."""
    return rates.units_500k(rate_idx + rate_offset)


def radiotap_rx(rate: int, freq: int, signal_dbm: int) -> bytes:
    return _RT_RX.pack(0, 0, _RT_RX.size, _RT_RX_PRESENT, rate, freq, channel_flags(freq, rate),
                       max(-128, min(127, signal_dbm)))


def radiotap_tx(rate: int, freq: int, failed: bool, group: bool, retries: int) -> bytes:
    flags = (TX_FAIL if failed else 0) | (TX_NOACK if group else 0)
    return _RT_TX.pack(0, 0, _RT_TX.size, _RT_TX_PRESENT, rate, freq, channel_flags(freq, rate),
                       flags, min(retries, 255))


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return _BLOCK.pack(kind, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """A pcapng file with one radiotap interface per name in `interfaces` (index = position)."""

    def __init__(self, out: BinaryIO, interfaces: Iterable[str]) -> None:
        self.out = out
        self.records = 0
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(0, b"")
        out.write(_block(0x0A0D0D0A, shb))
        for name in interfaces:
            idb = struct.pack("<HHI", LINKTYPE_IEEE802_11_RADIOTAP, 0, SNAPLEN)
            idb += _option(2, name.encode()) + _option(9, b"\x06") + _option(0, b"")  # if_name, µs
            out.write(_block(1, idb))

    def write(self, interface: int, when: float, radiotap: bytes, frame: bytes) -> None:
        data = radiotap + frame
        us = int(when * 1_000_000)
        pad = b"\0" * (-len(data) % 4)
        length = _EPB.size + len(data) + len(pad) + 4
        self.out.write(b"".join((_EPB.pack(6, length, interface, us >> 32, us & 0xFFFFFFFF, len(data), len(data)),
                                 data, pad, struct.pack("<I", length))))
        self.records += 1


@dataclass(frozen=True)
class CaptureRequest:
    """What `capture.json` asks for: `nodes` None means every radio; `until` is a wall-clock time
    (time.time()) after which the medium stops by itself (None: until the file is removed)."""

    id: str
    file: str
    nodes: tuple[str, ...] | None
    until: float | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "file": self.file, "nodes": None if self.nodes is None else list(self.nodes),
                "until": self.until}

    @classmethod
    def from_json(cls, data: dict) -> CaptureRequest:
        nodes = data.get("nodes")
        return cls(str(data["id"]), str(data["file"]), None if nodes is None else tuple(map(str, nodes)),
                   None if data.get("until") is None else float(data["until"]))


def request_path(lab_dir: Path) -> Path:
    return Path(lab_dir) / REQUEST_FILE


def write_request(lab_dir: Path, req: CaptureRequest) -> None:
    atomic.write_text(request_path(lab_dir), json.dumps(req.to_json()) + "\n")  # the medium never reads half a request


def read_request(lab_dir: Path) -> CaptureRequest | None:
    try:
        return CaptureRequest.from_json(json.loads(request_path(lab_dir).read_text()))
    except FileNotFoundError:
        return None


class Capture:
    """The medium's side of one capture: records frames sent or received by the chosen radios."""

    def __init__(self, req: CaptureRequest, radios: dict[str, bytes], rate_offset: int) -> None:
        """`radios`: node name -> MAC of every radio in the lab."""
        names = sorted(radios) if req.nodes is None else list(req.nodes)
        unknown = [n for n in names if n not in radios]
        if unknown:
            raise NotFound(f"no radio for {', '.join(unknown)} in the medium; radios: {', '.join(sorted(radios))}")
        self.req = req
        self.index = {radios[name]: i for i, name in enumerate(names)}
        self.rate_offset = rate_offset
        Path(req.file).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(req.file, "wb")  # noqa: SIM115 - open for the capture's life, closed by close()
        self.writer = PcapngWriter(self._file, names)

    def frame(self, transmitter: bytes, frame: bytes, freq: int, delivered: Iterable[tuple[bytes, int, int]],
              acked: bool, tries: tuple[tuple[int, int], ...]) -> None:
        """One transmitted frame: `delivered` as (receiver MAC, rate index, signal dBm)."""
        now = time.time()
        write, off = self.writer.write, self.rate_offset
        sender = self.index.get(transmitter)
        if sender is not None:
            group = bool(frame[4] & 1) if len(frame) > 4 else True
            last_rate = tries[-1][0] if tries else 0
            retries = sum(count for _, count in tries) - 1
            write(sender, now, radiotap_tx(rate_500k(last_rate, off), freq, not group and not acked, group,
                                           max(retries, 0)), frame)
        for mac, rate, signal in delivered:
            receiver = self.index.get(mac)
            if receiver is not None:
                write(receiver, now, radiotap_rx(rate_500k(rate, off), freq, signal), frame)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def report(self, state: str) -> dict:
        return {"id": self.req.id, "file": self.req.file, "state": state, "records": self.writer.records,
                "nodes": None if self.req.nodes is None else list(self.req.nodes)}


class Captures:
    """The medium's capture control: `poll` (every RELOAD_CHECK_S) starts and stops the capture
    capture.json asks for, `active` is the one running (None: the per-frame path records nothing)."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = Path(lab_dir)
        self.active: Capture | None = None
        self.last: dict = {}  # the report of the running or last capture
        self._mtime: int | None = None

    def poll(self, radios: dict[str, bytes], rate_offset: int, now: float | None = None) -> bool:
        """Start or stop a capture as capture.json asks, or when its time is up; True when one did.
        `radios`: node name -> MAC of every radio."""
        now = time.time() if now is None else now
        try:
            mtime: int | None = request_path(self.lab_dir).stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        running = self.active
        expired = running is not None and running.req.until is not None and now >= running.req.until
        if mtime == self._mtime and not expired:
            return False
        self._mtime = mtime
        try:
            req = read_request(self.lab_dir) if mtime is not None else None
        except (OSError, ValueError, KeyError) as exc:  # mid-rewrite: the next poll reads it
            log.warning("capture request not read: %r", exc)
            self._mtime = None
            return False
        changed = False
        if running is not None and (expired or req is None or req.id != running.req.id):
            self.stop()
            changed = True
        if (req is not None and self.active is None and req.id != self.last.get("id")
                and (req.until is None or now < req.until)):
            try:
                self.active = Capture(req, radios, rate_offset)
                self.last = self.active.report("on")
                log.info("capture %s started: %s", req.id, req.file)
            except (OSError, LookupError) as exc:
                self.last = {"id": req.id, "file": req.file, "state": "failed", "error": str(exc)}
                log.warning("capture %s not started: %s", req.id, exc)
            changed = True
        return changed

    def flush(self) -> None:
        if self.active is not None:
            self.active.flush()

    def stop(self) -> None:
        if self.active is None:
            return
        self.active.close()
        self.last = self.active.report("done")
        log.info("capture %s done: %d records", self.active.req.id, self.active.writer.records)
        self.active = None

    def report(self) -> dict:
        if self.active is not None:
            self.last = self.active.report("on")
        return self.last
