"""Drive `meshpay-lab` as a user would, against a lab of its own (in the VM where this kernel lacks hwsim)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.lab.plan import make_plan
from orchestrator.lab.registry import Identity
from orchestrator.lab.topology import load_topology

REPO = Path(__file__).parents[2]
CLI = [sys.executable, "-m", "orchestrator.cli"]


class Lab:
    def __init__(self, root: Path, topology: str) -> None:
        self.root = root
        self.topology = REPO / "topologies" / topology
        self.plan = make_plan(load_topology(self.topology))
        self.env = {**os.environ, "MESHPAY_LAB_ROOT": str(root)}

    def cli(self, *args: str, timeout: float = 1200, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*CLI, *args], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"meshpay-lab {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}{self.vm_log_tail()}")
        return done

    def vm_log_tail(self, lines: int = 60) -> str:
        """The end of the lab VM's console log: a CI failure in the VM is undiagnosable without it."""
        log = self.lab_dir / "vm.log"
        if not log.exists():
            return ""
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return "\n--- vm.log (last lines) ---\n" + "\n".join(tail)

    def json(self, *args: str) -> dict:
        return json.loads(self.cli(*args, "--format", "json").stdout)

    def status(self, ready: bool | None = True) -> dict:
        """`status --format json`; its exit status is 0 only when every node serves and the medium
        runs (docs/cli.md): `ready` says which to expect (None: either)."""
        done = self.cli("status", "--format", "json", check=False)
        if ready is not None:
            assert done.returncode == (0 if ready else 1), (done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def counter(self, node: str, name: str) -> int:
        done = self.cli("exec", node, "--", "cat", f"/sys/class/net/mesh0/statistics/{name}")
        return int(done.stdout.strip())

    def adopt_identity(self) -> None:
        """Plan with the identity the registry gave the lab at `up` (its MACs, radio names and
        management addresses derive from it), as recorded in lab.json."""
        info = json.loads((self.lab_dir / "lab.json").read_text())
        octet = int(info["mgmt_subnet"].split(".")[2])
        self.plan = make_plan(load_topology(self.topology), Identity(info["lab_id"], octet))

    @property
    def lab_dir(self) -> Path:
        return self.root / self.plan.lab


def up(topology: str) -> Lab:
    # Not pytest's tmp_path: pytest prunes old base temp dirs while a VM may still share one.
    lab = Lab(Path(tempfile.mkdtemp(prefix="meshpay-e2e-")), topology)
    try:
        lab.cli("up", str(lab.topology))
        lab.adopt_identity()
    except BaseException:
        # a failed `up` still leaves a VM running: left alone it would slow every later test
        lab.cli("down", check=False)
        raise
    return lab


def lab_fixture(topology: str, name: str):
    """A module-scoped fixture `name`: the lab of `topology`, up for the module's tests, down after
    (unless a test took it down itself)."""

    @pytest.fixture(scope="module", name=name)
    def fixture() -> Iterator[Lab]:
        lab = up(topology)
        try:
            yield lab
        finally:
            if lab.lab_dir.exists():
                lab.cli("down", check=False)

    return fixture


def wait_for(what: str, check, timeout: float, every: float = 2.0):
    """Poll `check` until it returns something truthy; returns (value, seconds it took)."""
    t0 = time.monotonic()
    while True:
        value = check()
        if value:
            return value, round(time.monotonic() - t0, 1)
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
