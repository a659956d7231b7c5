"""bench/bench_mesh.py's pure parts: latency grouped by hop count, and the JSON and PNG it writes
(on fake figures: the bench itself needs the VM)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_mesh", ROOT / "bench" / "bench_mesh.py")
bench_mesh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_mesh)


def _sample(k: int, latency: float | None, votes: dict[str, float | None], hops: dict[str, int | None]) -> dict:
    return {"hops": k, "metrics": {"latency_ms": latency, "time_to_quorum_ms": None if latency is None else latency / 2,
                                   "hops": hops, "vote_ms": votes}}


SAMPLES = [
    _sample(1, 100.0, {"a1": 40.0, "a2": 50.0}, {"a1": 1, "a2": 1}),
    _sample(1, 300.0, {"a1": 60.0, "a2": None}, {"a1": 1, "a2": 1}),
    _sample(1, 200.0, {"a1": 50.0, "a2": 45.0}, {"a1": 1, "a2": 1}),
    _sample(3, 900.0, {"a1": 400.0, "a2": 500.0}, {"a1": 3, "a2": 4}),
    _sample(3, None, {"a1": None, "a2": None}, {"a1": 3, "a2": None}),  # not confirmed
]


def test_latency_is_grouped_by_the_clients_hop_count_and_votes_by_the_authoritys():
    out = bench_mesh.latency_by_hops(SAMPLES)
    one = out["transfers"]["1"]
    assert one["latency_ms"] == {"n": 3, "median": 200.0, "p90": 300.0}
    assert one["time_to_quorum_ms"]["median"] == 100.0 and one["hops_seen"] == [1] and one["unconfirmed"] == 0
    three = out["transfers"]["3"]
    assert three["latency_ms"]["n"] == 1 and three["unconfirmed"] == 1 and three["hops_seen"] == [3, 4]
    assert out["vote_ms_by_authority_hops"] == {"1": {"n": 5, "median": 50.0, "p90": 60.0},
                                                "3": {"n": 1, "median": 400.0, "p90": 400.0},
                                                "4": {"n": 1, "median": 500.0, "p90": 500.0}}


def test_an_empty_sample_is_null_not_zero():
    assert bench_mesh.spread([]) == {"n": 0, "median": None, "p90": None}


FIGURES = {"started": "2026-11-25T14:00:00+00:00", "convergence_s": {"diamond": 31.2, "hops": None},
           "healing": {"diamond": {"path_lifetime_s": 10.24, "runs": [{"healing_s": 9.4}, {"healing_s": None}],
                                   "healing_s": bench_mesh.healing_spread([9.4, None])},
                       "ladder": {"path_lifetime_s": 10.24, "runs": [{"healing_s": None}],
                                  "healing_s": bench_mesh.healing_spread([None])}},
           "latency": bench_mesh.latency_by_hops(SAMPLES)}


def test_results_are_written_as_json_and_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    files = bench_mesh.write_results(FIGURES, tmp_path / "results", "20261125T140000Z")
    assert json.loads(Path(files["json"]).read_text()) == FIGURES
    png = Path(files["png"])
    assert png.name == "mesh-20261125T140000Z.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files["png_missing"] is None


def test_without_matplotlib_the_json_is_still_written_and_the_reason_given(tmp_path, no_matplotlib):
    files = bench_mesh.write_results(FIGURES, tmp_path, "x")
    assert Path(files["json"]).exists() and files["png"] is None
    assert "matplotlib is not installed" in files["png_missing"]
    assert not (tmp_path / "mesh-x.png").exists()


def test_in_the_hops_topology_client_k_is_k_hops_from_every_authority():
    from orchestrator.lab.plan import make_plan
    from orchestrator.lab.topology import load_topology

    plan = make_plan(load_topology(ROOT / "topologies" / "hops.yaml"))
    authorities = {n.name for n in plan.nodes if n.role == "authority"}
    for k, client in bench_mesh.HOP_CLIENTS.items():
        dist, frontier = {client: 0}, [client]
        while frontier:
            node = frontier.pop(0)
            for n in plan.neighbours(node):
                if n not in dist:
                    dist[n] = dist[node] + 1
                    frontier.append(n)
        assert {dist[a] for a in authorities} == {k}, client


def test_healing_is_summed_up_over_the_runs_that_healed_and_counts_those_that_did_not():
    assert bench_mesh.healing_spread([3.0, 1.0, None, 2.0, 9.5]) == {
        "n": 4, "median": 2.5, "p90": 9.5, "max": 9.5, "unhealed": 1}
    assert bench_mesh.healing_spread([None]) == {"n": 0, "median": None, "p90": None, "max": None, "unhealed": 1}


def test_each_healing_topology_has_two_ways_from_client1_and_states_its_path_lifetime():
    """relay-failure isolates the first relay of client1's path: another must lead to the authorities."""
    from orchestrator.lab.plan import make_plan
    from orchestrator.lab.topology import load_topology

    lifetimes = {}
    for name in bench_mesh.HEALING_TOPOLOGIES:
        plan = make_plan(load_topology(ROOT / "topologies" / f"{name}.yaml"))
        first_hops = plan.neighbours("client1")
        assert len(first_hops) >= 2, name
        for dead in first_hops:
            seen, frontier = {"client1", dead}, ["client1"]
            while frontier:
                for n in plan.neighbours(frontier.pop()):
                    if n not in seen:
                        seen.add(n)
                        frontier.append(n)
            assert {"auth1", "client2"} <= seen, (name, dead)
        lifetimes[name] = bench_mesh.path_lifetime_s(name)
    assert lifetimes == {"diamond": 10.24, "diamond-longpath": 30.72, "ladder": 10.24}
