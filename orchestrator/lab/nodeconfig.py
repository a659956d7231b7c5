"""The NODE_JSON each node process reads (docs/architecture.md): built from the plan and written
here, owner-only (it holds the node's seed and the API token), to <lab>/nodes/<node>/node.json."""

from __future__ import annotations

from pathlib import Path

from orchestrator import labfiles
from orchestrator.lab import keys, labdir
from orchestrator.lab.plan import API_PORT, NodePlan, Plan, WIRE_PORT


def config_path(lab_dir: Path, node: str) -> Path:
    """Where node `node`'s NODE_JSON is (its directory is made if missing)."""
    return labdir.node_dir(lab_dir, node) / labfiles.NODE_CONFIG


def write_node_configs(lab_dir: Path, plan: Plan, seeds: dict[str, str], token: str) -> dict[str, Path]:
    """Write every node's NODE_JSON (seeds: node -> hex ed25519 seed); node -> its path."""
    pubkeys = {name: keys.public_key(seed) for name, seed in seeds.items()}
    db_paths = {n.name: str(labdir.node_dir(lab_dir, n.name) / labfiles.NODE_DB) for n in plan.nodes}
    paths = {}
    for name, cfg in node_configs(plan, seeds, pubkeys, token, db_paths).items():
        paths[name] = config_path(lab_dir, name)
        labdir.write_secret_json(paths[name], cfg)
    return paths


def node_configs(plan: Plan, seeds: dict[str, str], pubkeys: dict[str, str], token: str,
                 db_paths: dict[str, str]) -> dict[str, dict]:
    committee = [
        {"name": n.name, "public_key": pubkeys[n.name], "weight": n.weight,
         "host": n.mesh_ip, "port": WIRE_PORT}
        for n in plan.nodes if n.role == "authority"
    ]
    # With mDNS discovery the keys and weights stay pinned here; only the addresses are left
    # out, for the nodes to find on the mesh.
    if plan.discovery == "mdns":
        committee = [{k: v for k, v in m.items() if k not in ("host", "port")} for m in committee]
    clients = [
        {"name": n.name, "public_key": pubkeys[n.name], "host": n.mesh_ip, "port": WIRE_PORT}
        for n in plan.nodes if n.role == "client"
    ]
    genesis = {pubkeys[n.name]: n.balance for n in plan.nodes if n.role == "client"}
    return {n.name: _one(n, seeds[n.name], token, db_paths[n.name], committee, clients, genesis,
                         plan.discovery)
            for n in plan.nodes}


def _one(node: NodePlan, seed: str, token: str, db_path: str, committee: list[dict],
         clients: list[dict], genesis: dict[str, int], discovery: str) -> dict:
    return {
        "name": node.name,
        "role": node.role,
        "seed": seed,
        "db_path": db_path,
        # Protocol traffic binds to the mesh address only, so it can only travel over the radio.
        "wire_host": node.mesh_ip,
        "wire_port": WIRE_PORT,
        # People and scripts come in over the management link, never over the mesh.
        "api_host": node.mgmt_ip,
        "api_port": API_PORT,
        "api_token": token,
        "committee": committee,
        "clients": clients,
        "genesis": genesis,
        "discovery": discovery,
    }
