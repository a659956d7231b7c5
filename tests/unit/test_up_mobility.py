"""`up` again on a lab whose nodes have moved: it does not wait for links the topology's positions
promised to nodes that are elsewhere now."""

from dataclasses import replace

import pytest

from orchestrator.errors import MeshpayError
from orchestrator.air.airspace import write_config
from orchestrator.kernel.mesh import Station
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import parse_topology
from orchestrator.medium import control as medium_control
from orchestrator.verbs import up

TOPO = """
name: m
nodes:
  a: {role: authority, position: [0, 0]}
  b: {role: authority, position: [90, 0]}
  c:
    role: client
    position: [0, 50]
    mobility: {model: random_walk, area: [[0, 0], [300, 100]], speed: [1, 3]}
"""
PLAN = make_plan(parse_topology(TOPO))


def test_nothing_is_elsewhere_before_mobility_starts_or_without_a_medium_file(tmp_path):
    assert up._elsewhere(tmp_path, PLAN) == frozenset()
    write_config(tmp_path, medium_control.config_for(PLAN))
    assert up._elsewhere(tmp_path, PLAN) == frozenset()


def test_moving_nodes_and_moved_ones_are_elsewhere(tmp_path):
    cfg = medium_control.config_for(PLAN)
    write_config(tmp_path, replace(cfg, mobility_epoch=1.0))
    assert up._elsewhere(tmp_path, PLAN) == {"c"}
    moved = tuple(replace(r, position=(500.0, 0.0)) if r.name == "b" else r for r in cfg.radios)
    write_config(tmp_path, replace(cfg, radios=moved))
    assert up._elsewhere(tmp_path, PLAN) == {"b"}


def test_peering_wait_skips_links_of_nodes_elsewhere(monkeypatch):
    # a and b peer; c (planned next to a) has walked off and peers with nobody
    macs = {n.name: n.mac for n in PLAN.nodes}
    links = {"a": ["b"], "b": ["a"], "c": []}
    by_netns = {n.netns: n.name for n in PLAN.nodes}
    monkeypatch.setattr(up.mesh, "stations", lambda netns, ifname: [
        Station(macs[p], "ESTAB", -50, 0, 0, 0) for p in links[by_netns[netns]]])
    assert "c" in PLAN.neighbours("a")
    assert up.wait_for_peering(PLAN, 0.1, elsewhere=frozenset({"c"})) == {"a": ["b"], "b": ["a"], "c": []}
    with pytest.raises(MeshpayError, match=r"a lacks \['c'\]"):
        up.wait_for_peering(PLAN, 0.1)
