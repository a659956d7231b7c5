"""The medium's per-frame cost without a kernel: how many frames per second its Python path takes.

    python bench/bench_medium.py [--topology topologies/random100.yaml] [--frames 20000] [--profile]
                                 [--capture] [--impair-delay-ms 50]

Feeds the medium's per-frame path (orchestrator/medium/process.py `feed`: parse the kernel's HWSIM_CMD_FRAME, decide who
hears it, build every delivery and the sender's status) a synthetic load shaped like a lab's:
each radio's beacons (group addressed: one delivery per neighbour) and unicast action frames to a
neighbour (peering, HWMP), packed into receive buffers as the kernel queues them. Reports
CPU microseconds per frame and per delivery (best of --repeat runs) on this machine (the VM's TCG vCPUs are several times
slower), optionally the cProfile top entries, and writes bench/results/medium.json (or
medium-capture.json, medium-impair.json: `--capture` records every radio to a pcapng in a temporary
directory, as `meshpay-lab capture` does; `--impair-delay-ms` delays every link by that much, so every
delivery goes through the medium's Shaping queue and out again; `--airtime` turns airtime and
contention on, medium-airtime.json: the synthetic load comes faster than any channel carries, so
its collision count says nothing about a lab; the cost per frame is the figure).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import struct
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.medium import process as medium_process  # noqa: E402
from orchestrator.medium import hwsim  # noqa: E402
from orchestrator.air.airspace import Airspace, Impairment, mac_bytes  # noqa: E402
from orchestrator.air.airtime import Channel  # noqa: E402
from orchestrator.air.capture import Capture, CaptureRequest  # noqa: E402
from orchestrator.medium.control import config_for  # noqa: E402
from orchestrator.lab.plan import make_plan  # noqa: E402
from orchestrator.air.shaping import Shaping  # noqa: E402
from orchestrator.lab.topology import load_topology  # noqa: E402

FAMILY = 0x1F
BEACON_BYTES = 120
ACTION_BYTES = 60


def kernel_frame(tx: bytes, dest: bytes, body: bytes, fc: bytes, cookie: int) -> bytes:
    """One HWSIM_CMD_FRAME as mac80211_hwsim sends it to the medium."""
    frame = fc + b"\x00\x00" + dest + tx + tx + b"\x00\x00" + body
    attrs = b"".join((
        hwsim.nla(hwsim.A_TRANSMITTER, tx), hwsim.nla(hwsim.A_FRAME, frame),
        hwsim.nla(hwsim.A_FLAGS, struct.pack("=I", 0)), hwsim.nla(hwsim.A_FREQ, struct.pack("=I", 2412)),
        hwsim.nla(hwsim.A_TX_INFO, struct.pack("=bBbBbBbB", 0, 3, -1, 0, -1, 0, -1, 0)),
        hwsim.nla(hwsim.A_COOKIE, struct.pack("=Q", cookie)),
    ))
    return struct.pack("=IHHIIBBH", 20 + len(attrs), FAMILY, 0, 0, 0, hwsim.HWSIM_CMD_FRAME, 1, 0) + attrs


def load(air: Airspace, frames: int, seed: int, per_buffer: int) -> list[bytes]:
    """Receive buffers of `per_buffer` frames each: half beacons, half unicast to a neighbour."""
    rng = random.Random(seed)
    txs = [tx for tx, links in air.links.items() if links]
    msgs = []
    for i in range(frames):
        tx = rng.choice(txs)
        if i % 2:
            msgs.append(kernel_frame(tx, b"\xff" * 6, bytes(BEACON_BYTES), b"\x80\x00", i))
        else:
            msgs.append(kernel_frame(tx, rng.choice(air.links[tx]).mac, bytes(ACTION_BYTES), b"\xd0\x00", i))
    return [b"".join(msgs[i:i + per_buffer]) for i in range(0, len(msgs), per_buffer)]


def run(air: Airspace, codec: hwsim.Codec, rand, counters: medium_process.Counters, buffers: list[bytes],
        capture: Capture | None = None, shaping: Shaping | None = None, channel: Channel | None = None
        ) -> tuple[int, int]:
    sent = out_bytes = 0
    for buf in buffers:
        msgs = medium_process.feed(memoryview(buf), len(buf), air, codec, rand, counters, capture=capture, shaping=shaping,
                           channel=channel)
        if shaping is not None:
            msgs += shaping.pop_due(float("inf"))  # what the loop would send once due
        for packet in medium_process.batches(msgs):
            sent += 1
            out_bytes += len(packet)
    return sent, out_bytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", type=Path, default=ROOT / "topologies" / "random100.yaml")
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--per-buffer", type=int, default=8, help="frames the kernel queued per receive")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--capture", action="store_true", help="with a capture of every radio running")
    ap.add_argument("--impair-delay-ms", type=float, default=0.0, help="every link delayed by this much")
    ap.add_argument("--airtime", action="store_true", help="with airtime and contention on")
    args = ap.parse_args(argv)
    cfg = config_for(make_plan(load_topology(args.topology)))
    if args.impair_delay_ms:
        cfg = replace(cfg, impairments={(a.name, b.name): Impairment(delay_ms=args.impair_delay_ms)
                                        for a in cfg.radios for b in cfg.radios if a is not b})
    if args.airtime:
        cfg = replace(cfg, airtime=True)
    air = Airspace(cfg)
    tmp = tempfile.TemporaryDirectory()
    capture = None
    if args.capture:
        capture = Capture(CaptureRequest("bench", str(Path(tmp.name) / "bench.pcapng"), None),
                          {r.name: mac_bytes(r.mac) for r in cfg.radios}, air.rate_offset)
    shaping = Shaping() if args.impair_delay_ms or args.airtime else None
    channel = Channel() if args.airtime else None
    buffers = load(air, args.frames, 1, args.per_buffer)
    codec, rand = hwsim.Codec(FAMILY), random.Random(2).random
    run(air, codec, rand, medium_process.Counters(), buffers[:50], capture, shaping, channel)  # warm the caches a long-running medium has warm
    times = []
    for _ in range(args.repeat):  # the fastest run: a shared host's other work only adds time
        c = medium_process.Counters()
        t0 = time.process_time()
        sends, out_bytes = run(air, codec, rand, c, buffers, capture, shaping, channel)
        times.append(time.process_time() - t0)
    dt = min(times)
    result = {"topology": args.topology.name, "radios": len(air.links), "frames": c.frames,
              "deliveries": c.deliveries, "sends": sends, "bytes_out": out_bytes,
              "us_per_frame": round(1e6 * dt / c.frames, 2),
              "us_per_delivery": round(1e6 * dt / max(c.deliveries, 1), 2),
              "frames_per_s": round(c.frames / dt), "capture": args.capture,
              "impair_delay_ms": args.impair_delay_ms, "airtime": args.airtime, "collisions": c.collisions}
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(air, codec, rand, medium_process.Counters(), buffers, capture, shaping, channel)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
        print(text.getvalue())
    print(json.dumps(result, indent=1))
    if capture is not None:
        result["capture_records"] = capture.writer.records
        capture.close()
    tmp.cleanup()
    name = ("medium" + ("-capture" if args.capture else "") + ("-impair" if args.impair_delay_ms else "")
            + ("-airtime" if args.airtime else ""))
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
