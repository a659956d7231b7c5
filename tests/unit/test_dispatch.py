"""orchestrator/dispatch.call, the one way into a verb: where each verb runs, and a VM's failure
arriving with its exit status (vm/client.py)."""

from __future__ import annotations

import types
from pathlib import Path

import httpx
import pytest

from orchestrator import errors
from orchestrator import dispatch, vmlab
from orchestrator.vm import client


def _verb(monkeypatch, name: str, run) -> None:
    module = types.ModuleType(f"orchestrator.verbs.{name}")
    module.run = run
    monkeypatch.setitem(__import__("sys").modules, f"orchestrator.verbs.{name}", module)


@pytest.fixture
def vm_lab(tmp_path: Path, monkeypatch) -> tuple[Path, list]:
    (tmp_path / "vm.json").write_text("{}")
    sent: list = []

    class Record:
        port = 18080

    monkeypatch.setattr("orchestrator.vm.machine.VMRecord.load", lambda lab_dir: Record())
    monkeypatch.setattr(dispatch, "agent_call", lambda port, verb, kwargs, timeout: sent.append((verb, kwargs)) or {"from": "vm"})
    return tmp_path, sent


def test_a_vm_labs_verb_goes_to_the_agent_and_a_host_verb_stays_here(monkeypatch, vm_lab) -> None:
    lab_dir, sent = vm_lab
    _verb(monkeypatch, "draw", lambda lab_dir, out=None, sender=None, *, dispatch:
          {"from": "host", "sender": sender, "dispatch": dispatch})
    assert dispatch.call(lab_dir, "status") == {"from": "vm"} and sent == [("status", {})]
    drawn = dispatch.call(lab_dir, "draw", sender="client1")
    assert drawn == {"from": "host", "sender": "client1", "dispatch": dispatch.call}  # its steps come back here
    assert sent == [("status", {})]


def test_up_and_down_go_through_the_lab_lifecycle_host_or_vm(monkeypatch, tmp_path: Path) -> None:
    seen = []
    monkeypatch.setattr(vmlab, "up", lambda lab_dir, **kw: seen.append(("up", lab_dir, kw)) or {"up": True})
    monkeypatch.setattr(vmlab, "down_lab", lambda lab_dir, **kw: seen.append(("down", lab_dir, kw)) or {"down": True})
    assert dispatch.call(tmp_path, "up", topology=tmp_path / "t.yaml", vm=False) == {"up": True}
    assert dispatch.call(tmp_path, "down", keep_files=True) == {"down": True}
    assert seen == [("up", tmp_path, {"topology": tmp_path / "t.yaml", "vm": False}),
                    ("down", tmp_path, {"keep_files": True})]


def test_a_verb_of_no_lab_runs_here_without_one(monkeypatch) -> None:
    _verb(monkeypatch, "fake_nolab", lambda: {"ran": True})
    assert dispatch.call(None, "fake_nolab") == {"ran": True}


@pytest.mark.parametrize("code", [errors.USAGE, errors.FAILED])
def test_a_failure_in_the_vm_keeps_its_message_and_exit_status(monkeypatch, code) -> None:
    def post(url, json, timeout):
        return httpx.Response(400, json={"error": "no node 'x' in this lab", "exit_code": code})

    monkeypatch.setattr(client.httpx, "post", post)
    with pytest.raises(errors.MeshpayError) as caught:
        client.agent_call(18080, "peers", {"node": "x"})
    assert str(caught.value) == "no node 'x' in this lab" and caught.value.exit_code == code
    assert errors.describe(caught.value) == ("no node 'x' in this lab", code)
