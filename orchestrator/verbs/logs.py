"""`logs NODE`: the tail of a node's service log."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from orchestrator import labfiles
from orchestrator.lab import labdir


def run(lab_dir: Path, node: str, lines: int = 50) -> dict:
    lab_dir = Path(lab_dir)
    labdir.lab_node(lab_dir, node)
    path = lab_dir / labfiles.NODES_DIR / node / labfiles.NODE_LOG
    if not path.exists():
        return {"node": node, "path": str(path), "lines": []}
    with path.open(errors="replace") as f:
        tail = deque(f, maxlen=lines)
    return {"node": node, "path": str(path), "lines": [line.rstrip("\n") for line in tail]}
