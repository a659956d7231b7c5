"""A local FastPay network on loopback (127.0.0.x): writes NODE_JSON files, starts real node
processes (`python -m meshpay.server`), stops and kills them. Used by the integration tests and
the benchmark; handy by hand too:

    python -m meshpay.localnet /tmp/net --authorities 4 --clients 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshpay.crypto import KeyPair


def free_port(host: str, count: int = 1) -> int:
    """A port p on `host` with p .. p+count-1 all free now (count > 1: an authority's shards)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if count == 1:
            return port
        if port + count - 1 > 65535:
            continue
        held = []
        try:
            for p in range(port + 1, port + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind((host, p))
            return port
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()


@dataclass
class LocalNode:
    name: str
    role: str
    seed: bytes
    host: str
    wire_port: int
    api_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # An authority of several shards is one LocalNode per shard (meshpay/shards.py): `auth1` is
    # shard 0, `auth1-s1` shard 1, ...; all share the seed, host and base wire port.
    shard: int = 0
    authority: str = ""

    @property
    def keypair(self) -> KeyPair:
        return KeyPair(self.seed)

    @property
    def config_path(self) -> Path:
        return self.directory / "node.json"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.api_port}"


class LocalNet:
    def __init__(
        self,
        directory: str | Path,
        authorities: int = 4,
        clients: int = 2,
        balance: int = 1000,
        extra_accounts: dict[str, int] | None = None,
        api_token: str | None = None,
        first_octet: int = 10,
        discovery: bool = False,
        transfer_deadline_s: float = 25.0,
        shards: int = 1,
    ) -> None:
        self.directory = Path(directory)
        # Shards per authority (meshpay/shards.py): one process each.
        self.shards = shards
        # True: clients get no authority addresses and find them by mDNS on loopback.
        self.discovery = discovery
        self.transfer_deadline_s = transfer_deadline_s
        self.api_token = api_token
        self.nodes: dict[str, LocalNode] = {}
        # Extra accounts are funded at genesis but have no node: tests sign for them directly.
        self.extra: dict[str, KeyPair] = {name: KeyPair.generate() for name in extra_accounts or {}}
        specs = [(f"auth{i + 1}", "authority") for i in range(authorities)] + [(f"client{i + 1}", "client") for i in range(clients)]
        for index, (name, role) in enumerate(specs):
            host = f"127.0.0.{first_octet + index}"
            count = shards if role == "authority" else 1
            wire_port = free_port(host, count)

            def api_port() -> int:  # never one of the shards' wire ports
                port = free_port(host)
                return port if not wire_port <= port < wire_port + count else api_port()

            node = LocalNode(name, role, os.urandom(32), host, wire_port, api_port(), self.directory / name,
                             authority=name if role == "authority" else "")
            self.nodes[name] = node
            for k in range(1, count):
                self.nodes[f"{name}-s{k}"] = LocalNode(f"{name}-s{k}", role, node.seed, host, wire_port, api_port(),
                                                       self.directory / f"{name}-s{k}", shard=k, authority=name)
        self.genesis = {n.keypair.public_key.hex(): balance for n in self.nodes.values() if n.role == "client"}
        self.genesis.update({kp.public_key.hex(): (extra_accounts or {})[name] for name, kp in self.extra.items()})
        self.write_configs()

    @property
    def authorities(self) -> list[LocalNode]:
        """One node per authority (its shard 0)."""
        return [n for n in self.nodes.values() if n.role == "authority" and n.shard == 0]

    def shards_of(self, authority: str) -> list[LocalNode]:
        """Every shard process of `authority`, shard 0 first."""
        return [n for n in self.nodes.values() if n.authority == authority]

    @property
    def clients(self) -> list[LocalNode]:
        return [n for n in self.nodes.values() if n.role == "client"]

    def node_config(self, node: LocalNode) -> dict[str, Any]:
        committee = [
            {"name": a.name, "public_key": a.keypair.public_key.hex(), "weight": 1}
            | ({} if self.discovery else {"host": a.host, "port": a.wire_port})
            | ({} if self.shards == 1 else {"shards": self.shards})
            for a in self.authorities
        ]
        return {
            "name": node.name,
            "role": node.role,
            "seed": node.seed.hex(),
            "db_path": str(node.directory / "state.db"),
            "wire_host": node.host,
            "wire_port": node.wire_port,
            "api_host": node.host,
            "api_port": node.api_port,
            "api_token": self.api_token,
            "committee": committee,
            "clients": [
                {"name": c.name, "public_key": c.keypair.public_key.hex(), "host": c.host, "port": c.wire_port}
                for c in self.clients
            ],
            "genesis": self.genesis,
            "discovery": "mdns" if self.discovery else "static",
            "transfer_deadline_s": self.transfer_deadline_s,
        } | ({"shard": node.shard} if node.shard else {})

    def write_configs(self) -> None:
        for node in self.nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(json.dumps(self.node_config(node), indent=2))

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        node = self.nodes[name]
        node.env = dict(env or {})
        log = open(node.directory / "node.log", "ab")
        node.process = subprocess.Popen(
            [sys.executable, "-m", "meshpay.server", "--config", str(node.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **node.env},
        )
        log.close()

    def start_all(self, timeout: float = 60.0) -> None:
        for name in self.nodes:
            self.start(name)
        self.wait_ready(list(self.nodes), timeout)

    def wait_ready(self, names: list[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            node = self.nodes[name]
            while True:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {node.process.returncode}; see {node.directory / 'node.log'}")
                try:
                    if self.request(name, "GET", "/health", timeout=1.0)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not healthy after {timeout}s; see {node.directory / 'node.log'}")
                time.sleep(0.05)

    def kill(self, name: str) -> None:
        """SIGKILL: the crash case, nothing flushed or closed by the node."""
        node = self.nodes[name]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def stop(self, name: str, timeout: float = 10.0) -> None:
        node = self.nodes[name]
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def stop_all(self) -> None:
        for name in self.nodes:
            self.stop(name)

    def request(self, name: str, method: str, path: str, body: Any = None, timeout: float = 30.0, token: str | None = None) -> tuple[int, Any]:
        """One REST call to a node: (status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.nodes[name].url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        token = token or self.api_token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in ctype else raw.decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local FastPay network on loopback until interrupted.")
    parser.add_argument("directory")
    parser.add_argument("--authorities", type=int, default=4)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--balance", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=1, help="shard processes per authority")
    args = parser.parse_args(argv)
    net = LocalNet(args.directory, args.authorities, args.clients, args.balance, shards=args.shards)
    net.start_all()
    for node in net.nodes.values():
        print(f"{node.name:10} {node.role:9} {node.url}  wire {node.host}:{node.wire_port}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        net.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
