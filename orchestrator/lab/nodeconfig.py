"""The NODE_JSON each node process reads (docs/architecture.md), built from the plan."""

from __future__ import annotations

from orchestrator.lab.plan import API_PORT, WIRE_PORT, NodePlan, Plan


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
