"""`up`: make the lab the plan describes, on this kernel (the VM route calls this inside the VM).

Idempotent: every step first looks at what exists, so re-running `up` on a running lab reconciles
(restarts a dead node process, re-creates a missing radio) and never duplicates.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from orchestrator import labfiles
from orchestrator.air.airspace import read_config
from orchestrator.errors import MeshpayError, UsageError
from orchestrator.kernel import mesh, mgmt, radio
from orchestrator.kernel.netlink import iproute
from orchestrator.lab import keys, labdir, nodeconfig, registry
from orchestrator.lab.plan import MESH_IFNAME, MGMT_IFNAME, NodePlan, Plan, make_plan, radio_prefix
from orchestrator.lab.topology import load_topology
from orchestrator.medium import control as medium_control
from orchestrator.runtime import runtime_for, sae
from orchestrator.runtime.base import NodeRef, NodeService, Runtime
from orchestrator.runtime.health import process_alive, wait_healthy

log = logging.getLogger(__name__)

PEERING_TIMEOUT_S = 90.0
SERVING_TIMEOUT_S = 300.0
# Per node on top: under TCG the radios' beacons and the nodes' start-up share two vCPUs, so a
# 50-node lab on a loaded host had not peered after 90 s although every missing pair was in range.
PEERING_S_PER_NODE = 3.0
SERVING_S_PER_NODE = 6.0
PEERING_POLL_S = 0.5
# Nodes set up at a time (radio, mesh point, veth): most of a node's set-up under TCG is the
# kernel waiting (RCU grace periods when interfaces change netns), which overlaps across nodes.
SETUP_WORKERS = 4


def run(lab_dir: Path, topology: str, on_step: Callable[[str], None] | None = None,
        runtime: str | None = None) -> dict:
    """`runtime` overrides the topology's `runtime:` (netns or docker).

    Raises registry.RegistryError, before anything is created, when another live lab holds the
    name (or the identity this lab was made with)."""
    topo = load_topology(topology)
    if runtime is not None:
        topo = topo.model_copy(update={"runtime": runtime})
    lab_dir = Path(lab_dir)
    entry = registry.claim(topo.name, lab_dir, Path(topology), preferred=_recorded_identity(lab_dir),
                           busy_octets=_busy_octets(topo.name))
    assert entry.identity is not None  # a lab on this kernel always gets one
    plan = make_plan(topo, entry.identity)
    _refuse_kernel_holders(plan)
    lab_dir.mkdir(parents=True, exist_ok=True)
    progress = lab_dir / labfiles.PROGRESS

    def step(msg: str) -> None:
        log.info("up step=%r lab=%s", msg, plan.lab)
        with progress.open("a") as f:
            f.write(f"{time.time():.3f} {msg}\n")
        if on_step:
            on_step(msg)

    t0 = time.monotonic()
    state = _load_or_new_state(lab_dir, plan, topology)
    # Before anything is made: an `up` stopped at any point (Ctrl-C, a crash) leaves a lab that
    # the registry still counts and `down` removes.
    labdir.write_state(lab_dir, state)
    rt = runtime_for(plan.runtime, plan.lab, lab_dir)
    # Work the services need ahead (the netns runtime's imports) overlaps the mesh set-up below;
    # released unused if `up` fails or nothing needs starting.
    rt.prepare_services()
    try:
        return _build(lab_dir, plan, state, rt, step, t0)
    finally:
        rt.close()


def _build(lab_dir: Path, plan: Plan, state: dict, rt: Runtime, step: Callable[[str], None],
           t0: float) -> dict:
    timings: dict[str, float] = {}
    refs = {n.name: NodeRef(lab=plan.lab, name=n.name, netns=n.netns) for n in plan.nodes}

    step(f"creating {len(plan.nodes)} nodes ({plan.runtime})")
    for node in plan.nodes:
        rt.create(refs[node.name])  # idempotent: also repairs a restarted container's netns name
    labdir.write_state(lab_dir, state)

    # Radios made from the medium's netns belong to it: it relays their frames by distance.
    made_in = plan.medium.netns if plan.medium else None
    if plan.medium:
        step(f"starting the wireless medium ({plan.medium.model})")
        medium_control.create_netns(plan)
        medium_control.ensure_running(lab_dir, plan, state)
        labdir.write_state(lab_dir, state)

    step("creating radios and joining the 802.11s mesh")
    # One look through every netns for the lab's radios, not one per node: finding a radio means
    # opening hwsim and nl80211 sockets in each namespace (the kernel shows a moved phy only
    # inside the netns it was moved to), which made this step quadratic in the lab's size.
    existing = {r.name: r for r in radio.list_radios(radio_prefix(plan.lab_id))}

    def radio_and_mesh(node: NodePlan) -> None:
        mine = existing.get(node.radio)
        if mine is not None and mine.netns != node.netns:  # made by a crashed `up`, never moved
            radio.delete_radio(mine.name, mine.netns)
            mine = None
        fresh = mine is None
        if mine is None:
            made = radio.create_radio(node.radio, mac=node.mac, netns=made_in)
            radio.move_phy(made.phy_index, rt.netns_path(refs[node.name]), from_netns=made_in)
            # a wiphy keeps its index across netns; and a new radio has no interface (NO_VIF):
            # no need to look for either, which costs sockets in the node's netns
            mine = dataclasses.replace(made, netns=node.netns)
        if fresh or not _has_interface(node.netns, MESH_IFNAME):
            mesh.create_mesh_point(node.netns, mine.phy_index, MESH_IFNAME, node.mac,
                                   cidr=f"{node.mesh_ip}/{plan.mesh_prefixlen}")
            if plan.rate_mbps is not None:  # before the join, or the kernel refuses it (set_tx_rate)
                mesh.set_tx_rate(node.netns, MESH_IFNAME, plan.freq, plan.rate_mbps)
            if plan.security == "none":  # an SAE mesh is joined by wpa_supplicant, below
                mesh.join_mesh(node.netns, MESH_IFNAME, plan.mesh_id, plan.freq, plan.mesh_params_of(node),
                               plan.beacon_interval, plan.dtim_period)
        # Every time, not only for a new mesh point: cheap, and a lab re-run with a changed
        # topology gets the table it now implies.
        mesh.set_static_neighbours(node.netns, MESH_IFNAME, plan.static_neighbours(node))

    for_each_node(plan.nodes, radio_and_mesh)
    state["radios"] = sorted(n.radio for n in plan.nodes)
    labdir.write_state(lab_dir, state)

    if plan.security == "sae":
        step("starting wpa_supplicant (SAE, protected frames) on every node")
        sae.start_all(lab_dir, plan, state, rt, refs)
        labdir.write_state(lab_dir, state)

    step("wiring the management plane")
    owned = set(mgmt.owned_links(plan.lab))
    if plan.bridge not in owned:
        mgmt.create_bridge(plan.bridge, f"{plan.bridge_ip}/{plan.mgmt_prefixlen}", lab=plan.lab)
    for_each_node([n for n in plan.nodes if n.host_veth not in owned], lambda node: mgmt.add_node_link(
        plan.bridge, node.netns, node.host_veth, node_ifname=MGMT_IFNAME,
        cidr=f"{node.mgmt_ip}/{plan.mgmt_prefixlen}", lab=plan.lab))
    labdir.write_state(lab_dir, state)

    step("waiting for peer links" + (" (and blocking out-of-range pairs)" if not plan.medium else ""))
    peering = wait_for_peering(plan, max(PEERING_TIMEOUT_S, PEERING_S_PER_NODE * len(plan.nodes)),
                               elsewhere=_elsewhere(lab_dir, plan))
    timings["peering_s"] = round(time.monotonic() - t0, 2)

    step("starting FastPay node services")
    configs = nodeconfig.write_node_configs(lab_dir, plan, state["seeds"], state["token"])
    # One process per shard of an authority (one for every other node), all in its node's netns.
    services = [s for n in plan.nodes for s in n.services]
    logs = {s.key: labdir.node_file(lab_dir, s.node, labfiles.NODE_LOG, s.shard) for s in services}
    pids = state.setdefault("pids", {})
    pids.update(rt.start_services([
        NodeService(refs[s.node], configs[s.key], logs[s.key], s.key)
        for s in services if not process_alive(pids.get(s.key))
    ]))
    labdir.write_state(lab_dir, state)

    step("waiting for every node to serve")
    wait_healthy({s.key: s.api_url for s in services},
                 max(SERVING_TIMEOUT_S, SERVING_S_PER_NODE * len(services)), pids=pids, logs=logs)
    timings["serving_s"] = round(time.monotonic() - t0, 2)

    if plan.medium and any(n.motion for n in plan.nodes):
        # Only now: peering above was awaited at the topology's positions.
        epoch = medium_control.start_mobility(lab_dir)
        step(f"mobile nodes moving since {time.strftime('%H:%M:%S', time.localtime(epoch))}" if epoch
             else "every mobile node was pinned by `move`: nothing moves")

    labdir.write_token(lab_dir, state["token"])
    info = lab_info(plan, state)
    labdir.write_lab_json(lab_dir, info)
    state["phase"] = "up"
    state["timings"] = timings
    labdir.write_state(lab_dir, state)
    step(f"lab {plan.lab} is up in {timings['serving_s']:.1f} s")
    return {"lab": plan.lab, "lab_dir": str(lab_dir), "timings": timings, "peering": peering,
            "nodes": info["nodes"]}


def for_each_node(nodes: Sequence[NodePlan], work: Callable[[NodePlan], None],
                  workers: int = SETUP_WORKERS) -> None:
    """work(node) for every node, `workers` at a time; the first failure is raised once all
    have ended (work is idempotent: `up` again finishes what a failure left)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="up")
    try:
        results = [pool.submit(work, node) for node in nodes]
        wait(results)
    except BaseException:
        # Ctrl-C: the nodes not started yet are dropped and the running ones finish, so what is
        # left is whole nodes under state.json's names, for `down` to remove.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    for result in results:
        result.result()


def _load_or_new_state(lab_dir: Path, plan: Plan, topology: str) -> dict:
    try:
        state = labdir.read_state(lab_dir)
    except labdir.LabNotUp:
        state = {}
    if state and state.get("lab") != plan.lab:
        raise UsageError(
            f"{lab_dir} holds lab {state.get('lab')!r}, not {plan.lab!r}: take it down first "
            f"(`meshpay-lab down --lab {state.get('lab')}`) or use another --labs-root"
        )
    state.update({"lab": plan.lab, "topology": str(Path(topology).resolve()), "runtime": plan.runtime,
                  "phase": "creating", "identity": dataclasses.asdict(plan.identity)})
    state.setdefault("seeds", {})
    state.setdefault("token", keys.new_token())
    if plan.security == "sae":
        # Used only when the topology names no password; owner-only, like the rest of state.json.
        state.setdefault("mesh_secret", keys.new_token())
    for node in plan.nodes:
        state["seeds"].setdefault(node.name, keys.new_seed())
    return state


def _busy_octets(lab_name: str) -> frozenset[int]:
    """The 172.31.<n>.0/24 subnets this kernel already uses for something other than this lab."""
    mine = mgmt.lab_alias(lab_name)
    with iproute(None) as ipr:
        aliases = {link["index"]: link.get_attr("IFLA_IFALIAS") for link in ipr.get_links()}
        addrs = [(a["index"], a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(family=socket.AF_INET)]
    return frozenset(int(ip.split(".")[2]) for index, ip in addrs
                     if ipaddress.ip_address(ip) in registry.MGMT_RANGE and aliases.get(index) != mine)


def _refuse_kernel_holders(plan: Plan) -> None:
    """The registry knows the labs that used it; the kernel may hold more (a lab made before it,
    or a Docker network on 172.31.0.0/16). Any interface under this lab's names or any address in
    its management subnet that this lab did not make: refuse, before creating anything."""
    mine = mgmt.lab_alias(plan.lab)
    names = {plan.bridge} | {n.host_veth for n in plan.nodes}
    subnet = ipaddress.ip_network(plan.identity.mgmt_subnet)
    with iproute(None) as ipr:
        links = {link["index"]: (link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_IFALIAS"))
                 for link in ipr.get_links()}
        addrs = [(a["index"], a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(family=socket.AF_INET)]
    held = [f"interface {name} ({alias or 'no meshpay-lab alias'})"
            for name, alias in links.values() if name in names and alias != mine]
    held += [f"address {ip} on {links.get(index, ('?',))[0]}" for index, ip in addrs
             if ipaddress.ip_address(ip) in subnet and links.get(index, (None, None))[1] != mine]
    if held:
        raise registry.RegistryError(
            f"lab {plan.lab} was given id {plan.lab_id} and subnet {plan.identity.mgmt_subnet}, but this "
            f"kernel already holds {', '.join(held)}, not made by this lab: remove it, or take down the "
            "lab that made it (`meshpay-lab list`)")


def _recorded_identity(lab_dir: Path) -> registry.Identity | None:
    """The identity a previous `up` of this lab directory made its objects with, if any."""
    try:
        recorded = labdir.read_state(lab_dir).get("identity")
    except (labdir.LabNotUp, ValueError):
        return None
    return registry.Identity(recorded["id"], recorded["octet"]) if recorded else None


def _elsewhere(lab_dir: Path, plan: Plan) -> frozenset[str]:
    """Nodes a re-run of `up` finds away from the topology's positions (moved, or moving since
    the mobility epoch): their planned neighbours no longer say whom they should peer with."""
    if not plan.medium or not (lab_dir / labfiles.MEDIUM_CONFIG).exists():
        return frozenset()
    cfg = read_config(lab_dir)
    return frozenset(r.name for r in cfg.radios
                     if (r.motion and cfg.mobility_epoch is not None) or r.position != plan.node(r.name).position)


def wait_for_peering(plan: Plan, timeout: float, elsewhere: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Block every pair the plan forbids (with a medium, only `links` blocks: out-of-range radios
    never hear each other) as soon as the kernel knows the station, and wait until every node has
    an established link to each planned neighbour (links to or from a node `elsewhere` are not
    waited for). Returns node -> peers. Errors: errors.MeshpayError when they have not after
    `timeout` seconds, naming what each node lacks."""
    macs = {n.mac: n.name for n in plan.nodes}
    blocked = {(a, b) for a, b in plan.plink_blocked} | {(b, a) for a, b in plan.plink_blocked}
    deadline = time.monotonic() + timeout
    while True:
        round_start = time.monotonic()
        established: dict[str, list[str]] = {}
        missing = []
        for node in plan.nodes:
            stas = mesh.stations(node.netns, MESH_IFNAME)
            peers = []
            for sta in stas:
                other = macs.get(sta.mac)
                if other is None:
                    continue
                if (node.name, other) in blocked:
                    if sta.plink_state != "BLOCKED":
                        # Done only after a round that found nothing left to block.
                        missing.append(f"{node.name} still to block {other}")
                        try:
                            mesh.block_peer(node.netns, MESH_IFNAME, sta.mac)
                        except mesh.StationUnknown:
                            # Listed a moment ago, expired since (SAE drops failed peers):
                            # the next round blocks it if it comes back.
                            pass
                elif sta.plink_state == "ESTAB":
                    peers.append(other)
            established[node.name] = sorted(peers)
            want = set() if node.name in elsewhere else set(plan.neighbours(node.name)) - elsewhere
            if not want <= set(peers):
                missing.append(f"{node.name} lacks {sorted(want - set(peers))}")
        if not missing:
            return established
        if time.monotonic() > deadline:
            raise MeshpayError(f"mesh peering incomplete after {timeout:.0f} s: " + "; ".join(missing)
                               + "; `meshpay-lab peers NODE` shows a node's links, and `up` again waits anew")
        # Rest at least as long as the round took: under TCG a round over 50 nodes takes seconds
        # of CPU that the medium and the kernel's peering need more than this loop does.
        time.sleep(max(PEERING_POLL_S, time.monotonic() - round_start))


def _has_interface(netns: str, ifname: str) -> bool:
    # netlink.iproute opens its socket from a thread inside the netns; pyroute2's own `netns=`
    # forks a process per call, seconds per node under TCG.
    with iproute(netns) as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def lab_info(plan: Plan, state: dict) -> dict:
    return {
        "lab": plan.lab,
        "lab_id": plan.lab_id,
        "mgmt_subnet": plan.identity.mgmt_subnet,
        "runtime": plan.runtime,
        "discovery": plan.discovery,
        "mesh": {"id": plan.mesh_id, "freq": plan.freq, "params": plan.mesh_params,
                 "authority_params": plan.authority_mesh_params,
                 "address_resolution": plan.address_resolution, "security": plan.security},
        # State-changing REST calls need `Authorization: Bearer $(cat token)`.
        "token_file": labfiles.TOKEN,
        "nodes": {
            n.name: {
                "role": n.role,
                "public_key": keys.public_key(state["seeds"][n.name]),
                "mesh_ip": n.mesh_ip,
                "mgmt_ip": n.mgmt_ip,
                "mac": n.mac,
                "netns": n.netns,
                "position": list(n.position),
                "range": n.range,  # metres: `draw` circles it on a lab without a medium
                "api_url": n.api_url,
                "rest_url": n.api_url,
                "shards": n.shards,
                # every FastPay process of the node (labdir.node_services): status, fault and
                # balance cover each shard of an authority
                "services": [{"key": s.key, "shard": s.shard, "api_url": s.api_url} for s in n.services],
            }
            for n in plan.nodes
        },
    }

