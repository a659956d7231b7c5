"""Start many FastPay node processes from one interpreter that imported the node code once.

Importing fastapi, uvicorn and cryptography costs about 13 s of CPU under QEMU TCG; paying it once
and forking a child per node (each child enters its node's network namespace, then runs
`meshpay.server.main`) turns minutes of start-up into seconds, and the children share the
imported pages copy-on-write, which keeps memory per node low.

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

    try:
        warm_api()
    except Exception as exc:  # noqa: BLE001 - only a warm-up: the nodes fill the caches themselves
        print(f"launcher: API warm-up failed: {exc!r}", file=sys.stderr, flush=True)


def warm_api() -> int:
    """Build a throwaway node app and answer one GET /health with it, in process; the status.

    A node fills per-process caches on its way to serving: the regexes of its routes, and on a
    route's first request FastAPI reads the endpoint's source lines (api.py through linecache,
    and the tokenizer's large regex). Filled here once, every fork inherits them instead of
    paying for them itself (about half a node's CPU from fork to its first /health answered).
    """
    import asyncio

    from meshpay.api import create_app
    from meshpay.config import parse_config
    from meshpay.crypto import KeyPair
    from meshpay.metrics import Metrics
    from meshpay.authority_service import AuthorityService
    from meshpay.store import Store

    seed = bytes(32)
    config = parse_config({
        "name": "warm-up", "role": "authority", "seed": seed.hex(), "db_path": ":memory:",
        "wire_host": "127.0.0.1", "wire_port": 1, "api_host": "127.0.0.1", "api_port": 1,
        "api_token": None, "clients": [], "genesis": {},
        "committee": [{"name": "warm-up", "public_key": KeyPair(seed).public_key.hex(), "weight": 1,
                       "host": "127.0.0.1", "port": 1}],
    }, "warm-up")
    store = Store(":memory:")
    try:
        metrics = Metrics()
        app = create_app(AuthorityService(config, store, metrics), config, metrics)
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": "/health", "raw_path": b"/health", "root_path": "",
                 "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 1)}
        asyncio.run(app(scope, receive, send))
        return next(m["status"] for m in sent if m["type"] == "http.response.start")
    finally:
        store.close()


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
            raise RuntimeError(f"the node launcher failed ({self._proc.returncode}): {err.strip()[-2000:]}")
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
