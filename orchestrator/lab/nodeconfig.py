"""The NODE_JSON each node process reads (docs/architecture.md): built from the plan and written
here, owner-only (it holds the node's seed and the API token), to <lab>/nodes/<node>/node.json,
and for shard k of an authority of several shards to node.shard<k>.json beside it."""

from __future__ import annotations

from pathlib import Path

from orchestrator import labfiles
from orchestrator.lab import keys, labdir
from orchestrator.lab.plan import WIRE_PORT, NodePlan, Plan, ServicePlan, api_port


def config_path(lab_dir: Path, node: str, shard: int = 0) -> Path:
    """Where the NODE_JSON of `node`'s shard `shard` is (its directory is made if missing)."""
    return labdir.node_file(lab_dir, node, labfiles.NODE_CONFIG, shard)


def write_node_configs(lab_dir: Path, plan: Plan, seeds: dict[str, str], token: str) -> dict[str, Path]:
    """Write the NODE_JSON of every node's every process (seeds: node -> hex ed25519 seed);
    service key (plan.service_key) -> its path."""
    pubkeys = {name: keys.public_key(seed) for name, seed in seeds.items()}
    services = {s.key: s for n in plan.nodes for s in n.services}
    db_paths = {key: str(labdir.node_file(lab_dir, s.node, labfiles.NODE_DB, s.shard)) for key, s in services.items()}
    paths = {}
    for key, cfg in node_configs(plan, seeds, pubkeys, token, db_paths).items():
        paths[key] = config_path(lab_dir, services[key].node, services[key].shard)
        labdir.write_secret_json(paths[key], cfg)
    return paths


def node_configs(plan: Plan, seeds: dict[str, str], pubkeys: dict[str, str], token: str,
                 db_paths: dict[str, str]) -> dict[str, dict]:
    """Service key -> its NODE_JSON; db_paths: service key -> its SQLite file (one per process:
    a shard holds only its own accounts)."""
    # `shards` is in every node's committee: a client sends each request to the shard of the
    # account it names (meshpay/shards.py), and a shard's peers pull every shard's log.
    committee = [
        {"name": n.name, "public_key": pubkeys[n.name], "weight": n.weight,
         "host": n.mesh_ip, "port": WIRE_PORT, "shards": n.shards}
        for n in plan.nodes if n.role == "authority"
    ]
    # With mDNS discovery the keys, weights and shard counts stay pinned here; only the
    # addresses are left out, for the nodes to find on the mesh.
    if plan.discovery == "mdns":
        committee = [{k: v for k, v in m.items() if k not in ("host", "port")} for m in committee]
    clients = [
        {"name": n.name, "public_key": pubkeys[n.name], "host": n.mesh_ip, "port": WIRE_PORT}
        for n in plan.nodes if n.role == "client"
    ]
    genesis = {pubkeys[n.name]: n.balance for n in plan.nodes if n.role == "client"}
    return {s.key: _one(n, s, seeds[n.name], token, db_paths[s.key], committee, clients, genesis, plan.discovery)
            for n in plan.nodes for s in n.services}


def _one(node: NodePlan, service: ServicePlan, seed: str, token: str, db_path: str, committee: list[dict],
         clients: list[dict], genesis: dict[str, int], discovery: str) -> dict:
    return {
        "name": node.name,
        "role": node.role,
        "seed": seed,
        "db_path": db_path,
        # Protocol traffic binds to the mesh address only, so it can only travel over the radio.
        # Every shard is given the base port; shard k serves on WIRE_PORT + k (meshpay/config.py).
        "wire_host": node.mesh_ip,
        "wire_port": WIRE_PORT,
        "shard": service.shard,
        # People and scripts come in over the management link, never over the mesh.
        "api_host": node.mgmt_ip,
        "api_port": api_port(service.shard),
        "api_token": token,
        "committee": committee,
        "clients": clients,
        "genesis": genesis,
        "discovery": discovery,
    }
