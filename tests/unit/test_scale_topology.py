"""bench/make_topology.py: the shipped scale topologies are what the generator makes, and sane."""

from __future__ import annotations

import importlib.util
from collections import deque
from pathlib import Path

from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import parse_topology
from orchestrator.lab.validate import hop_counts

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_topology", ROOT / "bench" / "make_topology.py")
make_topology = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_topology)


def _generated(capsys, argv: list[str]) -> str:
    make_topology.main(argv)
    return capsys.readouterr().out


def _hops_from(plan, start: str) -> dict[str, int]:
    seen, todo = {start: 0}, deque([start])
    while todo:
        here = todo.popleft()
        for there in plan.neighbours(here):
            if there not in seen:
                seen[there] = seen[here] + 1
                todo.append(there)
    return seen


def test_shipped_scale_topologies_are_reproducible(capsys):
    assert _generated(capsys, ["random", "--nodes", "100", "--seed", "9"]) == (ROOT / "topologies/random100.yaml").read_text()
    assert _generated(capsys, ["grid", "--side", "10"]) == (ROOT / "topologies/grid10x10.yaml").read_text()
    assert (_generated(capsys, ["random", "--nodes", "32", "--seed", "9", "--authorities", "4", "--name", "random32"])
            == (ROOT / "topologies/random32.yaml").read_text())


def test_random_placement_is_connected_multihop_and_sparse(capsys):
    plan = make_plan(parse_topology(_generated(capsys, ["random", "--nodes", "60", "--seed", "3"])))
    hops = _hops_from(plan, plan.nodes[0].name)
    assert len(hops) == 60  # connected
    assert max(hops.values()) >= 4  # multi-hop
    assert all(1 <= len(plan.neighbours(n.name)) <= make_topology.MAX_DEGREE for n in plan.nodes)
    assert sum(n.role == "authority" for n in plan.nodes) == 7


def test_the_250_node_lab_puts_most_clients_several_hops_from_most_authorities(capsys):
    text = _generated(capsys, ["random", "--nodes", "250", "--seed", "9", "--authorities", "50"])
    assert text == (ROOT / "topologies/random250.yaml").read_text()
    plan = make_plan(parse_topology(text))
    authorities = [n.name for n in plan.nodes if n.role == "authority"]
    clients = [n.name for n in plan.nodes if n.role == "client"]
    assert (len(authorities), len(clients)) == (50, 200)
    hops = hop_counts(plan)
    distances = [hops[a][c] for a in authorities for c in clients if c in hops[a]]
    assert len(distances) == 200 * 50  # every authority reachable from every client
    assert sum(d >= 3 for d in distances) / len(distances) > 0.8
    # within the kernel's default mesh TTL (31): no path is longer than the mesh forwards
    assert max(distances) < 31

