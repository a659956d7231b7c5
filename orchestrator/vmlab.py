"""A lab's whole life on the VM route, as the host sees it: boot the VM, have its agent build the
lab, make REST URLs reachable from the host; and, for `down`, the reverse, leaving nothing behind."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from orchestrator import labfiles
from orchestrator.errors import MeshpayError
from orchestrator.lab import labdir, registry
from orchestrator.vm.client import agent_call
from orchestrator.vm.machine import LabVM, VMRecord, agent_argv, vm_alive

BOOT_TIMEOUT_S = 300.0
FULL_TEARDOWN_MAX_NODES = 20


def up(lab_dir: Path, topology: Path, vm: bool, on_step: Callable[[str], None] | None = None,
       runtime: str | None = None) -> dict:
    """Bring the lab up: in its VM (booted if need be) when `vm`, else here (verbs/up.py)."""
    if vm:
        return up_in_vm(lab_dir, topology, on_step=on_step, runtime=runtime)
    from orchestrator.verbs import up as up_verb

    return up_verb.run(lab_dir, str(topology), on_step=on_step, runtime=runtime)


def up_in_vm(lab_dir: Path, topology: Path, on_step: Callable[[str], None] | None = None,
             runtime: str | None = None) -> dict:
    step = on_step or (lambda msg: None)
    record = VMRecord.load(lab_dir)
    vm = LabVM()
    if record is None or not vm_alive(record):
        step("booting the lab's VM (virtme-ng)")
        record = vm.boot(lab_dir, agent_argv(lab_dir))
        try:
            vm.wait_ready(record, timeout=BOOT_TIMEOUT_S)
        except Exception:
            vm.stop(record, timeout=10)  # a VM that never answered is no use to anyone
            raise
    with _follow_progress(lab_dir / labfiles.PROGRESS, step):
        args = {"topology": str(topology)} | ({"runtime": runtime} if runtime else {})
        result = agent_call(record.port, "up", args)
    # Inside the VM a node's REST URL is its management address; from the host, the agent's
    # forwarded port reaches it through the agent's proxy.
    info = labdir.read_lab_json(lab_dir)
    for name, node in info["nodes"].items():
        node["rest_url"] = f"{record.url}/nodes/{name}"
        result["nodes"][name]["rest_url"] = node["rest_url"]
    info["vm"] = {"pid": record.pid, "port": record.port, "log": record.log_path, "accel": record.accel}
    labdir.write_lab_json(lab_dir, info)
    return result


def down_lab(lab_dir: Path, keep_files: bool = False) -> dict:
    """Take the lab down wherever it runs; then remove its directory unless asked to keep it."""
    from orchestrator.verbs import down as down_verb

    record = VMRecord.load(lab_dir)
    if record is None:
        removed = down_verb.run(lab_dir)
    else:
        # Whatever the VM holds on its kernel dies with it, so a big lab's agent only lists it and
        # clears the state files (a node-by-node teardown of 50 nodes took over 7 minutes under
        # TCG). A small lab is still torn down node by node first: that is the teardown a host
        # with hwsim relies on, and doing it here checks for real that it leaves nothing.
        # A failed teardown still ends with the VM stopped; the failure is reported, not hidden.
        removed = {"lab": lab_dir.name, "nodes": [], "radios": [], "links": [], "leftover": []}
        if vm_alive(record):
            quick = _node_count(lab_dir) > FULL_TEARDOWN_MAX_NODES
            try:
                removed = agent_call(record.port, "down", {"vm_stopping": True} if quick else {})
            except MeshpayError as exc:
                removed["error"] = f"teardown inside the VM failed: {exc}"
        LabVM().stop(record)
        removed["vm"] = True
        down_verb.remove_state_files(lab_dir)  # the teardown inside may have failed before it did
        registry.release(removed.get("lab") or lab_dir.name, lab_dir)  # the host's record of the VM lab
    if removed["leftover"]:
        return removed  # keep the lab (and its directory) for `down` to try again
    if not keep_files:
        shutil.rmtree(lab_dir, ignore_errors=True)
    return removed


def _node_count(lab_dir: Path) -> int:
    """How many nodes the lab has: lab.json's (written once `up` is done) or state.json's node
    seeds (written before `up` makes anything), whichever knows more; 0 (the careful teardown)
    when neither does. A 100-node `up` that failed half-way has no lab.json, and tearing its 75
    nodes down one by one under TCG had not finished after 14 minutes."""
    counts = [0]
    try:
        counts.append(len(labdir.read_lab_json(lab_dir).get("nodes", {})))
    except (OSError, ValueError):
        pass
    try:
        counts.append(len(labdir.read_state(lab_dir).get("seeds", {})))
    except (OSError, ValueError, MeshpayError):  # LabNotUp: no state.json either
        pass
    return max(counts)


class _follow_progress:
    """Relay the last line of progress.log (written by `up` inside the VM) to the spinner."""

    def __init__(self, path: Path, step: Callable[[str], None]) -> None:
        self.path, self.step, self.done = path, step, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=2)

    def _loop(self) -> None:
        last = ""
        while not self.done.wait(1.0):
            try:
                lines = self.path.read_text().splitlines()
            except OSError:
                continue
            if lines and lines[-1] != last:
                last = lines[-1]
                self.step(last.split(" ", 1)[-1] + " (in the VM)")
