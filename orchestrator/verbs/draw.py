"""`draw [--out DIR] [--from CLIENT]`: the mesh as it is now, as mesh.html (inline SVG) and mesh.png.

Positions come from the medium (medium.json where `move` put the nodes, its last report for nodes
that move by a mobility model), else from lab.json;
links from every node's established peers; routes by following next hops from the sender to each
authority; both from one `mesh_tables` call. The sender is --from, else the sender of the last transfer of the last
scenario run. Everything but the files is asked through the verbs, so a VM lab answers too.
`draw --live` (orchestrator/liveview.py) redraws the same picture every second from these parts.
"""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.air.airspace import impairments_in_force, read_config
from orchestrator.lab import labdir
from orchestrator.medium import control as medium_control
from orchestrator.report import meshmap
from orchestrator.verbs.run import Dispatch, latest


def run(lab_dir: Path, out: str | None = None, sender: str | None = None, *, dispatch: Dispatch) -> dict:
    """`dispatch` (orchestrator.dispatch.call, which gives it) asks the lab for its mesh tables."""
    lab_dir = Path(lab_dir)
    out_dir = Path(out) if out else lab_dir
    m = snapshot(lab_dir, sender, dispatch)
    title = f"lab {m.lab}, {time.strftime('%Y-%m-%d %H:%M:%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, png_path = out_dir / "mesh.html", out_dir / "mesh.png"
    html_path.write_text(meshmap.page(m, title))
    png_problem = meshmap.png(m, png_path, title)
    return {"lab": m.lab, "html": str(html_path), "png": None if png_problem else str(png_path),
            "png_problem": png_problem, "nodes": len(m.nodes), "links": len(m.links),
            "routes": [list(r) for r in m.routes], "notes": list(m.notes)}


def snapshot(lab_dir: Path, sender: str | None, dispatch: Dispatch) -> meshmap.MeshMap:
    if sender is not None:
        labdir.lab_node(lab_dir, sender)  # an unknown --from is refused before anything is drawn
    info = labdir.read_lab_json(lab_dir)
    nodes = placed_nodes(lab_dir, info)
    tables = dispatch(lab_dir, "mesh_tables")  # one round trip, wherever the lab lives
    links, notes = peer_links(info, tables)
    impaired = impaired_links(lab_dir)
    notes += [f"impaired: {text}" for text in impaired.values()]
    sender = sender or last_sender(lab_dir)
    routes: tuple[tuple[str, ...], ...] = ()
    if sender is not None:
        routes = routes_from(info, sender, tables, notes)
    return meshmap.MeshMap(info["lab"], nodes, links, routes, tuple(notes), impaired=impaired)


def impaired_links(lab_dir: Path) -> dict[frozenset[str], str]:
    """Node pair -> what the medium's impairments do to that link, both directions in one text."""
    try:
        cfg = read_config(lab_dir)
    except LookupError:  # no medium, no impairments
        return {}
    impaired: dict[frozenset[str], str] = {}
    for row in impairments_in_force(cfg):
        pair = frozenset((row["from"], row["to"]))
        text = f"{row['from']}→{row['to']} {row['summary']}"
        impaired[pair] = f"{impaired[pair]}; {text}" if pair in impaired else text
    return impaired


def placed_nodes(lab_dir: Path, info: dict) -> tuple[meshmap.Node, ...]:
    """Every node where the medium has it now (lab.json's position in a lab without a medium)."""
    try:
        cfg = read_config(lab_dir)
        now = medium_control.positions_now(lab_dir)
        where = {r.name: (tuple(now[r.name]), r.range) for r in cfg.radios}
        isolated = cfg.isolated
    except LookupError:  # a lab without a medium: nodes stay where the topology put them
        where = {name: (tuple(n.get("position", (0.0, 0.0))), float(n.get("range", 0.0)))
                 for name, n in info["nodes"].items()}
        isolated = frozenset()
    return tuple(meshmap.Node(name, n["role"], where[name][0], where[name][1], name in isolated)
                 for name, n in sorted(info["nodes"].items()))


def peer_links(info: dict, tables: dict) -> tuple[frozenset[frozenset[str]], list[str]]:
    """The established peer links every node reports (verbs/mesh_tables.py), and a note per node
    that could not answer."""
    notes = [f"peers of {name}: {why['peers']}" for name, why in sorted(tables["errors"].items()) if "peers" in why]
    links = {frozenset((name, peer)) for name, peers in tables["peers"].items() for peer in peers}
    return frozenset(links), notes


def routes_from(info: dict, sender: str, tables: dict, notes: list[str]) -> tuple[tuple[str, ...], ...]:
    """The hop chains from `sender` to every authority, as HWMP knows them now."""
    authorities = sorted(name for name, n in info["nodes"].items() if n["role"] == "authority")
    routes = tuple(trace(sender, a, tables, notes) for a in authorities)
    notes.append(f"routes from {sender} to the authorities, as HWMP knows them now")
    return routes


def trace(src: str, dst: str, tables: dict, notes: list[str]) -> tuple[str, ...]:
    """The hops from src to dst, following each node's next hop; stops where a node knows none."""
    chain = [src]
    while chain[-1] != dst:
        here = chain[-1]
        why = tables["errors"].get(here, {}).get("paths")
        if why is not None and f"paths of {here}: {why}" not in notes:  # said once, on the first route here
            notes.append(f"paths of {here}: {why}")
        nxt = tables["next_hops"].get(here, {}).get(dst)
        if nxt is None or nxt == "?" or nxt in chain:  # no path, or a loop while HWMP settles
            notes.append(f"route {src} → {dst} known only as far as {here}")
            break
        chain.append(nxt)
    return tuple(chain)


def last_sender(lab_dir: Path) -> str | None:
    record = latest(lab_dir)
    transfers = [s for s in (record or {}).get("steps", []) if s["do"] == "transfer"]
    return transfers[-1]["args"]["from"] if transfers else None
