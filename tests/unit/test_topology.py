from pathlib import Path

import pytest

from orchestrator.lab.topology import TopologyError, load_topology, parse_topology

TOPOLOGIES = sorted(Path(__file__).parents[2].joinpath("topologies").glob("*.yaml"))

GOOD = """\
name: lab
nodes:
  auth1: {role: authority}
  client1: {role: client, position: [10, 0]}
"""


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_shipped_topologies_load(path):
    topo = load_topology(path)
    assert any(n.role == "authority" for n in topo.nodes.values())


def test_defaults_fill_range_and_balance():
    topo = parse_topology(GOOD)
    assert topo.range_of("client1") == 100
    assert topo.balance_of("client1") == 1000
    assert topo.balance_of("auth1") == 0  # authorities hold no money


def error_of(text: str) -> str:
    with pytest.raises(TopologyError) as exc:
        parse_topology(text, "t.yaml")
    return str(exc.value)


def test_error_names_file_line_and_field():
    msg = error_of(GOOD.replace("role: client", "role: banker"))
    assert msg.startswith("t.yaml: line 4: nodes.client1.role:")


def test_unknown_field_is_refused_with_its_line():
    msg = error_of(GOOD + "  auth2: {role: authority, colour: red}\n")
    assert "line 5" in msg and "nodes.auth2.colour" in msg


def test_duplicate_node_names_are_refused():
    msg = error_of(GOOD + "  auth1: {role: authority}\n")
    assert "duplicate key 'auth1'" in msg and "line 5" in msg


@pytest.mark.parametrize(
    "name", ["../etc", "Auth", "a" * 16, "x/y", "", "1abc"]
)
def test_hostile_node_names_are_refused(name):
    msg = error_of(f"name: lab\nnodes:\n  '{name}': {{role: authority}}\n")
    assert "must match" in msg


@pytest.mark.parametrize("name", ["../../x", "a-b", "Lab", "x" * 16])
def test_hostile_or_ambiguous_lab_name_is_refused(name):
    assert "lab name" in error_of(f"name: '{name}'\nnodes:\n  a: {{role: authority}}\n")


def test_absurd_position_is_refused():
    msg = error_of("name: lab\nnodes:\n  a: {role: authority, position: [1e12, 0]}\n")
    assert "line 3" in msg and "position" in msg


def test_too_many_nodes_are_refused():
    nodes = "".join(f"  n{i}: {{role: authority}}\n" for i in range(251))
    assert "more than the 250" in error_of("name: lab\nnodes:\n" + nodes)


def test_lab_needs_an_authority():
    assert "at least one authority" in error_of("name: lab\nnodes:\n  c: {role: client}\n")


def test_link_to_unknown_node_is_refused():
    msg = error_of(GOOD + "links:\n  - {a: auth1, b: ghost}\n")
    assert "unknown node 'ghost'" in msg


def test_unknown_mesh_param_is_refused():
    msg = error_of("name: lab\nmesh:\n  params: {mesh_warp: 9}\nnodes:\n  a: {role: authority}\n")
    assert "line 3" in msg and "mesh_warp" in msg


def test_negative_balance_is_refused():
    assert "balance" in error_of(GOOD.replace("position: [10, 0]", "balance: -5"))


def test_not_yaml_and_not_a_mapping():
    assert "not valid YAML" in error_of("name: [unclosed\n")
    assert "expected a mapping" in error_of("- just\n- a list\n")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(TopologyError, match="nope.yaml: cannot read"):
        load_topology(tmp_path / "nope.yaml")


SAE = """\
name: lab
mesh: {security: sae, password: correct-horse-battery}
nodes:
  auth1: {role: authority}
  auth2: {role: authority, mesh_password: not-the-mesh-one}
"""


def test_sae_with_a_password_and_a_per_node_override():
    topo = parse_topology(SAE)
    assert topo.mesh.security == "sae"
    assert topo.mesh.password == "correct-horse-battery"
    assert topo.nodes["auth2"].mesh_password == "not-the-mesh-one"
    assert "correct-horse" not in repr(topo)  # secrets stay out of logs and tracebacks


@pytest.mark.parametrize("password", ["short", "x" * 64, "line\\nbreak", "tab\\there!", "é" * 10])
def test_unusable_passwords_are_refused(password):
    msg = error_of(SAE.replace("correct-horse-battery", f'"{password}"'))
    assert "line 2" in msg and "8 to 63 printable ASCII" in msg


def test_passwords_without_sae_are_refused():
    assert "only used with `security: sae`" in error_of(SAE.replace("security: sae, ", ""))
    msg = error_of(SAE.replace("security: sae, password: correct-horse-battery", "id: m"))
    assert "line 5: nodes.auth2.mesh_password: only used with `mesh.security: sae`" in msg


@pytest.mark.parametrize("mesh_id", ["", "a" * 33, "has space", "ünïcode", 'new\\nline'])
def test_hostile_mesh_ids_are_refused(mesh_id):
    msg = error_of(f'name: lab\nmesh: {{id: "{mesh_id}"}}\nnodes:\n  a: {{role: authority}}\n')
    assert "mesh.id" in msg and "printable ASCII" in msg


def test_out_of_range_mesh_param_is_refused_before_up():
    msg = error_of("name: lab\nmesh:\n  params: {mesh_fwding: 256}\nnodes:\n  a: {role: authority}\n")
    assert "line 3" in msg and "mesh_fwding=256" in msg


def test_yaml_aliases_are_refused():
    bomb = 'name: lab\nx: &a ["lol", "lol"]\ny: &b [*a, *a, *a]\nnodes:\n  a: {role: authority}\n'
    assert "anchors and aliases are not allowed" in error_of(bomb)


def test_huge_file_is_refused_unread():
    assert "more than a topology may have" in error_of("#" * (2 << 20))


def test_beacon_interval_and_dtim_period_reach_the_plan():
    from orchestrator.lab.plan import make_plan

    text = GOOD.replace("nodes:", "mesh:\n  beacon_interval: 2000\n  dtim_period: 3\nnodes:", 1)
    plan = make_plan(parse_topology(text))
    assert (plan.beacon_interval, plan.dtim_period) == (2000, 3)
    assert make_plan(parse_topology(GOOD)).beacon_interval is None


@pytest.mark.parametrize("field, value", [("beacon_interval", 5), ("beacon_interval", 20000),
                                          ("dtim_period", 0), ("dtim_period", 101)])
def test_beacon_timing_out_of_the_kernel_range_is_refused(field, value):
    msg = error_of(GOOD.replace("nodes:", f"mesh:\n  {field}: {value}\nnodes:", 1))
    assert f"mesh.{field}" in msg


def test_a_fixed_tx_rate_reaches_the_plan_and_minstrel_is_the_default():
    from orchestrator.lab.plan import make_plan

    assert make_plan(parse_topology(GOOD.replace("nodes:", "mesh:\n  rate_mbps: 11\nnodes:", 1))).rate_mbps == 11.0
    assert make_plan(parse_topology(GOOD)).rate_mbps is None


@pytest.mark.parametrize("mesh, value", [("", 7), ("", 65), ("  freq: 5180\n", 11), ("  freq: 5180\n", 1)])
def test_a_tx_rate_the_channel_does_not_have_is_refused_naming_the_ones_it_has(mesh, value):
    text = GOOD.replace("nodes:", f"mesh:\n{mesh}  rate_mbps: {value}\nnodes:", 1)
    line = 1 + next(i for i, row in enumerate(text.splitlines()) if "rate_mbps" in row)
    msg = error_of(text)
    assert f"line {line}: mesh.rate_mbps:" in msg and "not a legacy rate on" in msg and "54" in msg
