"""CPU a FastPay node spends from fork to serving /health, and while idle afterwards.

Configs are shaped like the 100-node lab's (topologies/random100.yaml: 7 authorities, 93 clients,
every client funded at genesis), on loopback. Nodes are forked from this process after
`orchestrator.runtime.launcher.preload()`, as `up` does, so import time is not counted. Each node is
started and waited for in turn (its CPU to serving is its own), then all idle together.

    python bench/bench_node_start.py [--discovery static|mdns] [--start 10] [--idle 30] [--profile DIR]

Prints per-node figures and writes bench/results/node-start-<discovery>.json. With --profile,
every node writes a cProfile of its whole life (start-up and idle) to DIR/<name>.prof.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshpay.crypto import KeyPair
from meshpay.localnet import free_port
from orchestrator.runtime.launcher import preload

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of every thread of `pid` so far."""
    try:  # nanoseconds on the CPU per thread: finer than the clock ticks of /proc/PID/stat
        return sum(int(Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()[0])
                   for t in os.listdir(f"/proc/{pid}/task")) / 1e9
    except (FileNotFoundError, ProcessLookupError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(rest.split()[0])
    return out


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def make_configs(directory: Path, authorities: int, clients: int, discovery: str) -> list[dict]:
    nodes = []
    specs = [(f"auth{i + 1}", "authority") for i in range(authorities)] + [(f"client{i + 1}", "client") for i in range(clients)]
    for i, (name, role) in enumerate(specs):
        host = f"127.0.{10 + i // 250}.{1 + i % 250}"
        seed = os.urandom(32)
        nodes.append({"name": name, "role": role, "seed": seed, "pub": KeyPair(seed).public_key.hex(), "host": host,
                      "wire_port": free_port(host), "api_port": free_port(host)})
    committee = [{"name": n["name"], "public_key": n["pub"], "weight": 1}
                 | ({} if discovery == "mdns" else {"host": n["host"], "port": n["wire_port"]})
                 for n in nodes if n["role"] == "authority"]
    client_list = [{"name": n["name"], "public_key": n["pub"], "host": n["host"], "port": n["wire_port"]}
                   for n in nodes if n["role"] == "client"]
    genesis = {n["pub"]: 1000 for n in nodes if n["role"] == "client"}
    for n in nodes:
        d = directory / n["name"]
        d.mkdir(parents=True, exist_ok=True)
        cfg = {"name": n["name"], "role": n["role"], "seed": n["seed"].hex(), "db_path": str(d / "state.db"),
               "wire_host": n["host"], "wire_port": n["wire_port"], "api_host": n["host"], "api_port": n["api_port"],
               "api_token": "t" * 32, "committee": committee, "clients": client_list, "genesis": genesis,
               "discovery": discovery}
        n["config"] = str(d / "node.json")
        n["log"] = str(d / "node.log")
        Path(n["config"]).write_text(json.dumps(cfg))
    return nodes


def fork_node(node: dict, profile_dir: str | None) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        out = os.open(node["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        from meshpay.server import main

        if profile_dir:
            import cProfile

            prof = cProfile.Profile()

            def dump(*_: object) -> None:
                prof.disable()
                prof.dump_stats(os.path.join(profile_dir, node["name"] + ".prof"))
                os._exit(0)

            signal.signal(signal.SIGUSR1, dump)
            prof.enable()
        code = main(["--config", node["config"]])
    except BaseException as exc:  # noqa: BLE001
        print(f"bench: node failed: {exc!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(code or 0)


def healthy(node: dict) -> bool:
    try:
        with urllib.request.urlopen(f"http://{node['host']}:{node['api_port']}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--discovery", choices=("static", "mdns"), default="static")
    ap.add_argument("--authorities", type=int, default=7)
    ap.add_argument("--clients", type=int, default=93)
    ap.add_argument("--start", type=int, default=10, help="how many of the nodes to start (authorities first)")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle to measure once all serve")
    ap.add_argument("--profile", metavar="DIR")
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    t0 = time.monotonic()
    preload()
    preload_s = time.monotonic() - t0
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="bench-node-start-"))
    nodes = make_configs(workdir, args.authorities, args.clients, args.discovery)[: args.start]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    pids: list[int] = []
    try:
        for node in nodes:
            started = time.monotonic()
            pid = fork_node(node, args.profile)
            pids.append(pid)
            node["pid"] = pid
            while not healthy(node):
                if time.monotonic() - started > 60:
                    raise SystemExit(f"{node['name']} did not serve in 60 s; see {node['log']}")
                time.sleep(0.01)
            node["serve_s"] = time.monotonic() - started
            node["cpu_to_serving_s"] = cpu_s(pid)
        before = {n["name"]: cpu_s(n["pid"]) for n in nodes}
        time.sleep(args.idle)
        for n in nodes:
            n["idle_cpu_pct"] = 100 * (cpu_s(n["pid"]) - before[n["name"]]) / args.idle
            n.update(memory_kb(n["pid"]))
            n["threads"] = threads(n["pid"])
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGUSR1 if args.profile else signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in pids:
            os.waitpid(pid, 0)

    rows = [{k: n[k] for k in ("name", "role", "serve_s", "cpu_to_serving_s", "idle_cpu_pct", "rss", "pss", "threads")}
            for n in nodes]
    print(f"preload {preload_s:.2f} s; discovery={args.discovery}; {args.authorities} authorities, {args.clients} clients in config")
    print(f"{'node':10} {'serve s':>8} {'CPU to serve s':>15} {'idle CPU %':>10} {'RSS MB':>7} {'PSS MB':>7} {'thr':>4}")
    for r in rows:
        print(f"{r['name']:10} {r['serve_s']:8.3f} {r['cpu_to_serving_s']:15.3f} {r['idle_cpu_pct']:10.3f} "
              f"{r['rss'] / 1024:7.1f} {r['pss'] / 1024:7.1f} {r['threads']:4d}")
    summary = {}
    for role in ("authority", "client"):
        sel = [r for r in rows if r["role"] == role]
        if sel:
            summary[role] = {k: round(statistics.mean(r[k] for r in sel), 4)
                             for k in ("serve_s", "cpu_to_serving_s", "idle_cpu_pct", "rss", "pss", "threads")}
            print(f"mean {role}: " + ", ".join(f"{k}={v}" for k, v in summary[role].items()))
    out = ROOT / "bench" / "results" / f"node-start-{args.discovery}{'-' + args.label if args.label else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "preload_s": preload_s, "nodes": rows, "mean": summary}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
