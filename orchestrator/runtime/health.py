"""Is a node serving? Polls its REST `/health` over the management plane."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from orchestrator.errors import MeshpayError


class NodeDied(MeshpayError):
    """A node's process exited before it served (exit 1); the message names its log."""


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def process_alive(pid: int | None) -> bool:
    """True for a running process; a zombie (exited, not yet reaped by its parent) counts as dead."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[1][0] != "Z"


# A node slow to answer under load (100 nodes on two emulated vCPUs) still counts once it answers:
# polled one after another with a 1 s timeout, such nodes were never seen serving.
POLL_TIMEOUT_S = 5.0
POLL_WORKERS = 16


def wait_healthy(urls: dict[str, str], timeout: float, pids: dict[str, int] | None = None,
                 logs: dict[str, Path] | None = None) -> None:
    """Wait until every node answers; fail early, naming the node, if its process exits.
    Errors: NodeDied; errors.MeshpayError naming the nodes still silent after `timeout` s."""
    pending = dict(urls)
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=min(POLL_WORKERS, max(1, len(urls)))) as pool:
        while pending:
            answers = pool.map(lambda url: is_healthy(url, timeout=POLL_TIMEOUT_S), pending.values())
            for name, healthy in list(zip(pending, answers)):
                if healthy:
                    del pending[name]
                elif pids and not process_alive(pids.get(name)):
                    hint = f" (see {logs[name]})" if logs and name in logs else ""
                    raise NodeDied(f"node {name} exited before serving{hint}")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise MeshpayError(f"nodes not serving after {timeout:.0f} s: {', '.join(sorted(pending))}; "
                                   "`meshpay-lab logs NODE` shows why")
            time.sleep(0.5)
