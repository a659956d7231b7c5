"""`exec NODE -- CMD`: run a command inside a node (its netns, with /sys remounted by ip netns exec)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.lab import labdir


def run(lab_dir: Path, node: str, command: list[str], timeout: float = 60.0) -> dict:
    me = labdir.lab_node(Path(lab_dir), node)
    if not command:
        raise UsageError("exec needs a command after `--`, e.g. `meshpay-lab exec auth1 -- ip addr`")
    done = subprocess.run(["ip", "netns", "exec", me["netns"], *command], capture_output=True,
                          text=True, timeout=timeout)
    return {"node": node, "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
