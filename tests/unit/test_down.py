"""`down`: inside a VM about to power off it lists the lab and touches nothing on the kernel;
`down_lab` of a big VM lab asks for that (a small one is torn down for real first), stops the VM
and leaves no state file behind."""

import json
from pathlib import Path

import pytest

from orchestrator import vmlab
from orchestrator.lab import labdir
from orchestrator.verbs import down


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def list(self, lab: str) -> list[str]:
        return [f"mpl-{lab}-auth1", f"mpl-{lab}-.medium"]

    def stop(self, node) -> None:
        self.calls.append(f"stop {node.netns}")

    def delete(self, node) -> None:
        self.calls.append(f"delete {node.netns}")


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    for f in down.STATE_FILES:
        (tmp_path / f).write_text("{}")
    (tmp_path / "nodes").mkdir()
    return tmp_path


def test_down_with_the_vm_stopping_lists_and_removes_nothing_but_state_files(monkeypatch, lab_dir):
    rt = FakeRuntime()
    touched: list[str] = []
    monkeypatch.setattr(down, "runtime_for", lambda *a, **k: rt)
    monkeypatch.setattr(down.labdir, "read_state", lambda d: {"lab": "l", "radios": ["mpl-l-auth1"]})
    monkeypatch.setattr(down.radio, "list_radios", lambda prefix: touched.append("listed radios") or [])
    monkeypatch.setattr(down.radio, "sweep_radios", lambda prefix: touched.append("sweep") or [])
    monkeypatch.setattr(down.mgmt, "owned_links", lambda lab: ["mp1br", "mp1v1"])
    monkeypatch.setattr(down.mgmt, "delete_link", lambda name: touched.append(name))
    monkeypatch.setattr(down, "delete_medium_netns", lambda *a: touched.append("medium"))

    found = down.run(lab_dir, lab_name="l", vm_stopping=True)

    assert found["nodes"] == ["mpl-l-auth1", "mpl-l-.medium"] and found["links"] == ["mp1br", "mp1v1"]
    assert found["radios"] == ["mpl-l-auth1"]
    assert found["leftover"] == [] and found["removed_by"] == "vm_stop"
    assert rt.calls == [] and touched == []
    assert not any((lab_dir / f).exists() for f in down.STATE_FILES)
    assert (lab_dir / "nodes").is_dir()  # node logs and databases stay for --keep-files


@pytest.fixture
def vm_calls(monkeypatch) -> list:
    """A running lab VM whose agent and stop are fakes; what down_lab asked of them, in order."""
    calls: list = []
    monkeypatch.setattr(vmlab.VMRecord, "load", staticmethod(lambda d: type("Record", (), {"port": 1})()))
    monkeypatch.setattr(vmlab, "vm_alive", lambda r: True)
    monkeypatch.setattr(vmlab, "agent_call", lambda port, verb, args: calls.append((verb, args)) or {
        "lab": "l", "nodes": ["n"], "radios": ["r"], "links": [], "leftover": []})
    monkeypatch.setattr(vmlab.LabVM, "stop", lambda self, r: calls.append("stop"))
    return calls


def test_down_lab_of_a_vm_lab_asks_for_the_listing_then_stops_the_vm(vm_calls, lab_dir):
    big = {f"n{i}": {} for i in range(vmlab.FULL_TEARDOWN_MAX_NODES + 1)}
    (lab_dir / "lab.json").write_text(json.dumps({"nodes": big}))

    removed = vmlab.down_lab(lab_dir, keep_files=True)

    assert vm_calls == [("down", {"vm_stopping": True}), "stop"]
    assert removed["vm"] is True and removed["radios"] == ["r"]
    assert not any((lab_dir / f).exists() for f in down.STATE_FILES)


def test_down_lab_of_a_small_vm_lab_tears_it_down_node_by_node_before_stopping_the_vm(vm_calls, lab_dir):
    (lab_dir / "lab.json").write_text(json.dumps({"nodes": {"auth1": {}, "client1": {}}}))

    vmlab.down_lab(lab_dir, keep_files=True)

    assert vm_calls == [("down", {}), "stop"]


def test_down_lab_of_a_big_vm_lab_whose_up_failed_half_way_only_lists_it(vm_calls, lab_dir):
    # no lab.json (up writes it at the end), but state.json already holds every node's seed
    seeds = {f"n{i}": "00" * 32 for i in range(vmlab.FULL_TEARDOWN_MAX_NODES + 1)}
    labdir.write_state(lab_dir, {"lab": "l", "runtime": "netns", "seeds": seeds})
    (lab_dir / "lab.json").unlink()

    vmlab.down_lab(lab_dir, keep_files=True)

    assert vm_calls == [("down", {"vm_stopping": True}), "stop"]
