"""The default runtime: a node is a named network namespace on this kernel.

Processes start through `ip netns exec`, which also remounts /sys for the namespace (a plain
setns leaves sysfs showing the root namespace). Stopping finds every process whose network
namespace is the node's, by inode, so a process that forked or lost its parent still goes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import netns as pyroute2_netns

from orchestrator.errors import MeshpayError
from orchestrator.kernel.netlink import create_netns
from orchestrator.kernel.netns import NETNS_DIR, pids_in_netns
from orchestrator.lab.plan import netns_prefix
from orchestrator.runtime import procs
from orchestrator.runtime.base import NodeRef, NodeService
from orchestrator.runtime.launcher import Launcher, spawn_nodes

log = logging.getLogger(__name__)


class NetnsRuntime:
    node_kind = "netns"

    def __init__(self, stop_timeout: float = 5.0) -> None:
        self.stop_timeout = stop_timeout
        self._launcher: Launcher | None = None

    def prepare_services(self) -> None:
        """Start the preloading launcher now: its imports (about a minute under TCG) overlap
        whatever the caller does before start_services."""
        if self._launcher is None:
            self._launcher = Launcher()

    def start_services(self, services: list[NodeService]) -> dict[str, int]:
        """Fork every FastPay process from one interpreter that imported the node code once
        (runtime/launcher.py), each in its node's netns; service name -> pid."""
        if not services:
            return {}
        batch = [{"name": s.name, "netns_path": self.netns_path(s.node), "config": str(s.config),
                  "log": str(s.log)} for s in services]
        launcher, self._launcher = self._launcher, None
        if launcher is None:
            return spawn_nodes(batch)
        try:
            return launcher.spawn(batch)
        finally:
            launcher.close()

    def close(self) -> None:
        """Stop a launcher that was prepared but never given its nodes (the caller failed first)."""
        if self._launcher is not None:
            self._launcher.close()
            self._launcher = None

    def netns_path(self, node: NodeRef) -> str:
        return f"{NETNS_DIR}/{node.netns}"

    def create(self, node: NodeRef) -> None:
        if os.path.exists(self.netns_path(node)):
            return  # `up` again: the name is lab-scoped, so it is this node's namespace
        create_netns(node.netns)
        log.info("netns created", extra={"netns": node.netns})

    def start(
        self, node: NodeRef, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> int:
        if not os.path.exists(self.netns_path(node)):
            raise MeshpayError(f"netns {node.netns} does not exist: create the node first "
                               "(`meshpay-lab up` again makes what is missing)")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            # a new session: the node outlives the controller and gets no terminal signals
            proc = subprocess.Popen(
                ["ip", "netns", "exec", node.netns, *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **env} if env else None, start_new_session=True,
            )
        # `ip netns exec` enters the netns just before exec; until then stop() could not find
        # the process by its namespace, so return only once it is inside (or already gone)
        deadline = time.monotonic() + self.stop_timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if proc.pid in pids_in_netns(self.netns_path(node)):
                break
            time.sleep(0.01)
        log.info("process started", extra={"netns": node.netns, "pid": proc.pid, "argv": argv})
        return proc.pid

    def stop(self, node: NodeRef) -> None:
        pids = pids_in_netns(self.netns_path(node))
        for pid in pids:
            procs.send(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = [pid for pid in pids if procs.alive(pid)]
        for pid in pids:
            log.warning("process ignored SIGTERM, killing", extra={"pid": pid, "netns": node.netns})
            procs.send(pid, signal.SIGKILL)
        for pid in pids:
            _wait_gone(pid, deadline=time.monotonic() + 2.0)

    def delete(self, node: NodeRef) -> None:
        if not os.path.exists(self.netns_path(node)):
            return
        self.stop(node)
        pyroute2_netns.remove(node.netns)
        log.info("netns removed", extra={"netns": node.netns})

    def list(self, lab: str) -> list[str]:
        prefix = netns_prefix(lab)
        try:
            names = os.listdir(NETNS_DIR)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.startswith(prefix))


def _wait_gone(pid: int, deadline: float) -> None:
    while procs.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)

