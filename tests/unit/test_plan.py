from pathlib import Path

from orchestrator.lab.plan import in_range, make_plan
from orchestrator.lab.registry import Identity
from orchestrator.lab.topology import load_topology, parse_topology

TOPOLOGIES = Path(__file__).parents[2] / "topologies"


def plan_of(name: str):
    return make_plan(load_topology(TOPOLOGIES / name))


def test_line_blocks_all_but_neighbours():
    plan = plan_of("line3.yaml")
    assert plan.neighbours("auth1") == ["auth2", "client1"]
    assert plan.neighbours("auth2") == ["auth1", "auth3"]
    assert ("auth1", "auth3") in plan.blocked and ("auth1", "auth4") in plan.blocked


def test_explicit_link_block_applies_even_in_range():
    plan = plan_of("grid2x3.yaml")
    a1, a4 = plan.node("auth1"), plan.node("auth4")
    assert in_range(a1, a4)
    assert ("auth1", "auth4") in plan.blocked


def test_demo_clients_are_not_neighbours_of_each_other():
    plan = plan_of("5auth3client.yaml")
    for c in ("client1", "client2", "client3"):
        assert not any(n.startswith("client") for n in plan.neighbours(c))


def test_names_and_addresses_are_unique_and_fit_the_kernel():
    plan = plan_of("5auth3client.yaml")
    for field in ("netns", "radio", "mac", "mesh_ip", "mgmt_ip", "host_veth"):
        values = [getattr(n, field) for n in plan.nodes]
        assert len(set(values)) == len(values), field
    assert all(len(n.host_veth) <= 15 for n in plan.nodes)
    assert len(plan.bridge) <= 15


def test_plan_is_deterministic_and_scoped_by_the_registry_identity():
    text = "name: {}\nnodes:\n  a: {{role: authority}}\n  b: {{role: client}}\n"
    first, second = Identity("0001", 1), Identity("0002", 2)
    one = make_plan(parse_topology(text.format("one")), first)
    again = make_plan(parse_topology(text.format("one")), first)
    two = make_plan(parse_topology(text.format("two")), second)
    assert one == again
    assert {n.radio for n in one.nodes}.isdisjoint({n.radio for n in two.nodes})
    assert {n.mac for n in one.nodes}.isdisjoint({n.mac for n in two.nodes})
    assert {n.host_veth for n in one.nodes}.isdisjoint({n.host_veth for n in two.nodes})
    assert {n.mgmt_ip for n in one.nodes}.isdisjoint({n.mgmt_ip for n in two.nodes})
    assert one.bridge != two.bridge and one.bridge_ip != two.bridge_ip
    assert {n.netns for n in one.nodes}.isdisjoint({n.netns for n in two.nodes})


def test_mesh_addresses_stay_valid_past_250_nodes():
    nodes = "".join(f"  n{i}: {{role: authority}}\n" for i in range(250))
    plan = make_plan(parse_topology("name: big\nnodes:\n" + nodes))
    assert plan.nodes[249].mesh_ip == "10.77.0.250"
    assert all(int(octet) <= 255 for n in plan.nodes for octet in n.mesh_ip.split("."))


def test_static_neighbours_name_every_other_node_and_authorities_get_their_params():
    plan = make_plan(parse_topology("""
name: roots
mesh:
  params: {mesh_hwmp_rootmode: 0, mesh_ttl: 20}
  authority_params: {mesh_hwmp_rootmode: 2, mesh_hwmp_root_interval: 5000}
nodes:
  auth1: {role: authority, position: [0, 0]}
  client1: {role: client, position: [50, 0]}
  client2: {role: client, position: [100, 0]}
"""))
    auth, client = plan.node("auth1"), plan.node("client1")
    table = plan.static_neighbours(client)
    assert table == {n.mesh_ip: n.mac for n in plan.nodes if n.name != "client1"}
    assert plan.mesh_params_of(auth) == {"mesh_hwmp_rootmode": 2, "mesh_ttl": 20, "mesh_hwmp_root_interval": 5000}
    assert plan.mesh_params_of(client) == {"mesh_hwmp_rootmode": 0, "mesh_ttl": 20}


def test_arp_address_resolution_leaves_the_neighbour_table_to_the_kernel():
    plan = make_plan(parse_topology("""
name: arp
mesh: {address_resolution: arp}
nodes:
  auth1: {role: authority, position: [0, 0]}
  client1: {role: client, position: [50, 0]}
"""))
    assert plan.static_neighbours(plan.node("client1")) == {}
