"""`mesh_tables`: every node's established peers and HWMP next hops, in one call.

What `draw` (and `draw --live`) needs of the kernel, gathered where the lab lives: a VM lab
answers in one round trip instead of one per node and one per hop. Returns
{"peers": {node: [peer node, ...]}, "next_hops": {node: {destination node: next hop node}},
"errors": {node: {"peers" | "paths": message}}}: a node that cannot answer is reported, not fatal.
Peers are ESTAB links to nodes of this lab; an unknown MAC is "?", as in `peers` and `paths`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.lab import labdir
from orchestrator.verbs import paths, peers

Ask = Callable[[Path, str, str], dict]  # (lab_dir, "peers" | "paths", node) -> that verb's answer


def _ask_here(lab_dir: Path, verb: str, node: str) -> dict:
    return (peers if verb == "peers" else paths).run(lab_dir, node)


def run(lab_dir: Path, ask: Ask = _ask_here) -> dict:
    lab_dir = Path(lab_dir)
    nodes = sorted(labdir.read_lab_json(lab_dir)["nodes"])
    out: dict = {"peers": {}, "next_hops": {}, "errors": {}}
    for name in nodes:
        try:
            out["peers"][name] = sorted(p["peer"] for p in ask(lab_dir, "peers", name)["peers"]
                                        if p["plink_state"] == "ESTAB" and p["peer"] in nodes)
        except Exception as exc:  # noqa: BLE001 - a node that cannot answer is drawn without its links
            out["errors"].setdefault(name, {})["peers"] = str(exc)
        try:
            out["next_hops"][name] = {r["destination_node"]: r["next_hop_node"]
                                      for r in ask(lab_dir, "paths", name)["paths"]}
        except Exception as exc:  # noqa: BLE001
            out["errors"].setdefault(name, {})["paths"] = str(exc)
    return out
