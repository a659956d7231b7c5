"""The wireless medium on the real kernel: distance alone decides who hears whom (no peer link is
blocked), a moved node loses its old links and the mesh reroutes, isolating a relay heals through
the other one, and a dead medium is reported loudly."""

from __future__ import annotations

import json
import time
from functools import partial

import pytest

from .labdriver import Lab, lab_fixture, up, wait_for

pytestmark = pytest.mark.e2e

LINK_EXPIRY_S = 150.0  # mesh_plink_timeout 10 s, checked by the kernel's once-a-minute housekeeping


# Medium tests poll less often: each poll is a CLI call through the VM's agent.
wait_for = partial(wait_for, every=3.0)


def peers_of(lab: Lab, node: str) -> dict[str, str]:
    return {p["peer"]: p["plink_state"] for p in lab.json("peers", node)["peers"]}


def hops(lab: Lab, src: str) -> dict[str, int]:
    return {p["destination_node"]: p["hop_count"] for p in lab.json("paths", src)["paths"]}


def planned_hops(lab: Lab, src: str) -> dict[str, int]:
    """Radio hops from src to every node, by breadth-first search over the plan's neighbours."""
    dist, frontier = {src: 0}, [src]
    while frontier:
        reached = []
        for node in frontier:
            for n in lab.plan.neighbours(node):
                if n not in dist:
                    dist[n] = dist[node] + 1
                    reached.append(n)
        frontier = reached
    return dist


def ping(lab: Lab, src: str, dst: str, count: int = 3) -> bool:
    done = lab.cli("exec", src, "--", "ping", "-c", str(count), "-i", "0.3", "-W", "3",
                   lab.plan.node(dst).mesh_ip, check=False)
    return done.returncode == 0


line = lab_fixture("line5.yaml", "line")


def test_distance_alone_makes_a_four_hop_line(line: Lab):
    assert line.plan.plink_blocked == ()
    status = line.json("status")
    assert status["medium"]["state"] == "running", status["medium"]
    rows = {row["node"]: row for row in status["nodes"]}
    for node in line.plan.nodes:
        assert rows[node.name]["peers"] == sorted(line.plan.neighbours(node.name)), node.name
        # the kernel never even heard the others: no station entry, blocked or not
        assert set(peers_of(line, node.name)) == set(line.plan.neighbours(node.name)), node.name
    assert ping(line, "client1", "client2")
    assert hops(line, "client1").get("client2") == 4
    result = line.json("transfer", "--from", "client1", "--to", "client2", "--amount", "5")
    assert result["outcome"] == "confirmed", result
    # the transfer reports the radio hops to each authority, read from client1's mesh paths
    authorities = [n.name for n in line.plan.nodes if n.role == "authority"]
    plan = planned_hops(line, "client1")
    assert result["metrics"]["hops"] == {a: plan[a] for a in authorities} == {"auth1": 1, "auth2": 2, "auth3": 3}
    assert result["metrics"]["time_to_quorum_ms"] <= result["metrics"]["latency_ms"]
    assert status["convergence_s"] == status["timings"]["peering_s"] is not None
    medium = line.json("status")["medium"]
    print("medium after a 4-hop transfer:", json.dumps(medium))
    assert medium["deliveries"] > 0 and medium["acked"] > 0


def test_a_node_moved_away_loses_its_link_and_the_path_reroutes(line: Lab):
    # client2 leaves auth3 (300, 0) for a spot beside auth2 (200, 0)
    moved = line.json("move", "client2", "200", "90")
    assert moved["in_range"] == ["auth2"], moved
    t0 = time.monotonic()
    _, new_link_s = wait_for("client2 peers with auth2", lambda: peers_of(line, "client2").get("auth2") == "ESTAB", 90)

    def rerouted():
        ping(line, "client1", "client2", count=2)  # traffic makes HWMP notice the broken hop
        return hops(line, "client1").get("client2") == 3

    _, reroute_s = wait_for("client1 reaches client2 over 3 hops", rerouted, 120)
    _, expiry_s = wait_for("auth3 drops client2", lambda: "client2" not in peers_of(line, "auth3"), LINK_EXPIRY_S)
    print(f"after the move: new link in {new_link_s} s, 3-hop path in {reroute_s} s, "
          f"old link gone {round(time.monotonic() - t0, 1)} s after the move")
    assert "auth3" not in peers_of(line, "client2")
    result = line.json("transfer", "--from", "client1", "--to", "client2", "--amount", "3")
    assert result["outcome"] == "confirmed", result


def test_a_dead_medium_is_reported_and_medium_verbs_refuse(line: Lab):
    pid = line.json("status")["medium"]["pid"]
    line.cli("exec", "client1", "--", "kill", str(pid))  # nodes share the VM's pid namespace
    medium = wait_for("status sees the medium dead",
                      lambda: (m := line.status(ready=None)["medium"])["state"] == "dead" and m, 30)[0]
    assert "perfect medium" in medium["detail"]
    line.status(ready=False)  # a dead medium: the lab is not ready, and status says so by its exit
    table = line.cli("status", check=False)
    assert table.returncode == 1
    assert "MEDIUM DEAD" in table.stderr, table.stderr
    refused = line.cli("move", "client2", "400", "0", check=False)
    assert refused.returncode != 0 and "perfect medium" in refused.stderr, refused.stderr


def test_down_removes_the_medium_too(line: Lab):
    removed = line.json("down")
    assert "error" not in removed and removed["leftover"] == [], removed
    assert any(n.endswith(".medium") for n in removed["nodes"]), removed["nodes"]


def test_isolating_the_relay_in_use_heals_through_the_other_and_a_killed_node_restarts():
    lab = up("diamond.yaml")
    try:
        first = lab.json("transfer", "--from", "client1", "--to", "client2", "--amount", "4")
        assert first["outcome"] == "confirmed", first
        via = {p["destination_node"]: p["next_hop_node"] for p in lab.json("paths", "client1")["paths"]}
        relay = via["auth1"]
        other = {"relay1": "relay2", "relay2": "relay1"}[relay]
        isolated = lab.json("fault", "isolate", relay)
        assert isolated["isolated"] == [relay]

        def healed():
            ping(lab, "client1", "auth1", count=2)
            now = {p["destination_node"]: p["next_hop_node"] for p in lab.json("paths", "client1")["paths"]}
            return now.get("auth1") == other

        _, heal_s = wait_for(f"client1 reaches auth1 through {other}", healed, 180)
        t0 = time.monotonic()
        again = lab.json("transfer", "--from", "client1", "--to", "client2", "--amount", "4")
        assert again["outcome"] == "confirmed", again
        print(f"diamond: isolated {relay}; path through {other} in {heal_s} s, "
              f"next transfer confirmed {round(time.monotonic() - t0, 1)} s later")
        assert lab.json("fault", "heal", relay)["isolated"] == []

        killed = lab.json("fault", "kill", "auth3")
        assert killed["was_running"] is True
        rows = {r["node"]: r for r in lab.status(ready=False)["nodes"]}
        assert rows["auth3"]["process"] == "stopped" and rows["auth3"]["serving"] is False
        restarted = lab.json("fault", "restart", "auth3")
        assert restarted["already_running"] is False
        rows = {r["node"]: r for r in lab.status()["nodes"]}
        assert rows["auth3"]["serving"] is True
        print(f"auth3 restarted and serving in {restarted['serving_after_s']} s")

        # the shipped scenario isolates whichever relay the path now uses, and times the healing
        record = json.loads(lab.cli("run", "scenarios/relay-failure.yaml", "--format", "json", check=False).stdout)
        isolated = record["steps"][1]
        assert isolated["ok"] and isolated["node"] in ("relay1", "relay2"), isolated
        assert record["healing_s"] is not None and record["healing_s"] > 0, record
        assert record["steps"][3]["node"] == isolated["node"], record["steps"][3]
        print(f"relay-failure scenario: isolated {isolated['node']}, healing_s {record['healing_s']}, "
              f"{record['steps'][2].get('attempts')} transfer attempts")
        impairments_at_run_time(lab)
    finally:
        removed = lab.json("down")
    assert removed["leftover"] == []


def next_hops(lab: Lab, src: str) -> dict[str, str]:
    return {p["destination_node"]: p["next_hop_node"] for p in lab.json("paths", src)["paths"]}


def impairments_at_run_time(lab: Lab) -> None:
    """Issue 14 on the diamond: 100 % loss on the link client1's path uses makes HWMP route through
    the other relay; 50 ms each way on client1's links shows in every vote's round trip."""
    wait_for("client1 has a path to auth1", lambda: ping(lab, "client1", "auth1", count=2)
             and next_hops(lab, "client1").get("auth1") in ("relay1", "relay2"), 120)
    relay = next_hops(lab, "client1")["auth1"]
    other = {"relay1": "relay2", "relay2": "relay1"}[relay]
    baseline = lab.json("transfer", "--from", "client1", "--to", "client2", "--amount", "2")
    assert baseline["outcome"] == "confirmed", baseline
    lost = lab.json("impair", "client1", relay, "--loss", "100")
    assert {(i["from"], i["to"], i["loss_pct"]) for i in lost["impairments"]} == {
        ("client1", relay, 100), (relay, "client1", 100)}
    assert len(lab.json("status")["medium"]["impairments"]) == 2
    assert {p["peer"]: p.get("impairment") for p in lab.json("peers", "client1")["peers"]}.get(relay) == {
        "out": "loss 100%", "in": "loss 100%"}

    def around():
        ping(lab, "client1", "auth1", count=2)  # traffic makes HWMP notice the dead hop
        return next_hops(lab, "client1").get("auth1") == other

    _, around_s = wait_for(f"client1 reaches auth1 through {other}", around, 180)
    dropped = lab.json("status")["medium"]["dropped_loss"]
    after = lab.json("transfer", "--from", "client1", "--to", "client2", "--amount", "2")
    assert after["outcome"] == "confirmed", after
    assert lab.json("impair", "client1", relay, "--clear")["impairments"] == []

    for r in ("relay1", "relay2"):  # every path from client1 now crosses one delayed hop
        lab.json("impair", "client1", r, "--delay", "50")
    delayed_before = lab.json("status")["medium"]["delayed"]
    slow = lab.json("transfer", "--from", "client1", "--to", "client2", "--amount", "2")
    assert slow["outcome"] == "confirmed", slow
    votes = [ms for ms in slow["metrics"]["vote_ms"].values() if ms is not None]
    fast = [ms for ms in baseline["metrics"]["vote_ms"].values() if ms is not None]
    print(f"impair: loss 100% on client1-{relay}: through {other} in {around_s} s ({dropped} frames dropped "
          f"by the model); votes {sorted(fast)} ms before, {sorted(votes)} ms with 50 ms each way")
    assert votes and min(votes) >= 100, votes  # a request and its answer each cross the 50 ms hop
    assert lab.json("status")["medium"]["delayed"] > delayed_before
    for r in ("relay1", "relay2"):
        lab.json("impair", "client1", r, "--clear")
