"""Is a node serving? Polls its REST `/health` over the management plane."""

from __future__ import annotations

import time
from pathlib import Path

import httpx


class NodeDied(RuntimeError):
    pass


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


def wait_healthy(urls: dict[str, str], timeout: float, pids: dict[str, int] | None = None,
                 logs: dict[str, Path] | None = None) -> None:
    """Wait until every node answers; fail early, naming the node, if its process exits."""
    pending = dict(urls)
    deadline = time.monotonic() + timeout
    while pending:
        for name, url in list(pending.items()):
            if is_healthy(url, timeout=1.0):
                del pending[name]
            elif pids and not process_alive(pids.get(name)):
                hint = f" (see {logs[name]})" if logs and name in logs else ""
                raise NodeDied(f"node {name} exited before serving{hint}")
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not serving after {timeout:.0f} s: {', '.join(sorted(pending))}")
        time.sleep(0.5)
