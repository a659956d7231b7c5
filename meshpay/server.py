"""Process entry point: `python -m meshpay.server --config NODE_JSON` (console script meshpay-node).

One asyncio loop serves the binary wire (protocol traffic) and the REST API (uvicorn).
Environment: MESHPAY_LOG_LEVEL (default WARNING). Fault injection for tests only:
MESHPAY_BYZANTINE=conflict|garbage|refuse|delay makes an authority misbehave (it still really
signs what it signs), MESHPAY_BYZANTINE_DELAY sets the delay in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from meshpay.config import ConfigError, NodeConfig, load_config
from meshpay.store import StoreError

if TYPE_CHECKING:
    from meshpay.authority_service import AuthorityService
    from meshpay.client_service import ClientService
    from meshpay.mdns import Announcer, Browser
    from meshpay.metrics import Metrics
    from meshpay.store import Store
    from meshpay.transport import PeerPool

log = logging.getLogger("meshpay.server")


class StartupError(RuntimeError):
    """The node cannot start here (an address is taken or missing)."""


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


# How often the HTTP server refreshes its Date header (and checks a stop flag set other than
# by a signal); uvicorn's own loop does this every second but wakes ten times a second.
TICK_S = 1.0
# How long an idle REST connection stays open: longer than any client of ours keeps one in its
# pool (the VM agent's proxy: 2 s), so the client always closes first and never sends a request
# into a connection the server is closing (uvicorn's default is 5 s, httpx's pool expiry too).
KEEP_ALIVE_S = 30


async def tick_until(on_tick: Callable[[int], Awaitable[bool]], wake: asyncio.Event, interval: float) -> None:
    """Call `on_tick(0)` until it returns True: every `interval` seconds, and at once whenever
    `wake` is set. One timer per tick, so an idle loop wakes once per interval."""
    loop = asyncio.get_running_loop()
    while not await on_tick(0):
        timer = loop.call_later(interval, wake.set)
        try:
            await wake.wait()
        finally:
            timer.cancel()
        wake.clear()


def node_service(config: NodeConfig, store: Store, metrics: Metrics, pool: PeerPool | None = None,
                 browser: Browser | None = None,
                 byzantine: str | None = None) -> tuple[AuthorityService | ClientService, Callable[..., Any]]:
    """The node's service for its role, and the handler its wire server calls: the service's own,
    or with `byzantine` (MESHPAY_BYZANTINE's mode, authorities only) the fault injection wrapped
    around it. Errors: ConfigError for a byzantine mode it does not know, or one on a client.
    `serve` builds a node with it, and `warm_up` the launcher's throwaway one."""
    from meshpay.authority_service import AuthorityService
    from meshpay.client_service import ClientService
    from meshpay.faults import FaultInjection

    if config.role == "authority":
        authority = AuthorityService(config, store, metrics, pool)
        if not byzantine:
            return authority, authority.handle
        try:
            delay = float(os.environ.get("MESHPAY_BYZANTINE_DELAY", "3"))
            return authority, FaultInjection(authority, byzantine, delay).handle
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if byzantine:
        raise ConfigError("MESHPAY_BYZANTINE is for authorities only")
    assert pool is not None, "a client talks to its committee through a pool"
    client = ClientService(config, store, metrics, pool, browser)
    return client, client.handle


def warm_up() -> int:
    """Build a throwaway authority's app as `serve` builds a node's (an in-memory store, no wire
    server, no peers) and answer one GET /health with it, in process; the HTTP status.

    A node fills per-process caches on its way to serving: the regexes of its routes, and on a
    route's first request FastAPI reads the endpoint's source lines (api.py through linecache,
    and the tokenizer's large regex). The controller's launcher (orchestrator/runtime/launcher.py)
    calls this once before it forks the nodes, so every fork inherits them instead of paying for
    them itself (about half a node's CPU from fork to its first /health answered)."""
    from meshpay.api import create_app
    from meshpay.config import parse_config
    from meshpay.crypto import KeyPair
    from meshpay.metrics import Metrics
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
        service, _ = node_service(config, store, metrics)
        app = create_app(service, config, metrics)
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


async def serve(config: NodeConfig) -> None:
    # Heavy imports after the config is known to be good: a bad config fails in milliseconds.
    import uvicorn

    from meshpay.api import create_app
    from meshpay.metrics import Metrics
    from meshpay.ratelog import RefusalLog
    from meshpay.authority_service import AuthorityService
    from meshpay.store import Store
    from meshpay.transport import PeerPool, WireServer

    announcer: Announcer | None = None
    browser: Browser | None = None
    if config.discovery == "mdns":
        from meshpay.mdns import Announcer, Browser

        if config.role == "authority":
            # One announcement per authority, by shard 0: its base wire port; clients add the
            # shard (shards.py), and the others would only collide with the same service name.
            announcer = Announcer(config) if config.shard == 0 else None
        else:
            browser = Browser(config)
    # Authorities commit in groups: replies wait for the commit (transport.py WireServer).
    store = Store(config.db_path, group_commit=config.role == "authority")
    metrics = Metrics()
    pool = PeerPool()
    byzantine = os.environ.get("MESHPAY_BYZANTINE") or None
    try:
        service, handler = node_service(config, store, metrics, pool, browser, byzantine)
    except ConfigError:
        store.close()
        raise
    if byzantine:
        log.warning("event=fault_injection mode=%s", byzantine)
    wire_server = WireServer(handler, config.wire_host, config.shard_wire_port,
                             refusals=RefusalLog(logging.getLogger("meshpay.transport"), metrics),
                             durable=store.flush if store.group_commit else None)
    try:
        await wire_server.start()
    except OSError as exc:
        store.close()
        raise StartupError(f"cannot serve the wire on {config.wire_host}:{config.shard_wire_port}: {exc.strerror}") from None
    if isinstance(service, AuthorityService):
        service.start()  # pulls what it missed from its peers while it serves
    # After the wire server: an announced authority must already be reachable.
    for discovery in (announcer, browser):
        if discovery is not None:
            await discovery.start()
    app = create_app(service, config, metrics, byzantine)
    closed = False

    async def close_all() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        for discovery in (announcer, browser):
            if discovery is not None:
                await discovery.close()
        await wire_server.close()
        await service.close()
        await pool.close()
        store.close()
        log.info("event=stopped name=%s", config.name)

    class Server(uvicorn.Server):
        # uvicorn's main loop wakes every 0.1 s to see whether a signal asked it to stop and
        # refreshes the Date header every tenth wake. Idle, those wakes were most of a node's
        # CPU: 10 per second in each of 100 nodes on 2 emulated vCPUs. Here the loop wakes
        # once per Date refresh, and a signal wakes it at once.
        _wake: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        async def main_loop(self) -> None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            # on_tick(0) refreshes the Date header and says whether should_exit is set.
            await tick_until(self.on_tick, self._wake, TICK_S)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if self._loop is not None and self._wake is not None:
                self._loop.call_soon_threadsafe(self._wake.set)

        # uvicorn re-raises SIGTERM once it has shut down, which ends the process before any
        # `finally` below runs: the goodbye on the mesh and closing the database happen here.
        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            await close_all()

    server = Server(
        uvicorn.Config(app, host=config.api_host, port=config.api_port, log_level="warning", access_log=False, lifespan="off",
                       timeout_keep_alive=KEEP_ALIVE_S)
    )
    log.info("event=started name=%s role=%s shard=%d/%d wire=%s:%d api=%s:%d", config.name, config.role, config.shard,
             config.shards, config.wire_host, config.shard_wire_port, config.api_host, config.api_port)
    try:
        await server.serve()
    finally:  # the paths that do not go through shutdown(): a failed start, a cancelled loop
        await close_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshpay-node", description="Run one FastPay node (authority or client).")
    parser.add_argument("--config", required=True, help="path to NODE_JSON")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    logging.basicConfig(level=os.environ.get("MESHPAY_LOG_LEVEL", "WARNING").upper(), handlers=[handler])
    started = time.monotonic()
    try:
        config = load_config(args.config)
        log.info("event=config_loaded path=%s seconds=%.3f", args.config, time.monotonic() - started)
        asyncio.run(serve(config))
    except (ConfigError, StoreError, StartupError) as exc:
        print(f"meshpay-node: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
