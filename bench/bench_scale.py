"""The lab at scale: bring up meshes of 10, 50, 100 (and more) nodes in the lab's VM, and pay across them.

    python bench/bench_scale.py [--sizes 10 50 100] [--topology T.yaml] [--transfers 200] [--pings 200]
                                [--workers 4] [--within 30] [--memory 8G]

For each size N: a random placement of N nodes with bench/make_topology.py's seed (size 100 is
exactly topologies/random100.yaml), or the given topology; one VM per size, `up` as the CLI runs
it. Reports the time from the start of `up` (in the VM, boot excluded) to every planned peer link
and to every node serving, each step of `up`, PSS per node process (smaps_rollup), then, counted
from the moment the lab serves: one transfer between the two clients farthest apart (its first
attempt, the paths all cold), `--transfers` random client-to-client transfers `--workers` at a
time (share confirmed within `--within` s, latency p50/p95/p99, why the others failed), `--pings`
pings between random node pairs (share answered), and what the medium counted meanwhile (frames
by kind, frames it lost itself vs frames its model dropped) with the CPU of the medium and of
the node processes. Prints the figures, writes bench/results/scale-<sizes>.json and a PNG of the
settled share and latency against lab size (with the plots extra).
Not a test: figures depend on the machine and on what else runs on it (the host's load average
is recorded with them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import make_topology  # noqa: E402

from orchestrator.lab import labdir  # noqa: E402
from orchestrator.errors import MeshpayError  # noqa: E402
from orchestrator.vm.client import agent_call  # noqa: E402
from orchestrator.vm.machine import LabVM, VMRecord, agent_argv  # noqa: E402
from orchestrator.vmlab import BOOT_TIMEOUT_S, down_lab, up_in_vm  # noqa: E402



def write_topology(size: int, seed: int, out_dir: Path) -> Path:
    nodes, range_m = make_topology.scatter(size, seed, authorities=4 if size < 50 else 7)
    path = out_dir / f"random{size}.yaml"
    path.write_text(make_topology.render(f"random{size}", f"bench_scale.py, seed {seed}", nodes, range_m))
    return path


def step_durations(progress: Path) -> dict[str, float]:
    """Seconds spent in each step of `up`, from the timestamps it writes to progress.log."""
    rows = [line.split(" ", 1) for line in progress.read_text().splitlines() if " " in line]
    return {msg: round(float(rows[i + 1][0]) - float(t), 2) for i, (t, msg) in enumerate(rows[:-1])}


def pss_mb(port: int, node: str, pids: list[int]) -> list[float]:
    """PSS of each node process; /proc is the VM's, whatever netns the command runs in."""
    script = "for p in " + " ".join(map(str, pids)) + "; do grep '^Pss:' /proc/$p/smaps_rollup; done"
    out = agent_call(port, "exec", {"node": node, "command": ["sh", "-c", script]})["stdout"]
    return [int(line.split()[1]) / 1024 for line in out.splitlines()]


def guest_facts(port: int, node: str) -> dict:
    """Load, memory and the processes that used most CPU (is the medium or the kernel the bottleneck?)."""
    script = ("cat /proc/loadavg; grep -E '^Mem(Total|Available):' /proc/meminfo; "
              "ps -eo time,rss,args --sort=-time | head -6")
    lines = agent_call(port, "exec", {"node": node, "command": ["sh", "-c", script]})["stdout"].splitlines()
    mem = {line.split(":")[0]: int(line.split()[1]) // 1024 for line in lines[1:3]}
    return {"loadavg": lines[0].split()[:3], "mem_total_mb": mem.get("MemTotal"),
            "mem_available_mb": mem.get("MemAvailable"), "top_cpu": [line[:120] for line in lines[4:]]}


class MediumSampler:
    """Reads the medium's stats file (the lab directory is shared with the VM) every few seconds
    while `up` runs: is the medium the bottleneck, and which frames keep it busy?"""

    def __init__(self, lab_dir: Path, every_s: float = 2.0) -> None:
        self.path, self.every_s = lab_dir / "medium-stats.json", every_s
        self.samples: list[dict] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self.done.wait(self.every_s):
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                continue
            if not self.samples or data.get("time") != self.samples[-1].get("time"):
                self.samples.append({"t": round(time.monotonic() - t0, 1), **data})

    def summary(self) -> dict:
        self.done.set()
        self.thread.join(timeout=5)
        if not self.samples:
            return {}
        busy = [s for s in self.samples if s.get("frames_per_s", 0) > 0]
        last = self.samples[-1]
        keys = ("frames", "deliveries", "beacons", "actions", "other_mgmt", "data", "overruns",
                "kernel_errors", "cpu_user_s", "cpu_sys_s", "uptime_s")
        return {"frames_per_s_max": max(s.get("frames_per_s", 0) for s in self.samples),
                "frames_per_s_mean": round(sum(s["frames_per_s"] for s in busy) / len(busy), 1) if busy else 0,
                "cpu_pct_max": max(s.get("cpu_pct", 0) for s in self.samples),
                "cpu_pct_mean": round(sum(s.get("cpu_pct", 0) for s in busy) / len(busy), 1) if busy else 0,
                "last": {k: last.get(k) for k in keys},
                "series": [(s["t"], s.get("frames_per_s"), s.get("cpu_pct")) for s in self.samples]}


def farthest_clients(info: dict) -> tuple[str, str]:
    """The two clients farthest apart by position: the longest multi-hop path a transfer takes."""
    clients = sorted(n for n, v in info["nodes"].items() if v["role"] == "client")
    return max(((a, b) for i, a in enumerate(clients) for b in clients[i + 1:]),
               key=lambda ab: math.dist(info["nodes"][ab[0]]["position"], info["nodes"][ab[1]]["position"]))


def post_transfer(http: httpx.Client, info: dict, src: str, dst: str) -> dict:
    """One REST transfer of 1 from `src` to `dst`: outcome, seconds, the node's rounds, and for a
    transfer that was not confirmed, why (per authority that gave no vote)."""
    start = time.monotonic()
    try:
        r = http.post(f"{info['nodes'][src]['rest_url']}/transfers", json={"to": dst, "amount": 1})
        body = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"from": src, "to": dst, "outcome": f"{type(exc).__name__}", "error": str(exc)[:300],
                "seconds": round(time.monotonic() - start, 3)}
    row = {"from": src, "to": dst, "seconds": round(time.monotonic() - start, 3), "http": r.status_code,
           "outcome": body.get("outcome") or f"HTTP {r.status_code}", "attempts": body.get("attempts")}
    if row["outcome"] != "confirmed":
        row["reasons"] = {name: entry.get("reason") or entry.get("vote")
                          for name, entry in (body.get("authorities") or {}).items() if entry.get("vote") != "ok"}
        row["error"] = (body.get("detail") or body.get("error") or "")[:300] if not body.get("authorities") else None
    return row


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def transfer_run(info: dict, token: str, count: int, workers: int, seed: int, within_s: float) -> dict:
    """`count` random client-to-client transfers, `workers` at a time (each worker sends its next
    transfer when the last one returned): share confirmed within `within_s`, latency percentiles,
    and why the others failed."""
    clients = sorted(n for n, v in info["nodes"].items() if v["role"] == "client")
    rng = random.Random(seed)
    pairs = [tuple(rng.sample(clients, 2)) for _ in range(count)]
    rows: list[dict] = []
    lock = threading.Lock()
    todo = iter(pairs)

    def worker() -> None:
        with httpx.Client(timeout=within_s * 4, headers={"Authorization": f"Bearer {token}"}) as http:
            while True:
                with lock:
                    pair = next(todo, None)
                if pair is None:
                    return
                row = post_transfer(http, info, *pair)
                with lock:
                    rows.append(row)
                    if len(rows) % 20 == 0:
                        ok = sum(r["outcome"] == "confirmed" for r in rows)
                        print(f"   transfers: {len(rows)}/{count}, {ok} confirmed", flush=True)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ok = [r["seconds"] for r in rows if r["outcome"] == "confirmed" and r["seconds"] <= within_s]
    reasons: dict[str, int] = {}
    for r in rows:
        for why in (r.get("reasons") or {}).values():
            reasons[str(why)] = reasons.get(str(why), 0) + 1
    return {"count": count, "workers": workers, "within_s": within_s, "wall_s": round(wall, 1),
            "confirmed_within": len(ok), "confirmed_share": round(len(ok) / count, 4),
            "latency_s": {"p50": percentile(ok, 0.50), "p95": percentile(ok, 0.95), "p99": percentile(ok, 0.99),
                          "max": max(ok) if ok else None},
            "not_confirmed": [r for r in rows if r["outcome"] != "confirmed" or r["seconds"] > within_s][:40],
            "failure_reasons": reasons,
            "multi_round": sum(1 for r in rows if (r.get("attempts") or 1) > 1)}


# A ping answers or gives up within 5 s; a call still open after this is a guest that stalled
# (seen once after 59 pings on random100), counted as unanswered instead of holding the run.
PING_CALL_TIMEOUT_S = 60.0


def ping_run(port: int, info: dict, count: int, workers: int, seed: int) -> dict:
    """`count` pings (one echo request each, 5 s to answer) between random node pairs, sent from
    inside the source node: the share answered is meshnet-lab's measure of a mesh that works."""
    nodes = sorted(info["nodes"])
    rng = random.Random(seed + 1)
    pairs = [tuple(rng.sample(nodes, 2)) for _ in range(count)]
    answered: list[bool] = []
    rtts: list[float] = []
    lock = threading.Lock()
    todo = iter(pairs)
    stalled = threading.Event()

    def worker() -> None:
        while not stalled.is_set():
            with lock:
                pair = next(todo, None)
            if pair is None:
                return
            src, dst = pair
            try:
                out = agent_call(port, "exec", {"node": src, "command": [
                    "ping", "-n", "-c", "1", "-W", "5", info["nodes"][dst]["mesh_ip"]]},
                    timeout=PING_CALL_TIMEOUT_S)
                text = out.get("stdout", "")
                ok = " 0% packet loss" in text
                rtt = float(text.split("time=")[1].split()[0]) if "time=" in text else None
            except MeshpayError as exc:  # the VM answered with a failure (vm/client.agent_call)
                ok, rtt = False, None
                if "does not answer" in str(exc):
                    stalled.set()  # the rest would time out too: stop, and say so
            with lock:
                answered.append(ok)
                if rtt is not None:
                    rtts.append(rtt)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"count": count, "sent": len(answered), "agent_stalled": stalled.is_set(),
            "answered": sum(answered), "answered_share": round(sum(answered) / count, 4),
            "rtt_ms": {"p50": percentile(rtts, 0.5), "p95": percentile(rtts, 0.95)}}


def node_cpu_s(port: int, node: str, pids: list[int]) -> float:
    """CPU seconds (user + system) the node processes have used so far."""
    script = "for p in " + " ".join(map(str, pids)) + "; do cat /proc/$p/stat 2>/dev/null; echo; done"
    out = agent_call(port, "exec", {"node": node, "command": ["sh", "-c", script]})["stdout"]
    ticks = 0
    for line in out.splitlines():
        fields = line.rsplit(")", 1)[-1].split()
        if len(fields) > 12:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / 100.0  # USER_HZ


def medium_now(lab_dir: Path) -> dict:
    try:
        return json.loads((lab_dir / "medium-stats.json").read_text())
    except (OSError, ValueError):
        return {}


def counter_delta(before: dict, after: dict) -> dict:
    """What the medium counted between two reads of its stats file (frames by kind, lost, dropped)."""
    return {k: after[k] - before.get(k, 0) for k, v in after.items()
            if isinstance(v, int) and not isinstance(v, bool) and k not in ("pid", "version")}


def run_size(size: int, seed: int, root: Path, memory: str, topology: Path | None = None, *,
             transfers: int = 200, pings: int = 200, workers: int = 4, within_s: float = 30.0) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    topo = (topology or write_topology(size, seed, root)).resolve()  # the VM reads it by absolute path
    lab_dir = root / topo.stem
    vm = LabVM()
    t0 = time.monotonic()
    record = vm.boot(lab_dir, agent_argv(lab_dir), memory=memory)
    result: dict = {"nodes": size, "topology": topo.name, "vm_memory": memory,
                    "host_loadavg_before": os.getloadavg()}
    sampler = MediumSampler(lab_dir)
    try:
        result["boot_s"] = round(vm.wait_ready(record, timeout=BOOT_TIMEOUT_S), 1)
        t_up = time.monotonic()
        try:
            up = up_in_vm(lab_dir, topo)
        finally:
            result["medium"] = sampler.summary()
            if (lab_dir / "progress.log").exists():
                result["steps_s"] = step_durations(lab_dir / "progress.log")
        result["up_wall_s"] = round(time.monotonic() - t_up, 1)
        result["peering_s"] = up["timings"]["peering_s"]
        result["serving_s"] = up["timings"]["serving_s"]
        record = VMRecord.load(lab_dir)
        state = labdir.read_state(lab_dir)
        any_node = next(iter(up["nodes"]))
        pss = pss_mb(record.port, any_node, list(state["pids"].values()))
        result["pss_mb_per_node"] = {"mean": round(sum(pss) / len(pss), 1), "max": round(max(pss), 1),
                                     "count": len(pss)}
        result["guest_after_up"] = guest_facts(record.port, any_node)
        token = (lab_dir / "token").read_text().strip()
        info = labdir.read_lab_json(lab_dir)
        pids = list(state["pids"].values())
        medium_before, cpu_before, t_phase = medium_now(lab_dir), node_cpu_s(record.port, any_node, pids), time.monotonic()
        src, dst = farthest_clients(info)
        with httpx.Client(timeout=within_s * 4, headers={"Authorization": f"Bearer {token}"}) as http:
            result["first_transfer_farthest"] = post_transfer(http, info, src, dst)
        print(f"   first transfer {src} -> {dst}: {result['first_transfer_farthest']['outcome']} "
              f"in {result['first_transfer_farthest']['seconds']} s", flush=True)
        result["transfers"] = transfer_run(info, token, transfers, workers, seed, within_s)
        # Counted over the transfers alone, and printed at once: a guest that stalls later (the
        # pings) must not take these figures with it.
        phase_s = time.monotonic() - t_phase
        medium_after = medium_now(lab_dir)
        result["medium_during_transfers"] = counter_delta(medium_before, medium_after)
        result["medium_cpu_pct_during_transfers"] = round(100 * (medium_after.get("cpu_s", 0) - medium_before.get("cpu_s", 0)) / phase_s, 1)
        result["node_cpu_pct_during_transfers"] = round(100 * (node_cpu_s(record.port, any_node, pids) - cpu_before) / phase_s, 1)
        result["phase_s"] = round(phase_s, 1)
        print("   " + json.dumps({k: result[k] for k in ("transfers", "medium_during_transfers",
              "medium_cpu_pct_during_transfers", "node_cpu_pct_during_transfers", "phase_s")}), flush=True)
        result["pings"] = ping_run(record.port, info, pings, workers, seed)
        result["guest_after_transfers"] = guest_facts(record.port, any_node)
    except Exception as exc:  # a size that does not fit is a figure too
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        result["host_loadavg_after"] = os.getloadavg()
        t_down = time.monotonic()
        down = down_lab(lab_dir, keep_files=True)
        result["down_s"] = round(time.monotonic() - t_down, 1)
        result["down_error"] = down.get("error")
        result["total_wall_s"] = round(time.monotonic() - t0, 1)
    return result


def plot(report: dict, path: Path) -> None:
    """Share of transfers confirmed and their latency against lab size (needs the plots extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (pip install 'meshpay-lab[plots]'): no PNG")
        return
    rows = [r for r in report["sizes"] if "transfers" in r]
    if not rows:
        return
    sizes = [r["nodes"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(sizes, [100 * r["transfers"]["confirmed_share"] for r in rows], "o-", label="transfers confirmed")
    left.plot(sizes, [100 * r["pings"]["answered_share"] for r in rows], "s--", label="pings answered")
    left.set(xlabel="nodes", ylabel="%", ylim=(0, 105), title="settled share")
    left.legend()
    for q in ("p50", "p95", "p99"):
        right.plot(sizes, [r["transfers"]["latency_s"][q] for r in rows], "o-", label=q)
    right.set(xlabel="nodes", ylabel="seconds", title="transfer latency (confirmed)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--transfers", type=int, default=200, help="random client-to-client transfers per size")
    ap.add_argument("--pings", type=int, default=200, help="pings between random node pairs per size")
    ap.add_argument("--workers", type=int, default=4, help="transfers (and pings) in flight at once")
    ap.add_argument("--within", type=float, default=30.0, help="a transfer counts as confirmed within this many s")
    ap.add_argument("--memory", default="8G", help="the VM's memory (100 nodes need more than 4G)")
    ap.add_argument("--topology", type=Path, default=None,
                    help="a topology file instead of a random placement (then give one size: its node count)")
    ap.add_argument("--root", type=Path, default=None, help="labs directory (default: a temporary one)")
    args = ap.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="meshpay-scale-"))
    out = ROOT / "bench" / "results" / f"scale-{'-'.join(map(str, args.sizes))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": "python bench/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "host_cpus": os.cpu_count(), "sizes": []}
    for size in args.sizes:
        print(f"== {size} nodes (labs in {root})", flush=True)
        r = run_size(size, args.seed, root, args.memory, args.topology, transfers=args.transfers,
                     pings=args.pings, workers=args.workers, within_s=args.within)
        report["sizes"].append(r)
        print(json.dumps(r, indent=1), flush=True)
        out.write_text(json.dumps(report, indent=1))
    print(f"{'nodes':>6} {'peered s':>9} {'serving s':>10} {'PSS MB':>7} {'confirmed':>10} {'p50 s':>6} "
          f"{'p95 s':>6} {'pings':>6} {'first':>10} {'lost':>5}")
    for r in report["sizes"]:
        t, lat = r.get("transfers", {}), r.get("transfers", {}).get("latency_s", {})
        print(f"{r['nodes']:>6} {r.get('peering_s', '-'):>9} {r.get('serving_s', '-'):>10} "
              f"{r.get('pss_mb_per_node', {}).get('mean', '-'):>7} {t.get('confirmed_share', '-'):>10} "
              f"{lat.get('p50', '-'):>6} {lat.get('p95', '-'):>6} {r.get('pings', {}).get('answered_share', '-'):>6} "
              f"{r.get('first_transfer_farthest', {}).get('outcome', '-'):>10} "
              f"{r.get('medium_during_transfers', {}).get('lost', '-'):>5}  {r.get('error', '')[:80]}")
    print(f"wrote {out}")
    plot(report, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
