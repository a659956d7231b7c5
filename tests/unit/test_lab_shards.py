"""A topology's `shards` (issue 17): validated at the edge, carried by the plan into every node's
committee entry, and one NODE_JSON, database, log and REST port per shard process of an
authority; `fault kill` stops every shard process of an authority, `restart` starts the stopped
ones, `status` reports each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from meshpay.config import parse_config
from meshpay.shards import MAX_SHARDS
from orchestrator.lab import keys, labdir, nodeconfig
from orchestrator.lab.plan import API_PORT, WIRE_PORT, make_plan
from orchestrator.lab.topology import TopologyError, load_topology, parse_topology
from orchestrator.runtime.health import process_alive
from orchestrator.verbs import fault, status

TOPOLOGY = """\
name: sh
nodes:
  auth1: {role: authority, position: [0, 0]}
  auth2:
    role: authority
    position: [50, 0]
    shards: 2
  auth3: {role: authority, position: [100, 0]}
  client1: {role: client, position: [0, 50]}
"""


def plan_of(text: str = TOPOLOGY):
    return make_plan(parse_topology(text, "sh.yaml"))


def test_the_plan_gives_a_sharded_authority_one_service_per_shard() -> None:
    plan = plan_of()
    auth2 = plan.node("auth2")
    assert auth2.shards == 2
    assert [(s.key, s.node, s.shard) for s in auth2.services] == [("auth2", "auth2", 0), ("auth2.s1", "auth2", 1)]
    assert [s.api_url for s in auth2.services] == [f"http://{auth2.mgmt_ip}:{API_PORT}",
                                                  f"http://{auth2.mgmt_ip}:{API_PORT + 1}"]
    assert auth2.api_url == auth2.services[0].api_url  # the node's REST URL is its shard 0's
    # the default is one shard, under the node's own name, as before shards
    for name in ("auth1", "auth3", "client1"):
        node = plan.node(name)
        assert node.shards == 1 and [s.key for s in node.services] == [name]


def configs(plan) -> dict[str, dict]:
    seeds = {n.name: keys.new_seed() for n in plan.nodes}
    pubkeys = {name: keys.public_key(seed) for name, seed in seeds.items()}
    return nodeconfig.node_configs(plan, seeds, pubkeys, "token",
                                   {s.key: f"/lab/{s.key}.db" for n in plan.nodes for s in n.services})


def test_every_node_config_carries_the_shard_counts_and_each_shard_has_its_own() -> None:
    plan = plan_of()
    cfgs = configs(plan)
    assert sorted(cfgs) == ["auth1", "auth2", "auth2.s1", "auth3", "client1"]
    for key, cfg in cfgs.items():
        # clients route each account's requests by it; peers pull every shard's log
        assert {m["name"]: m["shards"] for m in cfg["committee"]} == {"auth1": 1, "auth2": 2, "auth3": 1}, key
    s0, s1 = cfgs["auth2"], cfgs["auth2.s1"]
    assert (s0["shard"], s1["shard"]) == (0, 1)
    assert s0["seed"] == s1["seed"] and s0["wire_host"] == s1["wire_host"] and s0["wire_port"] == s1["wire_port"]
    assert (s0["api_port"], s1["api_port"]) == (API_PORT, API_PORT + 1)
    assert s0["db_path"] != s1["db_path"]
    # the node side takes them as two shards of one authority, on the wire ports it routes to
    n0, n1 = parse_config(s0, "auth2"), parse_config(s1, "auth2.s1")
    assert (n0.shards, n1.shards) == (2, 2)
    assert (n0.shard_wire_port, n1.shard_wire_port) == (WIRE_PORT, WIRE_PORT + 1)
    client = parse_config(cfgs["client1"], "client1")
    assert {m.name: m.shards for m in client.committee.members} == {"auth1": 1, "auth2": 2, "auth3": 1}


def test_mdns_labs_keep_the_shard_count_without_addresses() -> None:
    cfg = configs(plan_of("discovery: mdns\n" + TOPOLOGY))["client1"]
    assert [(m.get("host"), m["shards"]) for m in cfg["committee"]] == [(None, 1), (None, 2), (None, 1)]


def test_each_shard_gets_its_own_files_in_the_authoritys_directory(tmp_path: Path) -> None:
    plan = plan_of()
    seeds = {n.name: keys.new_seed() for n in plan.nodes}
    paths = nodeconfig.write_node_configs(tmp_path, plan, seeds, "token")
    node_dir = tmp_path / "nodes" / "auth2"
    assert paths["auth2"] == node_dir / "node.json" and paths["auth2.s1"] == node_dir / "node.shard1.json"
    s1 = json.loads(paths["auth2.s1"].read_text())
    assert s1["db_path"] == str(node_dir / "state.shard1.db")
    assert json.loads(paths["auth2"].read_text())["db_path"] == str(node_dir / "state.db")
    assert oct(paths["auth2.s1"].stat().st_mode & 0o777) == "0o600"  # it holds the seed
    assert nodeconfig.config_path(tmp_path, "auth2", 1) == paths["auth2.s1"]


@pytest.mark.parametrize(("value", "why"), [
    ("0", "greater than or equal to 1"),
    (str(MAX_SHARDS + 1), f"less than or equal to {MAX_SHARDS}"),
    ("true", "valid integer"),
    ("'2'", "valid integer"),
    ("2.0", "valid integer"),
])
def test_a_bad_shard_count_names_file_line_and_field(value: str, why: str) -> None:
    with pytest.raises(TopologyError, match=rf"sh.yaml: line 7: nodes.auth2.shards: .*{why}"):
        parse_topology(TOPOLOGY.replace("shards: 2", f"shards: {value}"), "sh.yaml")


@pytest.mark.parametrize("value", ["1", "2"])
def test_a_client_with_shards_is_refused_at_its_line(value: str) -> None:
    text = TOPOLOGY.replace("client1: {role: client, position: [0, 50]}",
                            f"client1:\n    role: client\n    shards: {value}")
    with pytest.raises(TopologyError, match=r"sh.yaml: line 11: nodes.client1.shards: only an authority runs shards"):
        parse_topology(text, "sh.yaml")


def test_the_shipped_line3_runs_auth2_as_two_shards() -> None:
    # the e2e test of line3 (tests/e2e/test_lab.py) counts on it
    plan = make_plan(load_topology(Path(__file__).parents[2] / "topologies" / "line3.yaml"))
    assert {n.name: n.shards for n in plan.nodes if n.shards > 1} == {"auth2": 2}


# -- the verbs over a lab directory whose shard processes are real (sleeping) processes --------


def _sleeper() -> subprocess.Popen:
    # its own session, as the launcher makes every node process: `fault kill` signals the group
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


@pytest.fixture
def lab(tmp_path: Path):
    """A lab directory as `up` leaves it for a plan with a 2-shard auth2, its processes sleepers."""
    from orchestrator.verbs.up import lab_info

    plan = plan_of()
    state = {"lab": plan.lab, "runtime": "netns", "seeds": {n.name: keys.new_seed() for n in plan.nodes}}
    procs = {"auth2": _sleeper(), "auth2.s1": _sleeper()}
    state["pids"] = {key: p.pid for key, p in procs.items()}
    labdir.write_state(tmp_path, state)
    labdir.write_lab_json(tmp_path, lab_info(plan, state))
    yield tmp_path, procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
        p.wait()


def test_lab_json_lists_every_shard_process_of_a_node(lab) -> None:
    lab_dir, _ = lab
    auth2 = labdir.lab_node(lab_dir, "auth2")
    assert auth2["shards"] == 2
    assert [(s["key"], s["shard"]) for s in labdir.node_services("auth2", auth2)] == [("auth2", 0), ("auth2.s1", 1)]
    # a lab.json written before shards: its node is one process under its own name
    old = {k: v for k, v in auth2.items() if k != "services"}
    assert labdir.node_services("auth2", old) == [{"key": "auth2", "shard": 0, "api_url": auth2["api_url"]}]


def test_kill_stops_every_shard_of_the_authority_and_restart_starts_them_all(lab, monkeypatch) -> None:
    lab_dir, procs = lab
    result = fault.run(lab_dir, "kill", "auth2")
    assert result["was_running"] is True
    assert result["pids"] == {key: p.pid for key, p in procs.items()}
    # both ended within the kill (the verb reaps what it can, as it does its own children)
    assert [process_alive(p.pid) for p in procs.values()] == [False, False]
    assert [p.poll() is not None for p in procs.values()] == [True, True]

    started: list[list] = []

    class FakeRuntime:
        def start_services(self, services):
            started.append(services)
            return {s.name: _sleeper().pid for s in services}

    healthy: list[dict] = []
    monkeypatch.setattr(fault, "runtime_for", lambda *a, **k: FakeRuntime())
    monkeypatch.setattr(fault, "wait_healthy", lambda urls, *a, **k: healthy.append(urls))
    result = fault.run(lab_dir, "restart", "auth2")
    try:
        assert result["already_running"] is False and result["restarted"] == ["auth2", "auth2.s1"]
        [services] = started
        node_dir = lab_dir / "nodes" / "auth2"
        assert [(s.name, s.config, s.log) for s in services] == [
            ("auth2", node_dir / "node.json", node_dir / "node.log"),
            ("auth2.s1", node_dir / "node.shard1.json", node_dir / "node.shard1.log")]
        assert all(s.node.netns == "mpl-sh-auth2" for s in services)  # both in the authority's netns
        auth2 = labdir.lab_node(lab_dir, "auth2")
        assert healthy == [{s["key"]: s["api_url"] for s in auth2["services"]}]
        assert labdir.read_state(lab_dir)["pids"] == result["pids"]
        # both running now: a second restart starts nothing
        assert fault.run(lab_dir, "restart", "auth2")["already_running"] is True and len(started) == 1
    finally:
        for pid in result["pids"].values():
            os.kill(pid, signal.SIGKILL)


def test_status_reports_each_shard_and_a_node_runs_only_when_all_do(lab, monkeypatch) -> None:
    lab_dir, procs = lab
    monkeypatch.setattr(status, "is_healthy", lambda url, timeout: url.endswith(f":{API_PORT}"))
    auth2 = labdir.lab_node(lab_dir, "auth2")
    pids = labdir.read_state(lab_dir)["pids"]
    row = status._processes("auth2", auth2, pids)
    assert row["process"] == "running" and row["serving"] is False  # shard 1 does not answer
    assert row["shards"] == [{"shard": 0, "process": "running", "serving": True},
                             {"shard": 1, "process": "running", "serving": False}]
    procs["auth2.s1"].kill()
    procs["auth2.s1"].wait()
    deadline = time.monotonic() + 5
    while process_alive(pids["auth2.s1"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status._processes("auth2", auth2, pids)["process"] == "1 of 2 shards running"
    procs["auth2"].kill()
    procs["auth2"].wait()
    assert status._processes("auth2", auth2, pids)["process"] == "stopped"


def test_the_runtimes_name_each_shard_process_by_its_service_key(monkeypatch, tmp_path: Path) -> None:
    from orchestrator.runtime import docker as docker_runtime, netns as netns_runtime
    from orchestrator.runtime.base import NodeRef, NodeService

    ref = NodeRef(lab="sh", name="auth2", netns="mpl-sh-auth2")
    services = [NodeService(ref, tmp_path / "node.json", tmp_path / "node.log", "auth2"),
                NodeService(ref, tmp_path / "node.shard1.json", tmp_path / "node.shard1.log", "auth2.s1")]
    batches: list[list[dict]] = []
    monkeypatch.setattr(netns_runtime, "spawn_nodes",
                        lambda batch: batches.append(batch) or {item["name"]: 10 + i for i, item in enumerate(batch)})
    assert netns_runtime.NetnsRuntime().start_services(services) == {"auth2": 10, "auth2.s1": 11}
    assert [(b["name"], b["netns_path"], b["config"]) for b in batches[0]] == [
        ("auth2", "/run/netns/mpl-sh-auth2", str(tmp_path / "node.json")),
        ("auth2.s1", "/run/netns/mpl-sh-auth2", str(tmp_path / "node.shard1.json"))]

    execs: list[tuple] = []
    rt = docker_runtime.DockerRuntime("sh")
    monkeypatch.setattr(rt, "start", lambda node, argv, log, env=None: execs.append((node.name, argv[-1], log)) or len(execs))
    assert rt.start_services(services) == {"auth2": 1, "auth2.s1": 2}
    assert execs == [("auth2", str(tmp_path / "node.json"), tmp_path / "node.log"),
                     ("auth2", str(tmp_path / "node.shard1.json"), tmp_path / "node.shard1.log")]
