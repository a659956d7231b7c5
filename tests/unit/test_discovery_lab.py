"""`discovery: mdns` in a topology: what the plan and the node configs become (no kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshpay.config import parse_config
from orchestrator.lab import keys
from orchestrator.lab.nodeconfig import node_configs
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import TopologyError, load_topology, parse_topology

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


def configs(plan):
    seeds = {n.name: keys.new_seed() for n in plan.nodes}
    pubkeys = {name: keys.public_key(seed) for name, seed in seeds.items()}
    return node_configs(plan, seeds, pubkeys, "token", {n.name: f"/tmp/{n.name}.db" for n in plan.nodes})


def test_mdns_configs_pin_keys_and_weights_but_give_no_addresses():
    plan = make_plan(load_topology(TOPOLOGIES / "discovery.yaml"))
    assert plan.discovery == "mdns" and plan.mesh_params["mesh_fwding"] == 1
    for name, cfg in configs(plan).items():
        assert cfg["discovery"] == "mdns"
        assert all("host" not in m and "port" not in m and m["public_key"] and m["weight"] for m in cfg["committee"])
        node = parse_config(cfg, name)
        assert {m.name for m in node.committee.members} == {"auth1", "auth2", "auth3", "auth4"}
        assert all(m.host is None for m in node.committee.members)


def test_static_labs_keep_their_addresses():
    plan = make_plan(load_topology(TOPOLOGIES / "line3.yaml"))
    assert plan.discovery == "static"
    cfg = configs(plan)["client1"]
    assert cfg["discovery"] == "static" and all(m["host"].startswith("10.77.") for m in cfg["committee"])


def test_mdns_forces_forwarding_on_and_refuses_a_non_forwarding_mesh():
    text = "name: d\ndiscovery: mdns\nnodes:\n  a: {role: authority}\n"
    assert make_plan(parse_topology(text)).mesh_params == {"mesh_fwding": 1}
    with pytest.raises(TopologyError, match="mesh_fwding: 0"):
        parse_topology("name: d\ndiscovery: mdns\nmesh: {params: {mesh_fwding: 0}}\nnodes:\n  a: {role: authority}\n")
    with pytest.raises(TopologyError, match="discovery"):
        parse_topology("name: d\ndiscovery: dns\nnodes:\n  a: {role: authority}\n")
