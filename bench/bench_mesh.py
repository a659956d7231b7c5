"""The mesh's own figures: convergence, healing, and transfer latency against radio hop count.

    python bench/bench_mesh.py [--quick] [--transfers N] [--healing-runs N] [--only healing|latency]

Brings labs up through the CLI, one at a time (in the VM where this kernel lacks hwsim), each in
a lab root of its own, and takes them down again:
- convergence: `status`'s `convergence_s` (from the start of `up`, the VM's boot excluded, until
  every planned peer link is established) of topologies/line5.yaml, diamond.yaml and hops.yaml;
- healing: scenarios/relay-failure.yaml, N times (default 10) on each of HEALING_TOPOLOGIES
  (diamond.yaml with HWMP paths of 10000 TU, diamond-longpath.yaml with 30000 TU, the larger
  ladder.yaml): seconds from isolating the relay the path uses to the first transfer confirmed
  after it (the record's `healing_s`), per topology median, p90 and max, beside its path lifetime;
- latency against hops: on topologies/hops.yaml client<k> is k hops from every authority; one
  warm-up transfer per client (HWMP finds paths on demand, the node connects), then N transfers,
  each's latency and time to quorum, and every authority's vote round trip by its hop count.
--quick skips line5 and makes fewer transfers. Prints the figures, writes
bench/results/mesh-<UTC time>.json and, with the `plots` extra (matplotlib), a PNG beside it.
Not a test: figures depend on the machine and what else runs on it (the host's load is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLI = [sys.executable, "-m", "orchestrator.cli"]
CLI_TIMEOUT_S = 1200.0
HOP_CLIENTS = {1: "client1", 2: "client2", 3: "client3", 4: "client4"}  # topologies/hops.yaml
HEALING_TOPOLOGIES = ("diamond", "diamond-longpath", "ladder")
TU_S = 1.024e-3  # one 802.11 time unit


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread(values: list[float]) -> dict:
    """Median, p90 and count of a sample; nulls for an empty one (say so rather than invent)."""
    if not values:
        return {"n": 0, "median": None, "p90": None}
    return {"n": len(values), "median": round(statistics.median(values), 1), "p90": round(percentile(values, 90), 1)}


def healing_spread(values: list[float | None]) -> dict:
    """Median, p90 and max of the runs that healed; `unhealed` counts those that did not (None)."""
    healed = [v for v in values if v is not None]
    if not healed:
        return {"n": 0, "median": None, "p90": None, "max": None, "unhealed": len(values)}
    return {**spread(healed), "max": round(max(healed), 1), "unhealed": len(values) - len(healed)}


def path_lifetime_s(topology: str) -> float:
    """The topology's mesh_hwmp_active_path_timeout in seconds (the kernel's 5000 TU by default)."""
    from orchestrator.lab.topology import load_topology

    tu = load_topology(ROOT / "topologies" / f"{topology}.yaml").mesh.params.get("mesh_hwmp_active_path_timeout", 5000)
    return round(tu * TU_S, 2)


def latency_by_hops(samples: list[dict]) -> dict:
    """samples: {"hops": k (the client's planned hop count), "metrics": a transfer's metrics block}.
    Per k: latency and time to quorum of the confirmed ones, and the hop counts actually seen.
    Per authority hop count as measured: the vote round trips."""
    by_k: dict[int, dict] = {}
    votes: dict[int, list[float]] = {}
    for s in samples:
        m = s["metrics"]
        row = by_k.setdefault(s["hops"], {"latency": [], "quorum": [], "seen": set(), "unconfirmed": 0})
        row["seen"].update(h for h in m["hops"].values() if h is not None)
        if m["latency_ms"] is None:
            row["unconfirmed"] += 1
            continue
        row["latency"].append(m["latency_ms"])
        row["quorum"].append(m["time_to_quorum_ms"])
        for name, ms in m["vote_ms"].items():
            if ms is not None and m["hops"].get(name) is not None:
                votes.setdefault(m["hops"][name], []).append(ms)
    return {
        "transfers": {str(k): {"latency_ms": spread(r["latency"]), "time_to_quorum_ms": spread(r["quorum"]),
                               "hops_seen": sorted(r["seen"]), "unconfirmed": r["unconfirmed"]}
                      for k, r in sorted(by_k.items())},
        "vote_ms_by_authority_hops": {str(h): spread(v) for h, v in sorted(votes.items())},
    }


def write_results(figures: dict, out_dir: Path, stamp: str) -> dict[str, str | None]:
    """The JSON, and the PNG when matplotlib is there; returns both paths (PNG None, with why)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"mesh-{stamp}.json"
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    png_path = out_dir / f"mesh-{stamp}.png"
    why_not = plot(figures, png_path)
    return {"json": str(json_path), "png": None if why_not else str(png_path), "png_missing": why_not}


def plot(figures: dict, path: Path) -> str | None:
    """Latency against hops (median, p90 bar) beside convergence and healing bars. None when
    written, else why not (matplotlib is an optional extra, imported only here)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: benches run on servers
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is not installed (pip install 'meshpay-lab[plots]')"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    lat = figures.get("latency", {})
    for key, label, series in (("transfers", "transfer latency", "latency_ms"),
                               ("transfers", "time to quorum", "time_to_quorum_ms"),
                               ("vote_ms_by_authority_hops", "vote round trip", None)):
        rows = [(int(k), v[series] if series else v) for k, v in lat.get(key, {}).items()]
        rows = [(k, s) for k, s in rows if s["median"] is not None]
        if rows:
            left.errorbar([k for k, _ in rows], [s["median"] for _, s in rows],
                          yerr=[[0] * len(rows), [s["p90"] - s["median"] for _, s in rows]],
                          marker="o", capsize=3, label=label)
    left.set(xlabel="radio hops", ylabel="ms (median, bar to p90)", title="latency against hop count",
             xticks=[1, 2, 3, 4])
    left.legend()
    bars = [(f"convergence\n{name}", v) for name, v in figures.get("convergence_s", {}).items()]
    bars = [(label, v, None) for label, v in bars if v is not None]
    for name, h in figures.get("healing", {}).items():  # median, with a bar up to the max
        spread_s = h.get("healing_s") or {}
        if spread_s.get("median") is not None:
            bars.append((f"healing\n{name}\n(paths {h['path_lifetime_s']:g} s)", spread_s["median"],
                         spread_s["max"] - spread_s["median"]))
    right.bar([label for label, _, _ in bars], [v for _, v, _ in bars], color="#4a7ab5",
              yerr=[[0] * len(bars), [e or 0 for _, _, e in bars]], capsize=3)
    for i, (_, v, _) in enumerate(bars):
        right.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom")
    right.tick_params(axis="x", labelsize=7)
    right.set(ylabel="seconds (healing: median, bar to max)", title="mesh convergence and healing")
    fig.suptitle(f"meshpay-lab mesh benchmark ({figures.get('started', '')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


class LabRun:
    """One lab through the CLI, in a lab root of its own."""

    def __init__(self, topology: str) -> None:
        self.topology = ROOT / "topologies" / topology
        self.env = {**os.environ, "MESHPAY_LAB_ROOT": tempfile.mkdtemp(prefix="meshpay-bench-")}
        self.up_wall_s: float | None = None

    def _cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S)

    def json(self, *args: str) -> dict:
        done = self._cli(*args, "--format", "json")
        # `run` exits 1 when a step failed, and still prints its record: that is a figure too
        if done.returncode != 0 and not (args[0] == "run" and done.stdout.strip()):
            raise RuntimeError(f"meshpay-lab {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout)

    def up(self) -> None:
        t0 = time.monotonic()
        done = self._cli("up", str(self.topology))
        if done.returncode != 0:
            raise RuntimeError(f"meshpay-lab up {self.topology.name} failed: {done.stderr.strip()[-800:]}")
        self.up_wall_s = round(time.monotonic() - t0, 1)

    def down(self) -> None:
        self._cli("down")


def bring_up(name: str, figures: dict) -> LabRun | None:
    print(f"up {name} ...", flush=True)
    lab = LabRun(f"{name}.yaml")
    try:
        lab.up()
        status = lab.json("status")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        lab.down()
        figures["errors"][name] = str(exc)
        print(f"  {name}: {exc}")
        return None
    figures["convergence_s"][name] = status["convergence_s"]
    figures["up"][name] = {"wall_s_with_boot": lab.up_wall_s, **status["timings"]}
    print(f"  {name}: converged {status['convergence_s']} s after `up` started; up took {lab.up_wall_s} s with the boot")
    return lab


def healing_runs(lab: LabRun, topology: str, runs: int, figures: dict) -> None:
    rows = figures["healing"].setdefault(topology, {"path_lifetime_s": path_lifetime_s(topology), "runs": []})
    for i in range(runs):
        try:
            record = lab.json("run", str(ROOT / "scenarios" / "relay-failure.yaml"))
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            figures["errors"].setdefault(f"healing {topology}", []).append(str(exc)[-400:])
            rows["runs"].append({"healing_s": None, "error": str(exc)[-400:]})
            continue
        isolated = next((s.get("node") for s in record["steps"] if s["do"] == "fault"), None)
        attempts = next((s.get("attempts") for s in record["steps"] if "attempts" in s), None)
        rows["runs"].append({"healing_s": record["healing_s"], "isolated": isolated, "attempts": attempts,
                             "ok": record["ok"], "healing": record["healing"]})
        print(f"  {topology} healing run {i + 1}: isolated {isolated}, healed in {record['healing_s']} s "
              f"({attempts} transfer attempts)", flush=True)
    rows["healing_s"] = healing_spread([r["healing_s"] for r in rows["runs"]])
    print(f"  {topology}: healing {rows['healing_s']} s; its paths live {rows['path_lifetime_s']} s", flush=True)


def latency_runs(lab: LabRun, transfers: int, figures: dict) -> list[dict]:
    samples, warmups = [], {}
    for k, client in HOP_CLIENTS.items():
        to = "client2" if client == "client1" else "client1"
        for i in range(transfers + 1):
            try:
                result = lab.json("transfer", "--from", client, "--to", to, "--amount", "1")
            except RuntimeError as exc:
                figures["errors"].setdefault("transfers", []).append(f"{client}: {exc}")
                continue
            if i == 0:  # path discovery and connections: reported, not mixed into the sample
                warmups[str(k)] = result["metrics"]
            else:
                samples.append({"hops": k, "metrics": result["metrics"]})
        row = [s["metrics"]["latency_ms"] for s in samples if s["hops"] == k and s["metrics"]["latency_ms"]]
        print(f"  {client} ({k} hops): warm-up {warmups.get(str(k), {}).get('latency_ms')} ms, "
              f"then {spread(row)} ms; hops seen {warmups.get(str(k), {}).get('hops')}")
    figures["latency_warmup"] = warmups
    return samples


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="no line5, 3 transfers per hop count, one healing run")
    parser.add_argument("--transfers", type=int, help="transfers per hop count after the warm-up (default 10; quick 3)")
    parser.add_argument("--healing-runs", type=int, help="relay-failure scenario runs per healing topology "
                        "(default 10; quick 1, on the diamond only)")
    parser.add_argument("--only", choices=("healing", "latency"), help="only the healing or only the convergence "
                        "and latency figures")
    args = parser.parse_args(argv)
    transfers = args.transfers or (3 if args.quick else 10)
    runs = args.healing_runs or (1 if args.quick else 10)
    started = datetime.now(timezone.utc)
    figures: dict = {"started": started.isoformat(timespec="seconds"), "quick": args.quick,
                     "host_loadavg_start": os.getloadavg()[:3], "transfers_per_hop_count": transfers,
                     "convergence_s": {}, "up": {}, "healing": {}, "errors": {}}
    if not args.quick and args.only != "healing":
        lab = bring_up("line5", figures)
        if lab:
            lab.down()
    for topology in (() if args.only == "latency" else HEALING_TOPOLOGIES[:1] if args.quick else HEALING_TOPOLOGIES):
        lab = bring_up(topology, figures)
        if lab:
            try:
                healing_runs(lab, topology, runs, figures)
            finally:
                lab.down()
    lab = bring_up("hops", figures) if args.only != "healing" else None
    if lab:
        try:
            figures["latency"] = latency_by_hops(latency_runs(lab, transfers, figures))
        finally:
            lab.down()
    figures["host_loadavg_end"] = os.getloadavg()[:3]
    figures["files"] = write_results(figures, RESULTS, started.strftime("%Y%m%dT%H%M%SZ"))
    healing = {t: {"path_lifetime_s": h["path_lifetime_s"], **h.get("healing_s", {})} for t, h in figures["healing"].items()}
    print(json.dumps({"healing_s": healing, **{k: figures[k] for k in ("convergence_s", "latency", "files") if k in figures}},
                     indent=2))
    return figures


if __name__ == "__main__":
    main()
