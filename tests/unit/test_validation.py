"""Every input issue 13 saw accepted is refused at load, with the file, the line and the field;
`meshpay-lab validate` says so without touching the host, or prints a one-line summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.lab.scenario import ScenarioError, parse_scenario
from orchestrator.lab.topology import TopologyError, parse_topology
from orchestrator.lab.validate import check_topology

REPO = Path(__file__).parents[2]
BASE = "name: t\nmesh:\n  params:\n    {param}: {value}\nnodes:\n  auth1: {{role: authority}}\n"


def refused(text: str, source: str = "t.yaml") -> str:
    with pytest.raises(TopologyError) as exc:
        check_topology(parse_topology(text, source), source, text)
    return str(exc.value)


@pytest.mark.parametrize("param,value,want", [
    ("mesh_rssi_threshold", 10, "-255..0"), ("mesh_rssi_threshold", -300, "-255..0"),
    ("mesh_fwding", 2, "0..1"), ("mesh_gate_announcements", 2, "0..1"),
    ("mesh_max_peer_links", 300, "0..255"), ("mesh_hwmp_preq_min_interval", 0, "1..65535"),
    ("mesh_hwmp_rootmode", 5, "0..4"), ("mesh_ttl", 0, "1..255"),
])
def test_kernel_mesh_params_are_range_checked_as_nl80211_does(param, value, want):
    msg = refused(BASE.format(param=param, value=value))
    assert msg.startswith(f"t.yaml: line 4: mesh.params.{param}: ") and want in msg, msg


def test_every_param_the_kernel_takes_within_its_range_is_accepted():
    text = BASE.format(param="mesh_rssi_threshold", value=-80)
    assert check_topology(parse_topology(text), "t.yaml", text).mesh_params == {"mesh_rssi_threshold": -80}


def line_of(n: int, ttl: int | None = None) -> str:
    params = f"mesh:\n  params:\n    mesh_ttl: {ttl}\n" if ttl is not None else ""
    nodes = "".join(f"  n{i}: {{role: {'authority' if i == 0 else 'client'}, position: [{i * 100}, 0]}}\n"
                    for i in range(n))
    return f"name: line\n{params}defaults:\n  range: 100\nnodes:\n{nodes}"


def test_a_40_node_line_with_the_default_mesh_ttl_is_refused_with_both_numbers():
    msg = refused(line_of(40))
    assert "mesh.params.mesh_ttl" in msg and "needs 39 hops (n0 to n39)" in msg and "mesh_ttl is 31" in msg


def test_a_5_node_line_with_mesh_ttl_2_is_refused_at_its_line():
    msg = refused(line_of(5, ttl=2))
    assert msg.startswith("t.yaml: line 4: mesh.params.mesh_ttl: ") and "needs 4 hops" in msg and "is 2" in msg
    text = line_of(5, ttl=4)  # exactly the path's length is enough: each forwarder decrements once
    assert check_topology(parse_topology(text), "t.yaml", text)


def test_a_ttl_the_authorities_take_from_authority_params_is_checked_too():
    text = line_of(5).replace("name: line\n", "name: line\nmesh:\n  authority_params:\n    mesh_element_ttl: 1\n")
    msg = refused(text)
    assert msg.startswith("t.yaml: line 4: mesh.authority_params.mesh_element_ttl: ") and "needs 4 hops" in msg, msg
    fits = line_of(5).replace("name: line\n", "name: line\nmesh:\n  authority_params:\n    mesh_ttl: 4\n")
    assert check_topology(parse_topology(fits), "t.yaml", fits)


def test_mdns_discovery_refuses_authorities_that_would_not_forward():
    text = ("name: t\ndiscovery: mdns\nmesh:\n  authority_params:\n    mesh_fwding: 0\n"
            "nodes:\n  auth1: {role: authority}\n")
    msg = str(pytest.raises(TopologyError, parse_topology, text, "t.yaml").value)
    assert msg.startswith("t.yaml: line 5: mesh.authority_params.mesh_fwding: ") and "forwarding mesh" in msg, msg


def test_a_link_to_an_unknown_node_is_reported_at_its_own_line():
    text = "name: t\nnodes:\n  auth1: {role: authority}\n  auth2: {role: authority}\nlinks:\n  - {a: auth1, b: auth2}\n  - {a: auth1, b: nosuch}\n"
    msg = str(pytest.raises(TopologyError, parse_topology, text, "t.yaml").value)
    assert msg.startswith("t.yaml: line 7: links.1.b: unknown node 'nosuch'"), msg


@pytest.mark.parametrize("name", ["on", "no", "yes", "off", "On", "NO"])
def test_yaml_11_boolean_node_names_get_a_hint_to_quote_them(name):
    text = f"name: t\nnodes:\n  auth1: {{role: authority}}\n  {name}: {{role: client}}\n"
    msg = str(pytest.raises(TopologyError, parse_topology, text, "t.yaml").value)
    assert msg.startswith(f"t.yaml: line 4: nodes.{name}: ") and f'quote it ("{name}")' in msg, msg
    quoted = parse_topology(text.replace(f"  {name}:", f'  "{name.lower()}":'), "t.yaml")
    assert name.lower() in quoted.nodes


def test_a_self_transfer_is_refused_at_load():
    text = "name: s\nsteps:\n  - {at: 0, do: wait, seconds: 1}\n  - {at: 1, do: transfer, from: c1, to: c1, amount: 5}\n"
    msg = str(pytest.raises(ScenarioError, parse_scenario, text, "s.yaml").value)
    assert msg.startswith("s.yaml: line 4: steps.1: ") and "to itself" in msg, msg


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_validate_names_unknown_scenario_nodes_with_line_and_field(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nsteps:\n  - {at: 0, do: transfer, from: client1, to: client9, amount: 5}\n"
                        "  - {at: 1, do: move, node: ghost, x: 0, y: 0}\n"
                        "  - {at: 2, do: transfer, from: auth1, to: client2, amount: 5}\n")
    done = run_cli("validate", str(scenario), "--topology", str(REPO / "topologies" / "line5.yaml"))
    assert done.exit_code == 2, done.output
    assert f"{scenario}: line 3: steps.0.to: no node 'client9'" in done.output
    assert f"{scenario}: line 4: steps.1.node: no node 'ghost'" in done.output
    assert f"{scenario}: line 5: steps.2.from: auth1 is an authority" in done.output
    assert "Traceback" not in done.output


def test_validate_summarises_a_good_topology_and_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_cli("validate", str(REPO / "topologies" / "line5.yaml"), "--format", "json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert (data["lab"], data["nodes"], data["authorities"], data["clients"], data["diameter_hops"]) == ("line5", 5, 3, 2, 4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("topology", sorted((REPO / "topologies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_topology_validates(topology):
    done = run_cli("validate", str(topology))
    assert done.exit_code == 0 and "planned diameter" in done.output, done.output


def test_validate_refuses_a_bad_topology_with_exit_2_and_nothing_else(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.format(param="mesh_fwding", value=2))
    done = run_cli("validate", str(bad), "--format", "json")
    assert done.exit_code == 2
    assert json.loads(done.stdout)["error"].startswith(f"{bad}: line 4: mesh.params.mesh_fwding")
