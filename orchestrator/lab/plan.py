"""The plan: everything `up` will create for a topology, decided before anything is touched.

Pure: no I/O. Names, addresses and MACs are derived from the lab's identity (its id and management
subnet, allocated by `up` from the host-wide registry, orchestrator/lab/registry.py, and kept in
state.json) and the node order, so a re-run of `up` (reconcile) and a `down` after a crash compute
the same names as the first `up`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from orchestrator.air import airspace
from orchestrator.air.airspace import Impairment
from orchestrator.air.mobility import Motion
from orchestrator.errors import MeshpayError
from orchestrator.lab.registry import Identity
from orchestrator.lab.topology import Topology

WIRE_PORT = 7100
API_PORT = 8080
MESH_IFNAME = "mesh0"
MGMT_IFNAME = "mgmt0"


# The identity of a plan made without the registry (validation, tests, pictures): nothing is
# created from it, and `up` always plans with the identity the registry gave the lab.
UNALLOCATED = Identity(id="0000", octet=1)


def netns_prefix(lab: str) -> str:
    return f"mpl-{lab}-"


def radio_prefix(lab_id: str) -> str:
    """Radios are `mpl<id>-<index>`: scoped by the registry's id, not the name (15-char cap)."""
    return f"mpl{lab_id}-"


def api_port(shard: int) -> int:
    """The REST port of an authority's shard `shard` (on the node's management address): the
    node's API_PORT + shard, as its wire port is WIRE_PORT + shard (meshpay/shards.py)."""
    return API_PORT + shard


def service_key(node: str, shard: int) -> str:
    """The name of one FastPay process of `node` (state.json's pids, the launcher's batch):
    the node's own name for shard 0, so a node of one shard is named as it always was, and
    `<node>.s<k>` for shard k (a dot never occurs in a node name: no node can take it)."""
    return node if shard == 0 else f"{node}.s{shard}"


@dataclass(frozen=True)
class ServicePlan:
    """One FastPay process of a node: an authority of N shards has N, every other node one."""

    key: str  # service_key(node, shard)
    node: str
    shard: int
    api_url: str


@dataclass(frozen=True)
class NodePlan:
    name: str
    role: str
    index: int
    netns: str
    radio: str
    mac: str
    mesh_ip: str
    mgmt_ip: str
    host_veth: str
    position: tuple[float, float]
    range: float
    balance: int
    weight: int
    # The node's own SAE password (a topology override); None: the mesh's.
    mesh_password: str | None = field(default=None, repr=False)
    # How it moves once the lab serves (from `position`); None: it stays put.
    motion: Motion | None = None
    # FastPay shard processes (authorities; 1 for a client): all in the node's netns, behind
    # its one key and mesh address.
    shards: int = 1

    @property
    def api_url(self) -> str:
        """The node's REST URL: its shard 0's."""
        return self.services[0].api_url

    @property
    def services(self) -> tuple[ServicePlan, ...]:
        """The node's FastPay processes, shard 0 first."""
        return tuple(ServicePlan(service_key(self.name, k), self.name, k, f"http://{self.mgmt_ip}:{api_port(k)}")
                     for k in range(self.shards))


def medium_netns(lab: str) -> str:
    # Under the lab's netns prefix, so `down` removes it with the nodes; a dot cannot occur in
    # a node name, so no node can take this name.
    return f"{netns_prefix(lab)}.medium"


@dataclass(frozen=True)
class MediumPlan:
    """The lab's medium process: the radios are created from `netns`, where it registers, so it
    takes over this lab's radios only (hwsim relays frames within the creating netns' group)."""

    netns: str
    model: str
    tx_power_dbm: float
    noise_dbm: float
    exponent: float
    ref_distance_m: float
    loss: bool
    seed: int = 1  # of the medium's random draws
    airtime: bool = False
    # (transmitter, receiver) -> what `links:` impairs on that direction
    impairments: tuple[tuple[tuple[str, str], Impairment], ...] = ()


@dataclass(frozen=True)
class Plan:
    lab: str
    lab_id: str
    mesh_id: str
    freq: int
    mesh_params: dict[str, int]
    security: str
    runtime: str
    bridge: str
    bridge_ip: str
    mesh_prefixlen: int
    mgmt_prefixlen: int
    nodes: tuple[NodePlan, ...]
    # Pairs (by node name, sorted) that must not peer: out of range of each other, or blocked by `links`.
    blocked: tuple[tuple[str, str], ...]
    # The topology's SAE password; None with `sae`: `up` makes a per-lab secret.
    mesh_password: str | None = field(default=None, repr=False)
    # Pairs blocked by `links` only (the medium keeps out-of-range pairs apart by itself).
    link_blocked: tuple[tuple[str, str], ...] = ()
    medium: MediumPlan | None = None
    discovery: str = "static"
    beacon_interval: int | None = None  # TU; None: the joiner's default
    dtim_period: int | None = None
    rate_mbps: float | None = None  # every radio's one legacy tx rate (MeshSettings.rate_mbps); None: minstrel's choice
    # The registry's allocation this plan's names and addresses derive from (lab_id is its id).
    identity: Identity = UNALLOCATED
    # Mesh params authorities take on top of `mesh_params` (HWMP root mode, say).
    authority_mesh_params: dict[str, int] = field(default_factory=dict)
    address_resolution: str = "static"  # or "arp"

    def mesh_params_of(self, node: NodePlan) -> dict[str, int]:
        """The kernel mesh params `node` joins with."""
        if node.role == "authority":
            return {**self.mesh_params, **self.authority_mesh_params}
        return self.mesh_params

    def static_neighbours(self, node: NodePlan) -> dict[str, str]:
        """Mesh address -> MAC of every other node, for `node`'s neighbour table; empty unless
        `address_resolution` is static."""
        if self.address_resolution != "static":
            return {}
        return {n.mesh_ip: n.mac for n in self.nodes if n.name != node.name}

    @property
    def plink_blocked(self) -> tuple[tuple[str, str], ...]:
        """Pairs whose peer links must be blocked: all of `blocked` without a medium."""
        return self.link_blocked if self.medium else self.blocked

    def node(self, name: str) -> NodePlan:
        """The plan of node `name`. Only our own code asks (a user's names are checked against
        lab.json, labdir.lab_node): a miss means the lab's files name a node its topology does not,
        a failure of the lab (exit 1), not of the command."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise MeshpayError(f"no node {name!r} in lab {self.lab!r}'s topology (nodes: "
                           f"{', '.join(n.name for n in self.nodes)}), yet the lab's files name it: was the "
                           f"topology edited while the lab was up? `meshpay-lab down --lab {self.lab}`, then `up`")

    def neighbours(self, name: str) -> list[str]:
        """Nodes `name` is expected to peer with: in range, not blocked, and, on an SAE mesh,
        holding the same password."""
        blocked = set(self.blocked)
        me = self.node(name)
        return [
            n.name
            for n in self.nodes
            if n.name != name and tuple(sorted((name, n.name))) not in blocked
            and self.same_password(me, n)
        ]

    def same_password(self, a: NodePlan, b: NodePlan) -> bool:
        if self.security != "sae":
            return True
        # None stands for the per-lab secret `up` makes, which no topology password can equal.
        return (a.mesh_password or self.mesh_password) == (b.mesh_password or self.mesh_password)


def mesh_ip(index: int) -> str:
    return f"10.77.{index // 250}.{index % 250 + 1}"


def node_mac(lid: str, index: int) -> str:
    # Locally administered, unicast (02:...), unique per lab and node.
    return f"02:{lid[:2]}:{lid[2:]}:00:{index // 256:02x}:{index % 256:02x}"


def in_range(a: NodePlan, b: NodePlan) -> bool:
    """Whether two planned nodes hear each other where they start (airspace.in_range)."""
    return airspace.in_range(math.dist(a.position, b.position), a.range, b.range)


def make_plan(topo: Topology, identity: Identity = UNALLOCATED) -> Plan:
    lid = identity.id
    nodes = tuple(
        NodePlan(
            name=name,
            role=spec.role,
            index=i,
            netns=f"{netns_prefix(topo.name)}{name}",
            radio=f"{radio_prefix(lid)}{i}",
            mac=node_mac(lid, i),
            mesh_ip=mesh_ip(i),
            mgmt_ip=identity.mgmt_ip(i + 1),
            host_veth=f"mp{lid}v{i}",
            position=spec.position,
            range=topo.range_of(name),
            balance=topo.balance_of(name),
            weight=spec.weight,
            mesh_password=spec.mesh_password,
            motion=topo.motion_of(name),
            shards=spec.shards,
        )
        for i, (name, spec) in enumerate(topo.nodes.items())
    )
    link_blocked = {tuple(sorted((link.a, link.b))) for link in topo.links if link.blocks}
    blocked = set(link_blocked)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if not in_range(a, b):
                blocked.add(tuple(sorted((a.name, b.name))))
    return Plan(
        lab=topo.name,
        lab_id=lid,
        mesh_id=topo.mesh.id,
        freq=topo.mesh.freq,
        mesh_params=_mesh_params(topo),
        security=topo.mesh.security,
        runtime=topo.runtime,
        bridge=f"mp{lid}br",
        bridge_ip=identity.mgmt_ip(254),
        mesh_prefixlen=16,
        mgmt_prefixlen=24,
        nodes=nodes,
        blocked=tuple(sorted(blocked)),
        link_blocked=tuple(sorted(link_blocked)),
        medium=_medium_plan(topo),
        mesh_password=topo.mesh.password,
        discovery=topo.discovery,
        beacon_interval=topo.mesh.beacon_interval,
        dtim_period=topo.mesh.dtim_period,
        rate_mbps=topo.mesh.rate_mbps,
        identity=identity,
        authority_mesh_params=dict(topo.mesh.authority_params),
        address_resolution=topo.mesh.address_resolution,
    )


def _mesh_params(topo: Topology) -> dict[str, int]:
    params = dict(topo.mesh.params)
    if topo.discovery == "mdns":
        # mDNS queries and announcements are group-addressed frames; a mesh station re-broadcasts
        # them to the next hop only with forwarding on. The kernel's default is on, but a lab
        # whose discovery depends on it says so rather than trusting the default. The mesh TTL
        # (mesh_element_ttl, mesh_ttl: 31 hops by default) and mDNS' IP TTL of 255 already
        # cover any lab (the whole mesh is one IP link); measured across 3 and 4 hops.
        params["mesh_fwding"] = 1
    return params


def _medium_plan(topo: Topology) -> MediumPlan | None:
    m = topo.medium
    if not m.enabled:
        return None
    return MediumPlan(netns=medium_netns(topo.name), model=m.model, tx_power_dbm=m.tx_power_dbm,
                      noise_dbm=m.noise_dbm, exponent=m.exponent, ref_distance_m=m.ref_distance_m,
                      loss=m.loss, seed=m.seed, impairments=link_impairments(topo), airtime=m.airtime)


def link_impairments(topo: Topology) -> tuple[tuple[tuple[str, str], Impairment], ...]:
    """The impairments of the topology's `links:` entries, by direction (a later entry wins)."""
    out: dict[tuple[str, str], Impairment] = {}
    for link in topo.links:
        if link.impairs:
            imp = Impairment(link.loss_pct, link.delay_ms, link.jitter_ms, link.rate_mbps)
            for way in (("a_to_b", (link.a, link.b)), ("b_to_a", (link.b, link.a))):
                if link.direction in ("both", way[0]):
                    out[way[1]] = imp
    return tuple(sorted(out.items()))
