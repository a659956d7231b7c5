"""`list` and `status --all`: every lab on this host, wherever it was started from.

    {"labs": [{"lab", "where" (host | vm), "phase" (creating | up | ?), "nodes", "lab_id",
               "mgmt_subnet", "lab_dir", "topology"}, ...]}

With `probe`, each row also says how many nodes serve (`serving`, "3/4") and `ready` (all serve);
a VM lab is asked through its agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orchestrator import labfiles
from orchestrator.lab import labdir, registry


def run(root: Path | None = None, probe: bool = False, dispatch: Callable[..., dict] | None = None) -> dict:
    """The rows above; `dispatch` (orchestrator.dispatch.call, given by it) asks each lab for its
    status when probing."""
    entries = {e.name: e for e in registry.live_entries()}
    rows = []
    for name, lab_dir in labdir.known_labs(root).items():
        entry = entries.get(name)
        rows.append(_row(name, lab_dir, entry, dispatch if probe else None))
    return {"labs": rows}


def _row(name: str, lab_dir: Path, entry: registry.Entry | None, dispatch: Callable[..., dict] | None) -> dict:
    state = _read(lab_dir / labfiles.STATE)
    info = _read(lab_dir / labfiles.LAB)
    identity = state.get("identity") or {}
    row = {
        "lab": name,
        "where": "vm" if (lab_dir / labfiles.VM_RECORD).exists() else "host",
        "phase": state.get("phase", "?"),
        "nodes": len(info.get("nodes", {})),
        "lab_id": info.get("lab_id") or identity.get("id") or (entry.id if entry else None),
        "mgmt_subnet": info.get("mgmt_subnet") or (entry.identity.mgmt_subnet if entry and entry.identity else None),
        "lab_dir": str(lab_dir),
        "topology": entry.topology if entry else state.get("topology"),
    }
    if dispatch is not None:
        row["serving"], row["ready"] = _serving(lab_dir, row["nodes"], dispatch)
    return row


def _serving(lab_dir: Path, nodes: int, dispatch: Callable[..., dict]) -> tuple[str, bool]:
    try:
        status = dispatch(lab_dir, "status")
    except Exception as exc:  # one broken lab must not hide the others
        return f"error: {exc}", False
    serving = sum(1 for r in status["nodes"] if r["serving"])
    medium_ok = (status.get("medium") or {}).get("state", "none") in ("running", "none")
    return f"{serving}/{len(status['nodes'])}", serving == len(status["nodes"]) == nodes and medium_ok


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
