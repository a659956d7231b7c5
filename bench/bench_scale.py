"""The lab at scale: bring up meshes of 10, 50, 100 (and more) nodes in the lab's VM and measure.

    python bench/bench_scale.py [--sizes 10 50 100] [--seconds 30] [--memory 8G]

For each size N: a random placement of N nodes with bench/make_topology.py's seed (size 100 is
exactly topologies/random100.yaml), one VM per size, `up` as the CLI runs it. Reports the time
from the start of `up` (in the VM, boot excluded) to every planned peer link established and to
every node serving, the time of each step of `up`, PSS per node process (from smaps_rollup), and
settled transfers per second while WORKERS callers make random client-to-client transfers through
the REST APIs for a fixed period. Prints the figures and writes bench/results/scale.json.
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


def run_size(size: int, seed: int, root: Path, seconds: float, memory: str) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    topo = write_topology(size, seed, root)
    lab_dir = root / f"random{size}"
    vm = LabVM()
    t0 = time.monotonic()
    record = vm.boot(lab_dir, agent_argv(lab_dir), memory=memory)
    result: dict = {"nodes": size, "vm_memory": memory, "host_loadavg_before": os.getloadavg()}
    try:
        result["boot_s"] = round(vm.wait_ready(record, timeout=BOOT_TIMEOUT_S), 1)
        t_up = time.monotonic()
        up = up_in_vm(lab_dir, topo)
        result["up_wall_s"] = round(time.monotonic() - t_up, 1)
        result["peering_s"] = up["timings"]["peering_s"]
        result["serving_s"] = up["timings"]["serving_s"]
        result["steps_s"] = step_durations(lab_dir / "progress.log")
        record = VMRecord.load(lab_dir)
        state = lab.read_state(lab_dir)
        any_node = next(iter(up["nodes"]))
        pss = pss_mb(record.port, any_node, list(state["pids"].values()))
        result["pss_mb_per_node"] = {"mean": round(sum(pss) / len(pss), 1), "max": round(max(pss), 1),
                                     "count": len(pss)}
        result["guest_after_up"] = guest_facts(record.port, any_node)
        result["transfers"] = transfer_load(lab.read_lab_json(lab_dir), (lab_dir / "token").read_text().strip(),
                                            seconds, seed)
        result["guest_after_transfers"] = guest_facts(record.port, any_node)
    except Exception as exc:  # a size that does not fit is a figure too
        result["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        result["host_loadavg_after"] = os.getloadavg()
        result["total_wall_s"] = round(time.monotonic() - t0, 1)
        down_lab(lab_dir, keep_files=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the transfer period")
    ap.add_argument("--memory", default="8G", help="the VM's memory (100 nodes need more than 4G)")
    ap.add_argument("--root", type=Path, default=None, help="labs directory (default: a temporary one)")
    args = ap.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="meshpay-scale-"))
    out = ROOT / "bench" / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": "python bench/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "host_cpus": os.cpu_count(), "sizes": []}
    for size in args.sizes:
        print(f"== {size} nodes (labs in {root})", flush=True)
        r = run_size(size, args.seed, root, args.seconds, args.memory)
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
