"""The lab at scale: bring up meshes of 10, 50, 100 (and more) nodes in the lab's VM and measure.

    python bench/bench_scale.py [--sizes 10 50 100] [--seconds 30] [--memory 8G] [--topology T.yaml]

For each size N: a random placement of N nodes with bench/make_topology.py's seed (size 100 is
exactly topologies/random100.yaml), one VM per size, `up` as the CLI runs it. Reports the time
from the start of `up` (in the VM, boot excluded) to every planned peer link established and to
every node serving, the time of each step of `up`, PSS per node process (from smaps_rollup), and
one transfer between the leftmost and rightmost clients (and how long it took), then
settled transfers per second while WORKERS callers make random client-to-client transfers through
the REST APIs for a fixed period, and the medium's frames/s, CPU and frames by kind during `up`
(sampled from medium-stats.json in the shared lab directory). Prints the figures and writes
bench/results/scale-<sizes>.json.
Not a test: figures depend on the machine and on what else runs on it (the host's load average
is recorded with them).
"""

from __future__ import annotations

import argparse
import json
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

from orchestrator import lab  # noqa: E402
from orchestrator.dispatch import agent_call  # noqa: E402
from orchestrator.vm import LabVM, VMRecord, agent_argv  # noqa: E402
from orchestrator.vmlab import BOOT_TIMEOUT_S, down_lab, up_in_vm  # noqa: E402

WORKERS = 8


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


def one_transfer(info: dict, token: str, within_s: float = 300.0) -> dict:
    """One transfer between the leftmost and the rightmost client, tried again until it settles or
    `within_s` has passed (the first tries also wait for HWMP to find the paths): does the mesh
    settle a transfer at all, and how long does the first one take?"""
    clients = sorted((n for n, v in info["nodes"].items() if v["role"] == "client"),
                     key=lambda n: info["nodes"][n]["position"])
    src, dst = clients[0], clients[-1]
    start = time.monotonic()
    attempts, outcome = 0, None
    while outcome != "confirmed" and time.monotonic() - start < within_s:
        attempts += 1
        try:
            r = httpx.post(f"{info['nodes'][src]['rest_url']}/transfers", json={"to": dst, "amount": 1},
                           headers={"Authorization": f"Bearer {token}"}, timeout=within_s)
            body = r.json()
            outcome = body.get("outcome") if r.status_code == 200 else f"HTTP {r.status_code}: {json.dumps(body)[-600:]}"
        except (httpx.HTTPError, ValueError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
    return {"from": src, "to": dst, "outcome": outcome, "attempts": attempts,
            "seconds": round(time.monotonic() - start, 1)}


def transfer_load(info: dict, token: str, seconds: float, seed: int) -> dict:
    """WORKERS threads post random client-to-client transfers of 1 for `seconds`; counts what settled."""
    clients = sorted(n for n, v in info["nodes"].items() if v["role"] == "client")
    urls = {n: info["nodes"][n]["rest_url"] for n in clients}
    settled, failed, lock = [], [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(seed + i)
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
            while time.monotonic() < stop_at:
                src, dst = rng.sample(clients, 2)
                start = time.monotonic()
                try:
                    r = http.post(f"{urls[src]}/transfers", json={"to": dst, "amount": 1})
                    ok = r.status_code == 200 and r.json().get("outcome") == "confirmed"
                except httpx.HTTPError:
                    ok = False
                done = time.monotonic()
                with lock:
                    (settled if ok and done <= stop_at else failed).append(done - start)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(settled)
    return {"seconds": seconds, "workers": WORKERS, "settled": len(settled),
            "not_settled_in_period": len(failed),
            "settled_per_second": round(len(settled) / seconds, 2),
            "latency_p50_s": round(lat[len(lat) // 2], 2) if lat else None}


def run_size(size: int, seed: int, root: Path, seconds: float, memory: str,
             topology: Path | None = None) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    topo = topology or write_topology(size, seed, root)
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
        state = lab.read_state(lab_dir)
        any_node = next(iter(up["nodes"]))
        pss = pss_mb(record.port, any_node, list(state["pids"].values()))
        result["pss_mb_per_node"] = {"mean": round(sum(pss) / len(pss), 1), "max": round(max(pss), 1),
                                     "count": len(pss)}
        result["guest_after_up"] = guest_facts(record.port, any_node)
        token = (lab_dir / "token").read_text().strip()
        result["one_transfer"] = one_transfer(lab.read_lab_json(lab_dir), token)
        result["transfers"] = transfer_load(lab.read_lab_json(lab_dir), (lab_dir / "token").read_text().strip(),
                                            seconds, seed)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the transfer period")
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
        r = run_size(size, args.seed, root, args.seconds, args.memory, args.topology)
        report["sizes"].append(r)
        print(json.dumps(r, indent=1), flush=True)
        out.write_text(json.dumps(report, indent=1))
    print(f"{'nodes':>6} {'peered s':>9} {'serving s':>10} {'PSS MB':>7} {'transfers/s':>12}")
    for r in report["sizes"]:
        print(f"{r['nodes']:>6} {r.get('peering_s', '-'):>9} {r.get('serving_s', '-'):>10} "
              f"{r.get('pss_mb_per_node', {}).get('mean', '-'):>7} "
              f"{r.get('transfers', {}).get('settled_per_second', '-'):>12}  {r.get('error', '')[:80]}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
