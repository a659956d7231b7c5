"""The lab's transfer log: one JSON line per transfer the `transfer` verb ran, whatever asked for it
(the CLI, a scenario step, a benchmark), in `<lab>/transfers.jsonl`. What the live view lists as
recent transfers and their outcomes.

Line shape: {"time": unix s, "from": node, "to": node, "amount": int, "outcome": "confirmed" |
"rejected" | "pending" | "error", "latency_ms": float | None, "error": str | None}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator import labfiles

LOG_FILE = labfiles.TRANSFER_LOG
# Only the end of the log is read back: a long run's log stays cheap to follow once a second.
TAIL_BYTES = 64 * 1024


def append(lab_dir: Path, entry: dict) -> None:
    """One line, written with O_APPEND in one write, so concurrent transfers do not interleave."""
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    fd = os.open(Path(lab_dir) / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def recent(lab_dir: Path, count: int = 20) -> list[dict]:
    """The last `count` transfers, oldest first; [] when none was logged."""
    path = Path(lab_dir) / LOG_FILE
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    if size > TAIL_BYTES:
        tail = tail[1:]  # the first line read may be cut
    out = []
    for line in tail:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            continue
    return out[-count:]
