"""The secured mesh on the real kernel: SAE peer links are authorized and protected (MFP), a
node with a wrong password never peers and is unreachable, out-of-range pairs stay blocked under
SAE, and a transfer still completes among the nodes that hold the password."""

from __future__ import annotations

import json

import pytest

from .labdriver import Lab, lab_fixture

pytestmark = pytest.mark.e2e


sae = lab_fixture("sae5.yaml", "sae")


def test_password_holders_peer_authorized_with_mfp_and_the_wrong_password_never_peers(sae: Lab):
    status = sae.json("status")
    assert status["mesh_security"] == "sae"
    rows = {row["node"]: row for row in status["nodes"]}
    for node in sae.plan.nodes:
        want = sorted(sae.plan.neighbours(node.name))
        assert rows[node.name]["peers"] == want, node.name
        assert rows[node.name]["security"] == [f"{p}: authorized, MFP" for p in want], node.name
    assert rows["mallory"]["peers"] == []
    print("SAE peering reached in", json.loads((sae.lab_dir / "state.json").read_text())["timings"])


def test_no_link_to_mallory_is_established_or_authorized(sae: Lab):
    mallory = sae.plan.node("mallory").mac
    for node in ("auth1", "auth2", "client1", "client2"):
        rows = {r["mac"]: r for r in sae.json("peers", node)["peers"]}
        if mallory in rows:  # heard its beacons: SAE must have failed
            assert rows[mallory]["plink_state"] != "ESTAB" and rows[mallory]["authorized"] is not True, rows
    assert all(r["plink_state"] != "ESTAB" for r in sae.json("peers", "mallory")["peers"])


def test_out_of_range_pair_never_peers_under_sae(sae: Lab):
    rows = {r["peer"]: r for r in sae.json("peers", "client1")["peers"]}
    assert "client2" not in rows or rows["client2"]["plink_state"] != "ESTAB", rows


def test_mallory_carries_no_traffic(sae: Lab):
    done = sae.cli("exec", "mallory", "--", "ping", "-c", "3", "-W", "2", sae.plan.node("auth1").mesh_ip,
                   check=False)
    assert done.returncode != 0, done.stdout


def test_transfer_completes_among_password_holders_over_two_hops(sae: Lab):
    result = sae.json("transfer", "--from", "client1", "--to", "client2", "--amount", "9")
    assert result["outcome"] == "confirmed", result


def test_supplicant_config_is_owner_only_and_holds_no_plaintext_password(sae: Lab):
    conf = sae.lab_dir / "nodes" / "auth1" / "wpa_supplicant.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "correct-horse" not in conf.read_text()


def test_down_stops_the_supplicants_and_leaves_nothing(sae: Lab):
    removed = sae.json("down")
    assert "error" not in removed and removed["leftover"] == [], removed
