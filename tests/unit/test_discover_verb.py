"""`discover NODE` joins a client's GET /discovery with the lab's addresses and the node's mesh
paths (fakes for the REST call and netlink)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.errors import UsageError
from orchestrator.verbs import discover

NODES = {
    "client1": {"role": "client", "mesh_ip": "10.77.0.1", "mac": "02:00:00:00:00:01", "netns": "ns-c1",
                "api_url": "http://c1"},
    "auth1": {"role": "authority", "mesh_ip": "10.77.0.4", "mac": "02:00:00:00:00:04"},
    "auth2": {"role": "authority", "mesh_ip": "10.77.0.5", "mac": "02:00:00:00:00:05"},
    "relay": {"role": "client", "mesh_ip": "10.77.0.2", "mac": "02:00:00:00:00:02"},
}
VIEW = {
    "mode": "mdns",
    "authorities": [
        {"authority": "auth1", "heard": True, "address": "10.77.0.4:7100"},
        {"authority": "auth2", "heard": True, "address": "10.77.0.5:7100"},
        {"authority": "auth3", "heard": False, "address": None},
    ],
    "ignored": [{"node": "rogue", "address": "10.77.0.2:7100", "reason": "key fingerprint is not in the committee"}],
}


@pytest.fixture
def lab(monkeypatch):
    monkeypatch.setattr(discover.labdir, "lab_node", lambda _dir, name: NODES[name])
    monkeypatch.setattr(discover.labdir, "read_lab_json", lambda _dir: {"nodes": NODES})
    monkeypatch.setattr(discover.httpx, "get", lambda url, timeout: SimpleNamespace(
        json=lambda: {**VIEW, "authorities": [dict(r) for r in VIEW["authorities"]],
                      "ignored": [dict(r) for r in VIEW["ignored"]]},
        raise_for_status=lambda: None, url=url))
    monkeypatch.setattr(discover.mesh, "mpaths", lambda netns, ifname: [
        SimpleNamespace(destination="02:00:00:00:00:04", hop_count=3)])
    monkeypatch.setattr(discover.mesh, "stations", lambda netns, ifname: [
        SimpleNamespace(mac="02:00:00:00:00:02", plink_state="ESTAB"),
        SimpleNamespace(mac="02:00:00:00:00:05", plink_state="BLOCKED")])


def test_rows_get_the_holding_node_and_its_hop_count(lab, tmp_path):
    out = discover.run(tmp_path, "client1")
    rows = {r["authority"]: r for r in out["authorities"]}
    assert (rows["auth1"]["node"], rows["auth1"]["hop_count"]) == ("auth1", 3)
    assert (rows["auth2"]["node"], rows["auth2"]["hop_count"]) == ("auth2", None)  # no path yet, not a peer
    assert (rows["auth3"]["node"], rows["auth3"]["hop_count"]) == (None, None)
    # a peer with no mesh path yet is still one hop away
    assert (out["ignored"][0]["from_node"], out["ignored"][0]["hop_count"]) == ("relay", 1)


def test_an_authority_is_refused_with_what_to_do(lab, tmp_path):
    with pytest.raises(UsageError, match="try a client"):
        discover.run(tmp_path, "auth1")
