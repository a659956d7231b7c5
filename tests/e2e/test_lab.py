"""The real thing: `meshpay-lab up` builds the 802.11s mesh of hwsim radios (in a virtme-ng VM where
this kernel has no mac80211_hwsim), FastPay transfers cross it over several radio hops, and `down`
leaves nothing behind."""

from __future__ import annotations

import json
import subprocess

import pytest

from orchestrator.lab.plan import WIRE_PORT

from .capture_check import check_capture_on_line3
from .labdriver import lab_fixture, up

pytestmark = pytest.mark.e2e

demo = lab_fixture("5auth3client.yaml", "demo")


def test_every_node_peers_with_exactly_its_planned_neighbours_and_serves(demo):
    status = demo.json("status")
    rows = {row["node"]: row for row in status["nodes"]}
    assert set(rows) == {n.name for n in demo.plan.nodes}
    for node in demo.plan.nodes:
        assert rows[node.name]["peers"] == sorted(demo.plan.neighbours(node.name)), node.name
        assert rows[node.name]["serving"] is True, node.name


def test_up_again_reconciles_without_duplicating(demo):
    demo.cli("up", str(demo.topology))
    status = demo.json("status")
    assert len(status["nodes"]) == len(demo.plan.nodes)
    assert all(row["serving"] for row in status["nodes"])


def test_transfer_between_non_neighbour_clients_rides_the_mesh(demo):
    assert "client3" not in demo.plan.neighbours("client1")
    before = demo.counter("auth5", "rx_bytes")
    result = demo.json("transfer", "--from", "client1", "--to", "client3", "--amount", "25")
    assert result["outcome"] == "confirmed", result
    assert len(result["certificate"]["signatures"]) >= 4  # quorum of 5 equal weights
    # auth5 is five radio hops from client1: its radio carried the order and the confirmation.
    assert demo.counter("auth5", "rx_bytes") > before

    paths = demo.json("paths", "client1")["paths"]
    hops = {p["destination_node"]: p["hop_count"] for p in paths}
    assert hops.get("auth5", 0) >= 2, paths


def test_every_authority_settled_the_transfer(demo):
    keys = json.loads((demo.lab_dir / "lab.json").read_text())["nodes"]
    sender, receiver = keys["client1"]["public_key"], keys["client3"]["public_key"]
    for node in demo.plan.nodes:
        if node.role != "authority":
            continue
        accounts = {a["id"]: a for a in demo.json("balance", node.name)["accounts"]}
        assert accounts[sender]["balance"] == 1000 - 25, node.name
        assert accounts[receiver]["balance"] == 500 + 25, node.name


def test_transfers_stop_when_the_senders_radio_is_cut(demo):
    # The management link stays up: if FastPay traffic could use it, this transfer would succeed.
    demo.cli("exec", "client1", "--", "ip", "link", "set", "mesh0", "down")
    done = demo.cli("transfer", "--from", "client1", "--to", "client3", "--amount", "1", check=False)
    assert done.returncode != 0, done.stdout
    rows = {row["node"]: row for row in demo.json("status")["nodes"]}
    assert rows["client1"]["serving"] is True  # the node itself is fine: only its radio is cut


def test_down_leaves_nothing_behind(demo):
    removed = demo.json("down")
    assert "error" not in removed and removed["leftover"] == [], removed
    assert len(removed["radios"]) == len(demo.plan.nodes)
    assert not demo.lab_dir.exists()
    leftover = subprocess.run(["pgrep", "-f", f"rwdir.*{demo.lab_dir}"], capture_output=True)
    assert leftover.returncode == 1, "the lab's VM is still running"


def test_line_has_a_three_hop_path_and_carries_transfers():
    lab = up("line3.yaml")
    try:
        result = lab.json("transfer", "--from", "client1", "--to", "client2", "--amount", "7")
        assert result["outcome"] == "confirmed", result
        check_sharded_authority(lab, "auth2", {"client1": 1000 - 7, "client2": 1000 + 7})
        lab.cli("exec", "auth1", "--", "ping", "-c", "3", "-i", "0.3", lab.plan.node("auth4").mesh_ip)
        hops = {p["destination_node"]: p["hop_count"] for p in lab.json("paths", "auth1")["paths"]}
        assert hops.get("auth4") == 3, hops
        check_capture_on_line3(lab)  # issue 14, on this lab: see capture_check.py
    finally:
        removed = lab.json("down")
    assert removed["leftover"] == []
    assert not lab.lab_dir.exists()


def check_sharded_authority(lab, node: str, balances: dict[str, int]) -> None:
    """line3's auth2 runs two FastPay shards (issue 17): both processes serve on their own wire
    port of its one mesh address, together they hold every account exactly once with the
    settled balances, and `fault kill` / `restart` take down and bring back both."""
    shards = lab.plan.node(node).shards
    assert shards == 2, "line3.yaml's auth2 is the lab's sharded authority"

    def row() -> dict:
        return {r["node"]: r for r in lab.json("status")["nodes"]}[node]

    assert [(s["shard"], s["process"], s["serving"]) for s in row()["shards"]] == \
        [(k, "running", True) for k in range(shards)]
    listening = lab.cli("exec", node, "--", "ss", "-ltnH").stdout
    mesh_ip = lab.plan.node(node).mesh_ip
    for k in range(shards):
        assert f"{mesh_ip}:{WIRE_PORT + k} " in listening, (k, listening)
    keys = {name: n["public_key"] for name, n in json.loads((lab.lab_dir / "lab.json").read_text())["nodes"].items()}
    accounts = lab.json("balance", node)["accounts"]
    held = sorted(a["id"] for a in accounts)
    assert held == sorted(keys[c] for c in balances), accounts  # each client's account in one shard only
    assert {a["id"]: a["balance"] for a in accounts} == {keys[c]: b for c, b in balances.items()}

    killed = lab.json("fault", "kill", node)
    assert killed["was_running"] and len(killed["pids"]) == shards, killed
    status = lab.status(ready=False)
    mine = {r["node"]: r for r in status["nodes"]}[node]
    assert mine["process"] == "stopped" and [s["process"] for s in mine["shards"]] == ["stopped"] * shards, mine
    restarted = lab.json("fault", "restart", node)
    assert sorted(restarted["restarted"]) == sorted(killed["pids"]), restarted
    assert [(s["process"], s["serving"]) for s in row()["shards"]] == [("running", True)] * shards
