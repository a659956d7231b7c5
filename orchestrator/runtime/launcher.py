"""Start many FastPay node processes from one interpreter that imported the node code once.

Importing fastapi, uvicorn and cryptography costs about 13 s of CPU under QEMU TCG; paying it once
and forking a child per node (each child enters its node's network namespace, then runs
`meshpay.server.main`) turns minutes of start-up into seconds, and the children share the
imported pages copy-on-write, which keeps memory per node low.

The node's code is reached through meshpay.server's entry points only: `warm_up` (before the
forks) and `main` (in each child); what a node builds is the node side's business.

Run as `python -m orchestrator.runtime.launcher` with a JSON list of
`{"name", "netns_path", "config", "log"}` on stdin; prints `{"pids": {name: pid}}` and exits,
leaving the nodes running in their own sessions.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.errors import MeshpayError

CLONE_NEWNET = 0x40000000


def preload() -> None:
    """Import everything a node imports on its way to serving."""
    # Imported lazily by FastAPI building the first app (pydantic.v1) and by uvicorn loading its
    # config (the protocol modules): here once, instead of after the fork in every node, where
    # each copy cost CPU and private memory.
    import pydantic.v1  # noqa: F401
    import uvicorn  # noqa: F401
    import uvicorn.lifespan.off  # noqa: F401
    import uvicorn.protocols.http.auto  # noqa: F401
    import uvicorn.protocols.http.h11_impl  # noqa: F401
    import uvicorn.protocols.websockets.auto  # noqa: F401

    import meshpay.api  # noqa: F401
    import meshpay.mdns  # noqa: F401  (zeroconf, for labs with `discovery: mdns`)
    import meshpay.metrics  # noqa: F401
    import meshpay.server  # noqa: F401
    import meshpay.authority_service  # noqa: F401
    import meshpay.client_service  # noqa: F401
    import meshpay.store  # noqa: F401
    import meshpay.transport  # noqa: F401

    from meshpay.server import warm_up

    try:
        # the node side builds its throwaway app itself: caches filled once, inherited by every fork
        warm_up()
    except Exception as exc:  # noqa: BLE001 - only a warm-up: the nodes fill the caches themselves
        print(f"launcher: API warm-up failed: {exc!r}", file=sys.stderr, flush=True)


def _enter_netns(path: str) -> None:
    # os.setns arrived in Python 3.12; libc's setns works everywhere.
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def spawn(netns_path: str, config: str, log: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()  # its own session: no terminal signals, killable as a group
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        _enter_netns(netns_path)
        from meshpay.server import main

        code = main(["--config", config])
    except BaseException as exc:  # the child must never return into the launcher's loop
        print(f"launcher: node failed to start: {exc!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(code or 0)


class Launcher:
    """The launcher as its own process (so its forks never inherit the caller's threads), started
    before the batch is known: it imports while the caller builds the mesh, and those imports are
    the biggest fixed cost of `up` under TCG (about a minute on a loaded host)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "orchestrator.runtime.launcher"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)

    def spawn(self, batch: list[dict], timeout: float = 300.0) -> dict[str, int]:
        out, err = self._proc.communicate(json.dumps(batch), timeout=timeout)
        if self._proc.returncode != 0:
            raise MeshpayError(f"the node launcher failed (status {self._proc.returncode}): {err.strip()[-2000:]}\n"
                               "the lab is partly up: fix what it says, then `meshpay-lab up` again")
        return json.loads(out)["pids"]

    def close(self) -> None:
        """Stop a launcher that was never given its batch (its caller failed first)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.communicate()


def spawn_nodes(batch: list[dict], timeout: float = 300.0) -> dict[str, int]:
    launcher = Launcher()
    try:
        return launcher.spawn(batch, timeout)
    finally:
        launcher.close()


def main() -> None:
    preload()  # before reading the batch: the caller sends it once the nodes' netns are ready
    batch = json.load(sys.stdin)
    pids = {}
    for item in batch:
        Path(item["log"]).parent.mkdir(parents=True, exist_ok=True)
        pids[item["name"]] = spawn(item["netns_path"], item["config"], item["log"])
    json.dump({"pids": pids}, sys.stdout)


if __name__ == "__main__":
    main()
