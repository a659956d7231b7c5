"""Per-transfer metrics and healing time, from fake mesh dumps, fake node replies and a recorded
timeline; and the transfer verb putting them together (fakes for REST and netlink)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.kernel import mesh
from orchestrator.report import meshmetrics
from orchestrator.verbs import transfer

A1, A2, A3, R1 = "02:00:00:00:00:04", "02:00:00:00:00:05", "02:00:00:00:00:06", "02:00:00:00:00:02"


def _path(dest: str, hops: int | None) -> mesh.MeshPath:
    return mesh.MeshPath(destination=dest, next_hop=R1, hop_count=hops, metric=100, sn=1, flags=("ACTIVE",))


def _station(mac: str, state: str) -> mesh.Station:
    return mesh.Station(mac=mac, plink_state=state, signal_dbm=-50, inactive_ms=0, rx_bytes=0, tx_bytes=0)


def test_hops_come_from_paths_and_an_established_neighbour_without_one_is_one_hop():
    hops = mesh.hop_counts([_path(A1, 3), _path(A2, None), _path(R1, 1)],
                           [_station(R1, "ESTAB"), _station(A3, "ESTAB"), _station("02:00:00:00:00:09", "BLOCKED")])
    # a path wins over the station entry; a path without a hop count stays unknown; a blocked one is no way there
    assert hops == {A1: 3, A2: None, R1: 1, A3: 1}


def test_authority_hops_are_null_where_the_sender_knows_no_way():
    assert meshmetrics.authority_hops({"auth2": A2, "auth1": A1}, {A1: 2}) == {"auth1": 2, "auth2": None}


NODE_REPLY = {
    "outcome": "confirmed",
    "latency_ms": {"certificate": 812.5, "total": 1404.0},
    "authorities": {"auth1": {"vote": "ok", "vote_ms": 300.0, "confirm": "applied", "confirm_ms": 90.0},
                    "auth2": {"vote": "no answer before the quorum"},
                    "recipient:client2": {"confirm": "ok", "confirm_ms": 40.0}},
}


def test_transfer_metrics_flatten_latency_quorum_hops_and_vote_times():
    m = meshmetrics.transfer_metrics(NODE_REPLY, {"auth1": 1, "auth2": 3})
    assert m == {"outcome": "confirmed", "latency_ms": 1404.0, "time_to_quorum_ms": 812.5,
                 "hops": {"auth1": 1, "auth2": 3}, "vote_ms": {"auth1": 300.0, "auth2": None}}


def test_an_unconfirmed_transfer_has_no_latency():
    m = meshmetrics.transfer_metrics({"outcome": "pending", "authorities": {}}, {"auth1": None})
    assert (m["latency_ms"], m["time_to_quorum_ms"], m["vote_ms"]) == (None, None, {"auth1": None})


def _row(index: int, do: str, start: float, duration: float, ok: bool = True, **extra) -> dict:
    return {"index": index, "do": do, "start_s": start, "duration_s": duration, "ok": ok,
            "args": extra.pop("args", {}), **extra}


def test_healing_runs_from_the_applied_isolation_to_the_next_confirmed_transfer():
    steps = [
        _row(0, "transfer", 0.0, 1.5, confirmed_s=1.5),
        _row(1, "fault", 5.0, 1.25, args={"action": "isolate", "node": "@relay"}, node="relay2"),
        _row(2, "transfer", 6.25, 30.0, ok=False),                       # not confirmed: no healing yet
        _row(3, "transfer", 36.25, 9.0, confirmed_s=45.25),
        _row(4, "fault", 46.0, 0.5, args={"action": "isolate", "node": "relay1"}),
        _row(5, "fault", 47.0, 0.5, ok=False, args={"action": "isolate", "node": "relay2"}),  # failed: not counted
        _row(6, "wait", 48.0, 5.0),
    ]
    assert meshmetrics.healing(steps) == [
        {"step": 1, "node": "relay2", "isolated_s": 6.25, "healing_s": 39.0},
        {"step": 4, "node": "relay1", "isolated_s": 46.5, "healing_s": None},
    ]


@pytest.fixture
def lab(monkeypatch):
    nodes = {"client1": {"role": "client", "mac": "02:00:00:00:00:01", "netns": "ns-c1", "api_url": "http://c1"},
             "client2": {"role": "client", "mac": "02:00:00:00:00:07"},
             "auth1": {"role": "authority", "mac": A1}, "auth2": {"role": "authority", "mac": A2}}
    posted = []
    monkeypatch.setattr(transfer.labdir, "lab_node", lambda _dir, name: nodes[name])
    monkeypatch.setattr(transfer.labdir, "read_lab_json", lambda _dir: {"nodes": nodes})
    monkeypatch.setattr(transfer.labdir, "read_token", lambda _dir: "t")
    monkeypatch.setattr(transfer.httpx, "post", lambda url, **kw: posted.append(url) or SimpleNamespace(
        status_code=200, json=lambda: {**NODE_REPLY, "authorities": {k: dict(v) for k, v in NODE_REPLY["authorities"].items()}}))
    return posted


def test_the_transfer_verb_adds_hops_read_in_the_senders_netns(lab, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(transfer.mesh, "hops_from", lambda netns, ifname: seen.append(netns) or {A1: 1, A2: 2})
    out = transfer.run(tmp_path, "client1", "client2", 5)
    assert lab == ["http://c1/transfers"] and seen == ["ns-c1"]
    assert out["authorities"]["auth1"]["hop_count"] == 1 and out["authorities"]["auth2"]["hop_count"] == 2
    assert "hop_count" not in out["authorities"]["recipient:client2"]
    assert out["metrics"]["hops"] == {"auth1": 1, "auth2": 2} and out["metrics"]["time_to_quorum_ms"] == 812.5


def test_an_unreadable_mesh_leaves_hops_unknown_but_keeps_the_transfer(lab, monkeypatch, tmp_path):
    def broken(netns, ifname):
        raise RuntimeError("no wireless interface 'mesh0' in netns ns-c1")

    monkeypatch.setattr(transfer.mesh, "hops_from", broken)
    out = transfer.run(tmp_path, "client1", "client2", 5)
    assert out["outcome"] == "confirmed" and out["metrics"]["hops"] == {"auth1": None, "auth2": None}
    assert "no wireless interface" in out["hops_error"]
