"""The agent: the one process the lab VM runs (`python -m orchestrator.vm.agent --lab-dir DIR`).

It runs the lab's verbs inside the VM (`POST /verbs/{verb}`), proxies REST calls to the nodes
over the management plane (`/nodes/{name}/{path}`), and powers the VM off on `POST /shutdown`
(virtme-ng ends the VM when its command exits). It starts under TCG, where every import costs
seconds: verbs are imported on first use.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from orchestrator import errors, labfiles
from orchestrator.lab import labdir
from orchestrator.vm import machine

log = logging.getLogger("orchestrator.vm.agent")

# the address QEMU's user-mode network hands the guest, which the host's port forward targets
GUEST_ADDR = f"{machine.GUEST_ADDR}/{machine.GUEST_PREFIX}"
VERB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Verb errors a caller can fix by changing its request; anything else is the lab's fault (500).
CALLER_ERRORS = (ValueError, LookupError, FileNotFoundError, FileExistsError, PermissionError)
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    }
)  # fmt: skip
PROXY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _error(status: int, message: str, kind: str | None = None,
           exit_code: int = errors.FAILED) -> JSONResponse:
    """The JSON of a failed verb: its message, the exception's type, and the exit status the CLI
    gives it (errors.py), so the host exits as it would running the verb itself."""
    body: dict[str, Any] = {"error": message, "exit_code": exit_code}
    if kind:
        body["type"] = kind
    return JSONResponse(body, status_code=status)


def _load_verb(verb: str) -> Callable[..., dict] | None:
    module_name = f"orchestrator.verbs.{verb}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, "orchestrator.verbs"):
            return None
        raise
    return getattr(module, "run", None)


def run_verb(lab_dir: Path, verb: str, args: dict[str, Any]) -> JSONResponse:
    """Run `orchestrator.verbs.<verb>.run(lab_dir, **args)` and map its outcome to HTTP."""
    run = _load_verb(verb) if VERB_NAME.match(verb) else None
    if run is None:
        return _error(404, f"unknown verb {verb!r}: no orchestrator/verbs/{verb}.py with run()",
                      exit_code=errors.USAGE)
    try:
        inspect.signature(run).bind(lab_dir, **args)
    except TypeError as exc:
        return _error(400, f"bad arguments for verb {verb!r}: {exc}", "TypeError", errors.USAGE)
    log.info("verb start name=%s args=%s", verb, sorted(args))
    try:
        result = run(lab_dir, **args)
    except errors.MeshpayError as exc:  # says what to do next already, with its own exit status
        log.info("verb failed name=%s error=%r", verb, exc)
        # its kind and record too: the host rebuilds the same error (errors.from_wire)
        return JSONResponse(errors.to_wire(exc), status_code=400 if exc.exit_code == errors.USAGE else 500)
    except CALLER_ERRORS as exc:
        log.info("verb failed name=%s error=%r", verb, exc)
        return _error(400, str(exc), type(exc).__name__, errors.describe(exc)[1])
    except Exception as exc:  # the agent must outlive a broken verb and report it
        log.exception("verb crashed name=%s", verb)
        return _error(500, f"{type(exc).__name__}: {exc}", type(exc).__name__, errors.describe(exc)[1])
    log.info("verb done name=%s", verb)
    return JSONResponse(json.loads(json.dumps(result, default=str)))


def node_api_url(lab_dir: Path, name: str) -> str:
    """The node's REST URL inside the VM, from lab.json. errors.NotFound (exit 2) for a node the
    lab does not have, naming those it has; labdir.LabNotUp (exit 1) when there is no lab.json."""
    try:
        return labdir.lab_node(lab_dir, name)["api_url"]
    except FileNotFoundError:
        raise labdir.LabNotUp(f"no {labfiles.LAB} in {lab_dir}: the lab is not up "
                              "(start it with `meshpay-lab up`)") from None


def create_app(
    lab_dir: Path,
    on_exit: Callable[[], None] = lambda: None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The agent's HTTP app; `on_exit` stops the server, `transport` lets tests fake the nodes."""
    # nodes answer slowly under TCG; a transfer waits on a quorum over the mesh
    # Kept-alive connections expire here well before the node's server closes them (uvicorn:
    # meshpay.server.KEEP_ALIVE_S): reusing one the server is closing at that instant fails the request
    # with an empty ReadError, which a bench saw as a lost transfer.
    client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(120, connect=10),
                               limits=httpx.Limits(keepalive_expiry=2.0))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="meshpay-lab agent", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/health")
    def health() -> dict:
        return {"ok": True, "lab_dir": str(lab_dir)}

    @app.post("/verbs/{verb}")
    async def verb(verb: str, request: Request) -> Response:
        raw = await request.body()
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return _error(400, f"request body is not JSON: {exc}")
        if not isinstance(args, dict):
            return _error(400, "request body must be a JSON object of the verb's keyword args")
        # verbs block (netlink, subprocesses): keep them off the event loop
        return await run_in_threadpool(run_verb, lab_dir, verb, args)

    @app.api_route("/nodes/{name}/{path:path}", methods=PROXY_METHODS)
    async def proxy(name: str, path: str, request: Request) -> Response:
        try:
            base = node_api_url(lab_dir, name)
        except errors.MeshpayError as exc:  # no such node, or no lab: 404 either way, with its kind
            # and exit status, so a host that reads the body exits as the verb itself would
            return JSONResponse(errors.to_wire(exc), status_code=404)
        url = f"{base.rstrip('/')}/{path}"
        if request.url.query:
            url += f"?{request.url.query}"
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        upstream_request = client.build_request(
            request.method, url, headers=headers, content=await request.body()
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.TimeoutException as exc:
            return _error(504, f"node {name!r} at {base} timed out: {exc!r}")
        except httpx.HTTPError as exc:
            return _error(502, f"node {name!r} at {base} did not answer: {exc!r}")
        try:
            # raw bytes: the body goes back exactly as the node encoded it
            body = b"".join([chunk async for chunk in upstream.aiter_raw()])
        finally:
            await upstream.aclose()
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(body, status_code=upstream.status_code, headers=out_headers)

    @app.post("/shutdown")
    def shutdown() -> Response:
        down: Any = None
        if (lab_dir / labfiles.STATE).exists():
            if _load_verb("down") is None:
                log.warning("shutdown: no down verb; leaving the lab as it is")
            else:
                response = run_verb(lab_dir, "down", {})
                down = json.loads(response.body)
        log.info("shutdown requested")
        # answer first, then stop: the caller waits for the VM to power off, not for a reply
        return JSONResponse({"ok": True, "down": down}, background=BackgroundTask(on_exit))

    return app


# ---------------------------------------------------------------- VM bring-up


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _virtio_nics() -> list[str]:
    nics = []
    for dev in sorted(Path("/sys/class/net").iterdir()):
        driver = dev / "device" / "driver"
        if driver.exists() and driver.resolve().name == "virtio_net":
            nics.append(dev.name)
    return nics


def bring_up_forward_nic() -> str | None:
    """Give the forwarding NIC the address QEMU's hostfwd targets; returns its name.

    vng's own `--network user` would run DHCP, but the VM gets only our NIC (see vm.forward_opts),
    so it comes up without an address: take the first virtio NIC that has no IPv4 address.
    """
    for nic in _virtio_nics():
        if _run(["ip", "-4", "-o", "addr", "show", "dev", nic]).stdout.strip():
            continue
        for argv in (["ip", "link", "set", nic, "up"], ["ip", "addr", "add", GUEST_ADDR, "dev", nic]):
            done = _run(argv)
            if done.returncode != 0:
                log.error("nic setup failed cmd=%r error=%s", argv, done.stderr.strip())
                return None
        log.info("nic up name=%s addr=%s", nic, GUEST_ADDR)
        return nic
    log.warning("no virtio NIC without an address; the host forward may not reach the agent")
    return None


def load_hwsim() -> bool:
    """Load mac80211_hwsim with no radios: the lab creates its own over generic netlink."""
    done = _run(["modprobe", "mac80211_hwsim", "radios=0"])
    if done.returncode != 0:
        log.error("modprobe mac80211_hwsim failed: %s", done.stderr.strip())
        return False
    log.info("mac80211_hwsim loaded")
    return True


def _uptime() -> float:
    # guest clock since kernel start: splits boot time from the agent's own start-up in vm.log
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.vm.agent", description=__doc__)
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--no-setup", action="store_true", help="skip NIC and hwsim setup")
    args = parser.parse_args(argv)
    from orchestrator import logfmt

    logfmt.setup("INFO", prefix="agent ")  # the verbs' fields (radio=, netns=, ...) reach vm.log
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied request is noise
    log.info("start uptime=%.1f", _uptime())

    if not args.no_setup:
        bring_up_forward_nic()
        load_hwsim()

    import uvicorn

    server: uvicorn.Server | None = None

    def stop_server() -> None:
        assert server is not None
        server.should_exit = True

    app = create_app(args.lab_dir.resolve(), on_exit=stop_server)
    # Idle connections from the host's CLI and scripts stay open longer than httpx keeps them
    # pooled (5 s): the client closes first, and never reuses a connection as it is closed here.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    log.info(
        "listening on %s:%d lab_dir=%s uptime=%.1f", args.host, args.port, args.lab_dir, _uptime()
    )
    server.run()
    log.info("agent exit")


if __name__ == "__main__":
    main()
