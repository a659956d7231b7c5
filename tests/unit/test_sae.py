"""The secured mesh without a kernel: supplicant config, passwords, who should peer, link flags."""

from pathlib import Path

from orchestrator.kernel import mesh
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import load_topology, parse_topology
from orchestrator.runtime import sae
from orchestrator.verbs.status import link_security

SAE5 = Path(__file__).parents[2] / "topologies" / "sae5.yaml"


def test_config_is_mesh_mode_sae_with_mfp_and_hex_strings():
    mesh_id, password = 'mesh"id', 'pass"}\nnetwork={'
    text = sae.config_text(mesh_id, 2437, password, Path("/run/meshpay-lab/l/n"))
    lines = text.splitlines()
    assert lines[0] == "ctrl_interface=DIR=/run/meshpay-lab/l/n"
    assert "user_mpm=1" in lines and "  mode=5" in lines and "  key_mgmt=SAE" in lines
    assert "  ieee80211w=2" in lines and "  frequency=2437" in lines
    # what the topology gave cannot break out of its field
    assert "  ssid=" + mesh_id.encode().hex() in lines
    assert "  sae_password=" + password.encode().hex() in lines
    assert text.count("network={") == 1


def test_password_precedence_and_who_peers():
    plan = make_plan(load_topology(SAE5))
    assert sae.password_for(plan, plan.node("auth1"), "lab-secret") == "correct-horse-battery-staple"
    assert sae.password_for(plan, plan.node("mallory"), "lab-secret") == "not-the-mesh-password"
    assert plan.neighbours("mallory") == []
    assert "mallory" not in plan.neighbours("auth1")
    assert plan.neighbours("client1") == ["auth1", "auth2"]
    assert ("client1", "client2") in plan.blocked
    assert "correct-horse" not in repr(plan)


def test_without_a_topology_password_the_lab_secret_is_used():
    plan = make_plan(parse_topology("name: l\nmesh: {security: sae}\nnodes:\n  a: {role: authority}\n"))
    assert sae.password_for(plan, plan.node("a"), "lab-secret") == "lab-secret"


class _Attrs:
    def __init__(self, attrs: dict) -> None:
        self.attrs = attrs

    def get_attr(self, name: str):
        return self.attrs.get(name)


def station(flags: dict | None) -> mesh.Station:
    info = _Attrs({"NL80211_STA_INFO_PLINK_STATE": 4, "NL80211_STA_INFO_STA_FLAGS": flags})
    return mesh.parse_station(_Attrs({"NL80211_ATTR_MAC": "02:00:00:00:00:01",
                                      "NL80211_ATTR_STA_INFO": info}))


def test_station_flags_become_link_security():
    secure = station({"AUTHORIZED": True, "MFP": True, "WME": True})
    assert (secure.authorized, secure.mfp) == (True, True)
    assert link_security(secure) == "authorized, MFP"
    assert link_security(station({"AUTHORIZED": True, "MFP": False})) == "authorized, no MFP"
    assert link_security(station({"AUTHORIZED": False, "MFP": False})) == "not authorized"
    assert link_security(station(None)) == "unknown"


def test_secrets_are_owner_only(tmp_path):
    from orchestrator.lab import labdir

    path = tmp_path / "n" / "wpa_supplicant.conf"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    labdir.write_secret_text(path, "sae_password=00")
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "sae_password=00"


def test_beacon_timing_goes_in_the_network_block_only_when_given():
    text = sae.config_text("m", 2412, "password1", Path("/run/x"), beacon_interval=2000, dtim_period=3)
    network = text.split("network={", 1)[1]
    assert "  beacon_int=2000\n" in network and "  dtim_period=3\n" in network
    plain = sae.config_text("m", 2412, "password1", Path("/run/x"))
    assert "beacon_int" not in plain and "dtim_period" not in plain
