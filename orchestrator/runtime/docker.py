"""The docker runtime: a node is a container (`--network none`) whose namespace the lab wires.

The container starts with a waiting command; the controller links its network namespace under
the lab's name (/run/netns/mpl-<lab>-<node>), moves the radio in, joins the mesh, and only then
`docker exec`s the node's service, so radio, mesh and management code work unchanged.

The name is a symlink to /proc/<pid>/ns/net, not a bind mount like `ip netns attach`: a bind
would keep a restarted container's old namespace alive, and the radio in it with it, out of
reach; with a link, the old namespace dies with the container, its phy returns to the root
namespace, and `up` (which re-creates what is missing) moves it into the new one. A link is
trusted only while it points at the container's current init pid.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from docker.errors import NotFound

from orchestrator import labfiles
from orchestrator.errors import MeshpayError
from orchestrator.kernel.netns import NETNS_DIR, pids_in_netns
from orchestrator.lab.plan import netns_prefix
from orchestrator.runtime import engine, procs
from orchestrator.runtime.base import NodeRef, NodeService

log = logging.getLogger(__name__)

LABEL_LAB = "meshpay-lab.lab"
LABEL_NODE = "meshpay-lab.node"
START_TIMEOUT_S = 60.0


def container_name(node: NodeRef) -> str:
    return f"meshpay-{node.lab}-{node.name}"


@dataclass
class DockerRuntime:
    node_kind: ClassVar[str] = "container"
    lab: str
    image: str = engine.NODE_IMAGE
    # Each container sees its node's directory (config, database, log) at the same path.
    lab_dir: Path | None = None
    stop_timeout: float = 5.0
    _client: object = None  # a docker.DockerClient, made on first use (it may start dockerd)

    @property
    def client(self):
        if self._client is None:
            self._client = engine.client()
        return self._client

    def netns_path(self, node: NodeRef) -> str:
        return f"{NETNS_DIR}/{node.netns}"

    def create(self, node: NodeRef) -> None:
        """Make sure the node's container runs and its netns name points at it (creates,
        starts, or re-links after a restart; a no-op when all is in place)."""
        container = self._container(node)
        if container is None:
            container = self._run(node)
        elif container.status != "running":
            container.start()
            container.reload()
        self._link(node, _init_pid(container))

    def _run(self, node: NodeRef):
        engine.ensure_image(self.client, self.image)
        volumes = {}
        if self.lab_dir is not None:
            node_dir = Path(self.lab_dir).resolve() / labfiles.NODES_DIR / node.name
            node_dir.mkdir(parents=True, exist_ok=True)
            volumes[str(node_dir)] = {"bind": str(node_dir), "mode": "rw"}
        security = ["apparmor=unconfined"] if engine.needs_unconfined(self.client) else []
        container = self.client.containers.run(
            self.image, name=container_name(node), detach=True, init=True,
            labels={LABEL_LAB: node.lab, LABEL_NODE: node.name},
            network_mode="none", cap_add=["NET_ADMIN"], security_opt=security,
            volumes=volumes, hostname=node.name,
        )
        container.reload()
        log.info("container started", extra={"container": container.name})
        return container

    def _link(self, node: NodeRef, pid: int) -> None:
        os.makedirs(NETNS_DIR, exist_ok=True)
        path = self.netns_path(node)
        target = f"/proc/{pid}/ns/net"
        if os.path.islink(path) and os.readlink(path) == target:
            return
        if os.path.lexists(path):
            os.unlink(path)
        tmp = f"{path}.tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, path)  # never a moment without the name for a concurrent reader
        log.info("netns linked", extra={"netns": node.netns, "pid": pid})

    def prepare_services(self) -> None:
        """Nothing to do ahead: the image holds the node code, each service is a `docker exec`."""

    def start_services(self, services: list[NodeService]) -> dict[str, int]:
        """`docker exec` each FastPay process in its node's container; service name -> pid."""
        return {s.name: self.start(s.node, ["meshpay-node", "--config", str(s.config)], s.log)
                for s in services}

    def close(self) -> None:
        """Nothing prepared to release."""

    def start(
        self, node: NodeRef, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> int:
        container = self._container(node)
        if container is None or container.status != "running":
            raise MeshpayError(f"container {container_name(node)} is not running: run `meshpay-lab up` again "
                               "(it starts what is missing)")
        shell = f"exec {shlex.join(argv)} >>{shlex.quote(str(log_path))} 2>&1"
        api = self.client.api
        exec_id = api.exec_create(container.id, ["sh", "-c", shell], environment=env or {})["Id"]
        api.exec_start(exec_id, detach=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            info = api.exec_inspect(exec_id)
            if info.get("Pid"):
                log.info("process started", extra={"container": container.name, "pid": info["Pid"]})
                return int(info["Pid"])
            if not info.get("Running") and info.get("ExitCode") is not None:
                raise MeshpayError(f"{argv[0]} exited at once in {container.name} (status {info['ExitCode']}): "
                                   f"its log {log_path} says why")
            if time.monotonic() > deadline:
                raise MeshpayError(f"docker exec in {container.name} did not start within {START_TIMEOUT_S:.0f} s: "
                                   f"is the engine overloaded? `docker ps`, then `meshpay-lab up` again")
            time.sleep(0.1)

    def stop(self, node: NodeRef) -> None:
        """Stop the node's service, keeping the container: its namespace, and the radio in it,
        stay where `down` looks for them."""
        container = self._container(node)
        init = _init_pid(container) if container is not None and container.status == "running" else 0
        inside = pids_in_netns(self.netns_path(node))
        # the container's own process tree (docker-init and its waiting command) must live on:
        # if it ended, the container would stop and take the namespace, and the radio, with it
        keep = _tree(init, inside)
        pids = [p for p in inside if p not in keep]
        for pid in pids:
            procs.send(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
        for pid in pids:
            procs.send(pid, signal.SIGKILL)

    def delete(self, node: NodeRef) -> None:
        container = self._container(node)
        if container is not None:
            container.remove(force=True)
            log.info("container removed", extra={"container": container.name})
        if os.path.lexists(self.netns_path(node)):
            os.unlink(self.netns_path(node))

    def list(self, lab: str) -> list[str]:
        """Every node this lab has a container or a netns name for, whatever its state."""
        prefix = netns_prefix(lab)
        found = {f"{prefix}{c.labels[LABEL_NODE]}" for c in self._containers(lab)}
        try:
            found |= {n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)
                      and os.path.islink(f"{NETNS_DIR}/{n}")}
        except FileNotFoundError:
            pass
        return sorted(found)

    def _containers(self, lab: str) -> list:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL_LAB}={lab}"})

    def _container(self, node: NodeRef):
        try:
            container = self.client.containers.get(container_name(node))
        except NotFound:
            return None
        if container.labels.get(LABEL_LAB) != node.lab:
            raise MeshpayError(f"container {container.name} exists but is not lab {node.lab}'s: "
                               f"remove it (`docker rm -f {container.name}`) or rename the lab")
        return container


def _init_pid(container) -> int:
    return int(container.attrs["State"]["Pid"])


def _tree(root: int, pids: list[int]) -> set[int]:
    """`root` and its descendants among `pids`."""
    tree = {root} if root else set()
    grew = True
    while grew:
        grew = False
        for pid in pids:
            if pid not in tree and _parent(pid) in tree:
                tree.add(pid)
                grew = True
    return tree


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0
