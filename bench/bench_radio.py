"""The radio's own figures: iperf3 TCP and UDP throughput and ping latency over 1, 2 and 3 hops of a
line, and hidden terminals against senders that hear each other, with the medium's airtime model
off and on, next to what IEEE 802.11 allows at the rate in use.

    python bench/bench_radio.py [--seconds 10] [--udp-mbps 30] [--pair-udp-mbps 30] [--pings 20]
                                [--rates minstrel|R ...] [--only off|on] [--parts line pairs] [--out FILE]

topologies/radio-bench.yaml holds the layouts, far apart on one channel. One lab, in its own VM,
per airtime setting and `--rates` entry: the bench writes a copy of the topology with
`medium: {airtime: ...}` and `mesh: {rate_mbps: R}` set (the topology key is the one home of the
rate; `up` holds every radio to it, kernel/mesh.py set_tx_rate). `minstrel` leaves the rate to
mac80211's rate control (54 Mb/s at these distances); a number holds every frame to that legacy
rate: at 11 Mb/s a 1500-byte frame lasts 1.3 ms, longer than the medium takes to handle one
under TCG (0.5-1 ms), so frames of hidden senders can overlap on the medium's clock. Each lab:
- `line`: ping from line1 to line2, line3, line4 (1, 2, 3 hops; warm-up pings first, so HWMP's
  path discovery is not in the sample), `--pings` echo requests 0.2 s apart; min/avg/max RTT;
  iperf3 (Debian's package, run inside the nodes through the lab's `exec` verb) from line1 to
  each: TCP for `--seconds`, then UDP offered at `--udp-mbps` with 1472-byte datagrams (1500-byte
  IP packets); the receiver's figure (iperf3's sum_received), UDP loss, TCP retransmits;
- `pairs`: UDP at `--pair-udp-mbps` to a receiver between two senders: hidden-a alone, then
  hidden-a and hidden-b at once (they cannot hear each other), then heard-a and heard-b at once
  (the same distances to their receiver, but within range of each other), with the medium's
  counters over each run (collisions, losses, frames);
- the rate mac80211 sends at (`iw station dump`'s tx bitrate, line1 to line2 and hidden-a to
  hidden-rx, after the runs); a pass whose radios did not send at the rate asked is marked so.
Theory (`theoretical`): one DCF frame exchange per packet, DIFS + mean backoff (CWmin/2 slots) +
data frame + SIFS + ACK, with the timings of orchestrator/air/airtime.py (IEEE 802.11-2020 clause 17,
OFDM PHY, and clause 18, ERP on 2.4 GHz: 20 µs preamble+SIGNAL, 4 µs symbols, 6 µs signal
extension, 9 µs slot, 10 µs SIFS, DIFS = SIFS + 2 slots, CWmin 15; the ACK at the highest
mandatory rate not above the data rate; DSSS/CCK: 192 µs long preamble), an 802.11s data frame being the IP packet plus 46 bytes
(QoS 4-address header 32, mesh control 6, LLC/SNAP 8) and a 4-byte FCS. TCP: the receiver ACKs
every second segment (a 52-byte IP packet with timestamps), MSS 1448. Over n hops of a line whose
radios hear only their neighbours, hop k and hop k+2 cannot overlap either (the relay between
would hear both), so for n <= 3 the hops take turns: the one-hop figure over n. Two senders to one
receiver share that one-hop figure.
Prints the figures, writes bench/results/radio.json and radio.png (the `plots` extra). Not a test:
the figures depend on the machine (under QEMU TCG the VM's CPU, not the radio, bounds them at
minstrel's rates).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.air import airtime, rates  # noqa: E402
from orchestrator.medium.process import STATS_INTERVAL_S  # noqa: E402
from orchestrator.lab.plan import MESH_IFNAME  # noqa: E402
from orchestrator.vm.client import agent_call  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TOPOLOGY = ROOT / "topologies" / "radio-bench.yaml"
LINE = ("line1", "line2", "line3", "line4")  # line1 to LINE[k] is k hops
HIDDEN_A, HIDDEN_B, HIDDEN_RX = "hidden-a", "hidden-b", "hidden-rx"
HEARD_A, HEARD_B, HEARD_RX = "heard-a", "heard-b", "heard-rx"
PARTS = ("line", "pairs")
MESH_DATA_OVERHEAD_BYTES = 32 + 6 + 8  # QoS 4-address header, mesh control (no address extension), LLC/SNAP
UDP_PAYLOAD_BYTES = 1472  # 1500-byte IP packets: 20 IP + 8 UDP
TCP_MSS_BYTES = 1448  # 1500 - 20 IP - 20 TCP - 12 timestamps option
TCP_ACK_IP_BYTES = 52
PING_IP_BYTES = 84  # ping's default 56 data bytes + 8 ICMP + 20 IP
IPERF_PORTS = (5201, 5202)
FREQ_MHZ = 2412  # topologies/radio-bench.yaml's channel (the default)
THEORY_BASIS = ("DCF: DIFS + CWmin/2 slots + data frame + SIFS + ACK per packet, with orchestrator/air/airtime.py's "
                "timings (IEEE 802.11-2020 cl. 17 OFDM, cl. 18 ERP 2.4 GHz; cl. 16 DSSS long preamble); "
                "1500-byte IP packets + 46 bytes of 802.11s header + 4 FCS; TCP: an ACK every 2 segments; "
                "the hops of a 1..3-hop line take turns")
COUNTERS = ("frames", "data", "deliveries", "acked", "unacked", "collisions", "dropped_loss", "dropped_collision",
            "dropped_range", "delayed", "late_status", "lost", "overruns", "cpu_s")


# ---- theory -------------------------------------------------------------------------------------

def exchange_s(ip_bytes: int, rate: int, freq: int) -> float:
    """Seconds one unicast IP packet of `ip_bytes` holds the channel on one hop, on average, with no
    contention: DIFS + mean backoff (CWmin/2 slots) + the data frame at absolute rate index `rate`
    (airtime.RATES_MBPS) + SIFS + the ACK."""
    sifs = airtime.sifs_s(freq)
    difs = sifs + 2 * airtime.SLOT_S
    backoff = airtime.CW_MIN / 2 * airtime.SLOT_S
    data = airtime.duration_s(ip_bytes + MESH_DATA_OVERHEAD_BYTES, rate, freq)
    ack = airtime.duration_s(airtime.ACK_BYTES, airtime.ack_rate(rate), freq)
    return difs + backoff + data + sifs + ack


def theoretical(rate: int, freq: int, hops: int) -> dict:
    """What 802.11 allows over `hops` hops (1..3) of a line at rate index `rate`: UDP and TCP
    goodput in Mb/s (application bytes), and a ping's round trip in ms with an idle channel."""
    if not 1 <= hops <= 3:
        raise ValueError(f"hops must be 1 to 3 (the hops take turns up to 3), got {hops}")
    udp_s = exchange_s(UDP_PAYLOAD_BYTES + 28, rate, freq)
    tcp_s = 2 * exchange_s(TCP_MSS_BYTES + 52, rate, freq) + exchange_s(TCP_ACK_IP_BYTES, rate, freq)
    return {"udp_mbps": round(UDP_PAYLOAD_BYTES * 8 / udp_s / 1e6 / hops, 2),
            "tcp_mbps": round(2 * TCP_MSS_BYTES * 8 / tcp_s / 1e6 / hops, 2),
            "ping_rtt_ms": round(2 * hops * exchange_s(PING_IP_BYTES, rate, freq) * 1e3, 3)}


def rate_index(mbps: float) -> int:
    """The absolute rate index (rates.RATES_MBPS) of a legacy bitrate in Mb/s. ValueError for a rate
    that is not one (an HT MCS, say)."""
    return rates.index_of(mbps)


def rates_mbps_ok(text: str) -> float:
    """A --rates entry as Mb/s; ValueError naming it when it is not a number or not a legacy rate
    of the bench's channel."""
    try:
        mbps = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither `minstrel` nor a rate in Mb/s") from None
    if mbps not in rates.band_rates(FREQ_MHZ):
        raise ValueError(f"{mbps:g} Mb/s is not an 802.11b/g rate ({', '.join(f'{r:g}' for r in rates.RATES_MBPS)})")
    return mbps


# ---- parsing ------------------------------------------------------------------------------------

def parse_iperf3(text: str) -> dict:
    """iperf3 -J output -> {"mbps": received, "sent_mbps", "seconds", and "lost_percent" (UDP) or
    "retransmits" (TCP)}. ValueError with iperf3's own message when it failed."""
    data = json.loads(text)
    if data.get("error"):
        raise ValueError(f"iperf3: {data['error']}")
    end = data["end"]
    sent, received = end["sum_sent"], end["sum_received"]
    out = {"mbps": round(received["bits_per_second"] / 1e6, 3), "sent_mbps": round(sent["bits_per_second"] / 1e6, 3),
           "seconds": round(received["seconds"], 2)}
    if "lost_percent" in received:
        out["lost_percent"] = round(received["lost_percent"], 2)
    if "retransmits" in sent:
        out["retransmits"] = sent["retransmits"]
    return out


_PING_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_RTT = re.compile(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def parse_ping(text: str) -> dict:
    """iputils ping's summary -> {"sent", "received", "rtt_ms": {"min", "avg", "max", "mdev"} or None
    when nothing came back}. ValueError when there is no summary."""
    counts = _PING_COUNTS.search(text)
    if not counts:
        raise ValueError(f"no ping summary in {text[-200:]!r}")
    rtt = _PING_RTT.search(text)
    return {"sent": int(counts[1]), "received": int(counts[2]),
            "rtt_ms": dict(zip(("min", "avg", "max", "mdev"), map(float, rtt.groups()))) if rtt else None}


def parse_tx_bitrates(text: str) -> dict[str, float]:
    """`iw dev IF station dump` -> {peer MAC: tx bitrate in Mb/s}."""
    rates, mac = {}, None
    for line in text.splitlines():
        if line.startswith("Station "):
            mac = line.split()[1].lower()
        elif "tx bitrate:" in line and mac:
            rates[mac] = float(line.split("tx bitrate:")[1].split()[0])
    return rates


def parse_drops(link_json: str, qdisc_json: str) -> dict[str, int]:
    """`ip -j -s link show dev IF` and `tc -j -s qdisc show dev IF` -> {"tx_dropped": the device's
    TX dropped, "qdisc_dropped": drops summed over its qdiscs}. ValueError when either is not JSON."""
    try:
        link, qdiscs = json.loads(link_json), json.loads(qdisc_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not ip/tc JSON: {exc}") from None
    tx = (link[0].get("stats64") or link[0].get("stats") or {}).get("tx", {}) if link else {}
    return {"tx_dropped": int(tx.get("dropped", 0)), "qdisc_dropped": sum(int(q.get("drops", 0)) for q in qdiscs)}


def parse_udp_errors(snmp: str) -> dict[str, int]:
    """/proc/net/snmp -> {"udp_in_errors", "udp_rcvbuf_errors", "udp_sndbuf_errors"} (datagrams the
    kernel dropped for a full socket buffer, and all receive errors). ValueError without a Udp: table."""
    rows = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        raise ValueError("no Udp: lines in /proc/net/snmp")
    table = dict(zip(rows[0], map(int, rows[1])))
    return {"udp_in_errors": table.get("InErrors", 0), "udp_rcvbuf_errors": table.get("RcvbufErrors", 0),
            "udp_sndbuf_errors": table.get("SndbufErrors", 0)}


# ---- the lab ------------------------------------------------------------------------------------

class Lab:
    """One lab of topologies/radio-bench.yaml in the VM, driven through its agent."""

    def __init__(self, lab_dir: Path, port: int, info: dict) -> None:
        self.lab_dir, self.port, self.info = lab_dir, port, info

    def exec(self, node: str, argv: list[str], timeout: float = 60.0) -> dict:
        return agent_call(self.port, "exec", {"node": node, "command": argv, "timeout": timeout}, timeout=timeout + 30)

    def ip(self, node: str) -> str:
        return self.info["nodes"][node]["mesh_ip"]

    def medium(self) -> dict:
        """The medium's counters now (it writes them every STATS_INTERVAL_S; wait one out first)."""
        time.sleep(STATS_INTERVAL_S + 0.5)
        try:
            stats = json.loads((self.lab_dir / "medium-stats.json").read_text())
        except (OSError, ValueError):
            return {}
        return {k: stats.get(k, 0) for k in COUNTERS}

    def ping(self, src: str, dst: str, count: int) -> dict:
        done = self.exec(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "5", self.ip(dst)],
                         timeout=count * 0.2 + 30)
        return parse_ping(done["stdout"])

    def iperf(self, src: str, dst: str, seconds: float, udp_mbps: float | None, port: int = IPERF_PORTS[0]) -> dict:
        """One iperf3 run from `src` to a one-shot server on `dst` (TCP, or UDP offered at udp_mbps)."""
        pidfile = str(self.lab_dir / f"iperf3-{dst}-{port}.pid")
        started = self.exec(dst, ["iperf3", "-s", "-1", "-D", "-p", str(port), "-I", pidfile])
        if started["returncode"] != 0:
            raise RuntimeError(f"iperf3 server on {dst}: {started['stderr'].strip()}")
        time.sleep(1.0)
        argv = ["iperf3", "-c", self.ip(dst), "-p", str(port), "-t", str(seconds), "-J", "--connect-timeout", "20000"]
        if udp_mbps is not None:
            argv += ["-u", "-b", f"{udp_mbps}M", "-l", str(UDP_PAYLOAD_BYTES)]
        done = self.exec(src, argv, timeout=seconds + 90)
        try:
            return parse_iperf3(done["stdout"])
        except (ValueError, KeyError) as exc:
            # the one-shot server we started waits on when its client never came: end it, by its pid
            self.exec(dst, ["sh", "-c", f'kill "$(cat {pidfile})" 2>/dev/null; true'])
            return {"error": (f"{exc}" or done["stderr"])[-300:]}

    def drops(self, node: str) -> dict[str, int]:
        """What the node's kernel dropped so far outside the medium: parse_drops() of `ip -j -s link
        show dev mesh0` and `tc -j -s qdisc show dev mesh0`, and its UDP errors (parse_udp_errors()
        of the netns' /proc/net/snmp: a receive or send buffer that was full)."""
        link = self.exec(node, ["ip", "-j", "-s", "link", "show", "dev", MESH_IFNAME])["stdout"]
        qdisc = self.exec(node, ["tc", "-j", "-s", "qdisc", "show", "dev", MESH_IFNAME])["stdout"]
        snmp = self.exec(node, ["cat", "/proc/net/snmp"])["stdout"]
        try:
            return {**parse_drops(link, qdisc), **parse_udp_errors(snmp)}
        except ValueError:
            return {}

    def tx_bitrates(self, node: str) -> dict[str, float]:
        """Peer node -> the bitrate mac80211 last sent to it at."""
        names = {n["mac"].lower(): name for name, n in self.info["nodes"].items()}
        dump = self.exec(node, ["iw", "dev", MESH_IFNAME, "station", "dump"])["stdout"]
        return {names.get(mac, mac): r for mac, r in parse_tx_bitrates(dump).items()}


def delta(before: dict, after: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}


def measure(lab: Lab, seconds: float, udp_mbps: float, pair_udp_mbps: float, pings: int,
            fixed_mbps: float | None, parts: tuple[str, ...] = PARTS) -> dict:
    """One lab's figures (the `parts` asked for), mac80211 choosing the rate (minstrel) or every
    radio held to `fixed_mbps` by the topology; the theory for the rate the radios then sent at."""
    out: dict = {"rate": fixed_mbps or "minstrel", "ping": {}, "tcp": {}, "udp": {}, "errors": []}
    if "line" in parts:
        line(lab, seconds, udp_mbps, pings, out)
    if "pairs" in parts:
        out["hidden"] = pairs(lab, seconds, pair_udp_mbps)
    # the rate each sender last sent at, to each peer: line1's, and hidden-a's
    out["tx_bitrate_mbps"] = lab.tx_bitrates("line1") if "line" in parts else {}
    out["pair_tx_bitrate_mbps"] = lab.tx_bitrates(HIDDEN_A) if "pairs" in parts else {}
    seen = {**out["tx_bitrate_mbps"], **out["pair_tx_bitrate_mbps"]}
    rate = out["tx_bitrate_mbps"].get("line2") or out["pair_tx_bitrate_mbps"].get(HIDDEN_RX)
    if fixed_mbps and any(r != fixed_mbps for r in seen.values()):
        # the figures are then not the fixed rate's: say so rather than label them with it
        out["errors"].append(f"asked for {fixed_mbps:g} Mb/s, the radios sent at {seen}")
        out["rate_mismatch"] = True
    if rate:
        out["theoretical"] = {h: theoretical(rate_index(rate), FREQ_MHZ, h) for h in (1, 2, 3)}
    return out


def line(lab: Lab, seconds: float, udp_mbps: float, pings: int, out: dict) -> None:
    """Ping, TCP and UDP from line1 over 1, 2 and 3 hops, into `out`."""
    for k, dst in enumerate(LINE[1:], start=1):  # warm-up: HWMP finds paths on demand
        try:
            lab.ping("line1", dst, 3)
        except (RuntimeError, ValueError) as exc:
            out["errors"].append(f"warm-up ping {dst}: {exc}")
    for k, dst in enumerate(LINE[1:], start=1):
        try:
            out["ping"][k] = lab.ping("line1", dst, pings)
        except (RuntimeError, ValueError) as exc:
            out["errors"].append(f"ping {dst}: {exc}")
        print(f"   ping line1 -> {dst} ({k} hops): {out['ping'].get(k)}", flush=True)
    for k, dst in enumerate(LINE[1:], start=1):
        for proto, offered in (("tcp", None), ("udp", udp_mbps)):
            before = lab.medium()
            row = lab.iperf("line1", dst, seconds, offered)
            row["medium"] = delta(before, lab.medium())
            out[proto][k] = row
            print(f"   {proto} line1 -> {dst} ({k} hops): {row}", flush=True)
    try:
        paths = agent_call(lab.port, "paths", {"node": "line1"})
        out["hops_seen"] = {p["destination_node"]: p.get("hop_count") for p in paths["paths"]}
    except RuntimeError as exc:
        out["errors"].append(f"paths: {exc}")


def at_once(lab: Lab, senders: tuple[str, str], receiver: str, seconds: float, udp_mbps: float) -> dict:
    """UDP from both `senders` to `receiver` at the same time: {sender: iperf3 row, "medium": the
    medium's counters over the runs}."""
    both: dict = {}
    dropped = {s: lab.drops(s) for s in (*senders, receiver)}
    before = lab.medium()
    threads = [threading.Thread(target=lambda s=s, p=p: both.__setitem__(s, lab.iperf(s, receiver, seconds, udp_mbps, p)))
               for s, p in zip(senders, IPERF_PORTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both["medium"] = delta(before, lab.medium())
    for s in (*senders, receiver):  # what the senders' and the receiver's kernels dropped: the medium never sees it
        after = lab.drops(s)
        both.setdefault(s, {})["kernel_drops"] = {k: after[k] - dropped[s].get(k, 0) for k in after}
    return both


def pairs(lab: Lab, seconds: float, udp_mbps: float) -> dict:
    """hidden-a alone to hidden-rx, then hidden-a and hidden-b at once (hidden from each other),
    then heard-a and heard-b at once to heard-rx (within range of each other), all UDP."""
    for sender, receiver in ((HIDDEN_A, HIDDEN_RX), (HIDDEN_B, HIDDEN_RX), (HEARD_A, HEARD_RX), (HEARD_B, HEARD_RX)):
        lab.ping(sender, receiver, 3)  # peer links and paths in place before the clock runs
    dropped = {n: lab.drops(n) for n in (HIDDEN_A, HIDDEN_RX)}
    before = lab.medium()
    alone = lab.iperf(HIDDEN_A, HIDDEN_RX, seconds, udp_mbps)
    alone["medium"] = delta(before, lab.medium())
    after = {n: lab.drops(n) for n in (HIDDEN_A, HIDDEN_RX)}
    alone["kernel_drops"] = {k: after[HIDDEN_A][k] - dropped[HIDDEN_A].get(k, 0) for k in after[HIDDEN_A]}
    alone["receiver_kernel_drops"] = {k: after[HIDDEN_RX][k] - dropped[HIDDEN_RX].get(k, 0) for k in after[HIDDEN_RX]}
    print(f"   hidden-a alone: {alone}", flush=True)
    both = at_once(lab, (HIDDEN_A, HIDDEN_B), HIDDEN_RX, seconds, udp_mbps)
    print(f"   hidden-a and hidden-b at once: {both}", flush=True)
    heard = at_once(lab, (HEARD_A, HEARD_B), HEARD_RX, seconds, udp_mbps)
    print(f"   heard-a and heard-b at once: {heard}", flush=True)
    return {"alone": alone, "both": both, "heard": heard}


def lab_name(airtime_on: bool, fixed_mbps: float | None) -> str:
    """The lab (and its directory) for one airtime setting and rate: radio, radio_air, radio_11,
    radio_air_5p5 ..."""
    return "radio" + ("_air" if airtime_on else "") + (f"_{fixed_mbps:g}".replace(".", "p") if fixed_mbps else "")


def topology_for(airtime_on: bool, work: Path, fixed_mbps: float | None = None) -> Path:
    """radio-bench.yaml as shipped (airtime off, minstrel), or a copy in `work` with airtime on
    and/or every radio held to `fixed_mbps` (`mesh: rate_mbps`), named after lab_name()."""
    if not airtime_on and fixed_mbps is None:
        return TOPOLOGY
    text = TOPOLOGY.read_text()
    edits = [("name: radio\n", f"name: {lab_name(airtime_on, fixed_mbps)}\n")]
    if airtime_on:
        edits.append(("airtime: false", "airtime: true"))
    if fixed_mbps is not None:
        edits.append(("\nmesh:\n", f"\nmesh:\n  rate_mbps: {fixed_mbps:g}\n"))
    for old, new in edits:
        if text.count(old) != 1:
            raise RuntimeError(f"{TOPOLOGY}: expected one {old!r} to write the {lab_name(airtime_on, fixed_mbps)} copy")
        text = text.replace(old, new)
    path = work / f"{lab_name(airtime_on, fixed_mbps)}.yaml"
    path.write_text(text)
    return path


def run_pass(airtime_on: bool, fixed_mbps: float | None, work: Path, seconds: float, udp_mbps: float,
             pair_udp_mbps: float, pings: int, parts: tuple[str, ...]) -> dict:
    """One lab in its own VM: up, measure, down. A lab that fails is a figure too: what happened."""
    from orchestrator.lab import labdir
    from orchestrator.vm.machine import VMRecord
    from orchestrator.vmlab import down_lab, up_in_vm

    topo = topology_for(airtime_on, work, fixed_mbps)
    lab_dir = work / lab_name(airtime_on, fixed_mbps)
    result: dict = {"rate": fixed_mbps or "minstrel", "host_loadavg_before": os.getloadavg()[:3]}
    t0 = time.monotonic()
    try:
        up_in_vm(lab_dir, topo, on_step=lambda msg: print(f"   up: {msg}", flush=True))
        result["up_s"] = round(time.monotonic() - t0, 1)
        record = VMRecord.load(lab_dir)
        assert record is not None
        lab = Lab(lab_dir, record.port, labdir.read_lab_json(lab_dir))
        result.update(measure(lab, seconds, udp_mbps, pair_udp_mbps, pings, fixed_mbps, parts))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        result["host_loadavg_after"] = os.getloadavg()[:3]
        down = down_lab(lab_dir, keep_files=True)
        result["down_error"] = down.get("error")
        result["wall_s"] = round(time.monotonic() - t0, 1)
    return result


# ---- report -------------------------------------------------------------------------------------

def _pass_rate(p: dict) -> float | None:
    """The rate a pass's radios sent at (line1 to line2, else hidden-a to hidden-rx)."""
    return p.get("tx_bitrate_mbps", {}).get("line2") or p.get("pair_tx_bitrate_mbps", {}).get(HIDDEN_RX)


def plot(report: dict, path: Path) -> str | None:
    """One row per rate: throughput and ping RTT against hops, airtime off and on beside the 802.11
    bound, and the pairs' received throughput (hidden-a alone; hidden-a and hidden-b at once; heard-a
    and heard-b at once) with the collisions counted. None when written, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is not installed (pip install 'meshpay-lab[plots]')"
    settings = [{**s, "passes": [p for p in s.get("passes", []) if not p.get("error")]} for s in report["settings"]]
    n_passes = max((len(s.get("passes", [])) for s in settings), default=0)
    if not n_passes:
        return "no PNG: no pass produced figures"
    fig, axes = plt.subplots(n_passes, 3, figsize=(15, 4.4 * n_passes), squeeze=False)
    hops = [1, 2, 3]
    for i, (thr, rtt, hid) in enumerate(axes):
        passes = [(s["airtime"], s["passes"][i]) for s in settings if len(s.get("passes", [])) > i]
        rate = next((_pass_rate(p) for _, p in passes if _pass_rate(p)), None)
        theory = next((p["theoretical"] for _, p in passes if p.get("theoretical")), None)
        mode = "minstrel's choice" if passes[0][1]["rate"] == "minstrel" else "fixed"
        lined = any(p.get("udp") or p.get("tcp") for _, p in passes)
        for proto, marker in (("udp", "o"), ("tcp", "s")):
            if theory and lined:
                thr.plot(hops, [theory[str(h)][f"{proto}_mbps"] for h in hops], marker + ":", color="grey",
                         label=f"{proto.upper()} 802.11 bound")
            for air, p in passes:
                if p.get(proto):
                    thr.plot(hops, [p[proto].get(str(h), {}).get("mbps") for h in hops], marker + "-",
                             label=f"{proto.upper()} airtime {'on' if air else 'off'}")
        thr.set(xlabel="hops", ylabel="Mb/s received", xticks=hops, title=f"iperf3 throughput, {rate} Mb/s ({mode})")
        if lined:
            thr.set_yscale("log")
            thr.legend(fontsize=7)
        else:
            thr.text(0.5, 0.5, "line not measured in this run", ha="center", transform=thr.transAxes)
        for air, p in passes:
            if p.get("ping"):
                ys = [((p["ping"].get(str(h)) or {}).get("rtt_ms") or {}).get("avg") for h in hops]
                rtt.plot(hops, ys, "o-", label=f"avg, airtime {'on' if air else 'off'}")
        if theory and lined:
            rtt.plot(hops, [theory[str(h)]["ping_rtt_ms"] for h in hops], "o:", color="grey", label="802.11, idle channel")
        rtt.set(xlabel="hops", ylabel="ms", title=f"ping round trip, {rate} Mb/s", xticks=hops)
        if lined:
            rtt.set_yscale("log")
            rtt.legend(fontsize=7)
        labels, values, colours, notes = [], [], [], []
        for air, p in passes:
            h, tag = p.get("hidden") or {}, "on" if air else "off"
            for name, row, colour in (("a alone", h.get("alone", {}), "#4a7ab5"),
                                      ("hidden a", h.get("both", {}).get(HIDDEN_A, {}), "#c0504d"),
                                      ("hidden b", h.get("both", {}).get(HIDDEN_B, {}), "#c0504d"),
                                      ("heard a", h.get("heard", {}).get(HEARD_A, {}), "#9bbb59"),
                                      ("heard b", h.get("heard", {}).get(HEARD_B, {}), "#9bbb59")):
                labels.append(f"{name}\n{tag}")
                values.append(row.get("mbps") or 0)
                colours.append(colour)
            notes.append(f"airtime {tag}, collisions: " + ", ".join(
                f"{what} {h.get(key, {}).get('medium', {}).get('collisions', '?')}"
                for what, key in (("a alone", "alone"), ("hidden pair", "both"), ("heard pair", "heard"))))
        bars = hid.bar(range(len(values)), values, color=colours)
        hid.set_xticks(range(len(values)), labels)
        for bar, value in zip(bars, values):
            hid.annotate(f"{value:.2g}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=6)
        if theory:
            hid.axhline(theory["1"]["udp_mbps"], color="grey", linestyle=":", label="one sender's 802.11 bound")
            hid.legend(fontsize=7, loc="upper right")
        hid.tick_params(axis="x", labelsize=6)
        hid.set(ylabel="Mb/s received", title=f"two senders, one receiver between (UDP), {rate} Mb/s")
        hid.set_xlabel("\n".join(notes), fontsize=7)  # the collisions counted, under the bars
    fig.suptitle(f"meshpay-lab radio benchmark ({report.get('started', '')}, QEMU TCG VM)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _pair_line(name: str, run: dict, senders: tuple[str, ...]) -> str:
    medium = run.get("medium", {})
    got = " + ".join(f"{s.split('-')[-1]} {run.get(s, {}).get('mbps')} Mb/s of {run.get(s, {}).get('sent_mbps')} sent "
                     f"({run.get(s, {}).get('lost_percent')} % lost, kernel drops {run.get(s, {}).get('kernel_drops')})"
                     for s in senders)
    receiver = next((v.get("kernel_drops") for k, v in run.items() if k.endswith("-rx") and isinstance(v, dict)),
                    run.get("receiver_kernel_drops"))
    return (f"{name}: {got}; {medium.get('collisions')} collisions, "
            f"{medium.get('dropped_collision')} frames lost to them, {medium.get('unacked')} unacknowledged"
            + (f"; receiver's kernel drops {receiver}" if receiver else ""))


def summary_lines(report: dict) -> list[str]:
    lines = []
    for s in report["settings"]:
        tag = "on " if s["airtime"] else "off"
        if s.get("error"):
            lines.append(f"airtime {tag}: error: {s['error']}")
        for p in s.get("passes", []):
            if p.get("error"):
                lines.append(f"airtime {tag} rate {p['rate']}: error: {p['error']}")
                continue
            rate = _pass_rate(p)
            head = f"airtime {tag} {rate} Mb/s" + (" (NOT the rate asked)" if p.get("rate_mismatch") else "")
            th = p.get("theoretical") or {}
            for h in ("1", "2", "3"):
                if h not in p.get("tcp", {}) and h not in p.get("udp", {}):
                    continue
                b = th.get(h, {})
                lines.append(f"{head} {h} hop(s): TCP {p['tcp'].get(h, {}).get('mbps')} Mb/s "
                             f"(bound {b.get('tcp_mbps')}), UDP {p['udp'].get(h, {}).get('mbps')} Mb/s "
                             f"(bound {b.get('udp_mbps')}), ping avg "
                             f"{((p['ping'].get(h) or {}).get('rtt_ms') or {}).get('avg')} ms (idle {b.get('ping_rtt_ms')})")
            hid = p.get("hidden")
            if hid:
                lines.append(f"{head} " + _pair_line("hidden-a alone", {HIDDEN_A: hid.get("alone", {}),
                                                                          "medium": hid.get("alone", {}).get("medium", {})},
                                                     (HIDDEN_A,)))
                lines.append(f"{head} " + _pair_line("hidden pair", hid.get("both", {}), (HIDDEN_A, HIDDEN_B)))
                if "heard" in hid:
                    lines.append(f"{head} " + _pair_line("heard pair", hid["heard"], (HEARD_A, HEARD_B)))
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each iperf3 run (default 10)")
    parser.add_argument("--udp-mbps", type=float, default=30.0, help="UDP offered load over the line (default 30)")
    parser.add_argument("--pair-udp-mbps", type=float, default=30.0,
                        help="UDP offered load per sender of the hidden and heard pairs (default 30)")
    parser.add_argument("--pings", type=int, default=20, help="echo requests per hop count (default 20)")
    parser.add_argument("--rates", nargs="+", default=["minstrel"],
                        help="one lab each: minstrel (mac80211 chooses, the default) and/or legacy rates in Mb/s "
                             "every radio is held to (the topology's mesh.rate_mbps)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure in each lab (default: line pairs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "radio.json", help="the JSON (the PNG goes beside it)")
    parser.add_argument("--only", choices=("off", "on"), help="one airtime setting only")
    args = parser.parse_args(argv)
    try:  # a rate that is not 802.11b/g is refused before any VM boots
        fixed = [None if r == "minstrel" else float(rates_mbps_ok(r)) for r in args.rates]
    except ValueError as exc:
        parser.error(f"--rates: {exc}")
    started = datetime.now(timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="meshpay-radio-"))
    report: dict = {"command": "python bench/bench_radio.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "started": started.isoformat(timespec="seconds"), "host_cpus": os.cpu_count(),
                    "theory_basis": THEORY_BASIS, "settings": []}
    for airtime_on in (False, True):
        if args.only and args.only != ("on" if airtime_on else "off"):
            continue
        setting: dict = {"airtime": airtime_on, "passes": []}
        for rate in fixed:
            print(f"== airtime {'on' if airtime_on else 'off'}, rate {rate or 'minstrel'} (labs in {work})", flush=True)
            row = run_pass(airtime_on, rate, work, args.seconds, args.udp_mbps, args.pair_udp_mbps, args.pings,
                           tuple(args.parts))
            setting["passes"].append(json.loads(json.dumps(row)))  # int keys (hops) become strings, as in the file
        report["settings"].append(setting)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    why_not = plot(report, args.out.with_suffix(".png"))
    print(why_not or f"wrote {args.out.with_suffix('.png')}")
    print("\n".join(summary_lines(report)))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
