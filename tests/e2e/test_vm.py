"""The VM route for real: a virtme-ng VM boots with the agent, answers through the forwarded
port, runs a verb inside (where mac80211_hwsim loads), proxies to a node URL, and `stop` leaves
no process and no record behind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.vm.machine import (
    LabVM,
    VMError,
    VMRecord,
    agent_argv,
    find_kernel,
    find_vng,
    run_once,
    vm_alive,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def vm_tools() -> None:
    try:
        find_vng()
        find_kernel()
    except VMError as exc:
        pytest.skip(str(exc))


def _processes_naming(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            pass
    return pids


def test_lab_vm_serves_through_the_forward_and_stops_clean(vm_tools: None, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    # a "node" whose REST URL is the agent itself: proves the proxy path inside the VM
    lab_json = {"nodes": {"self": {"api_url": "http://127.0.0.1:8080"}}}
    (lab_dir / "lab.json").write_text(json.dumps(lab_json))
    vm = LabVM()

    record = vm.boot(lab_dir, agent_argv(lab_dir))
    try:
        assert VMRecord.load(lab_dir) == record
        ready_s = vm.wait_ready(record, timeout=300)
        print(f"\nboot -> agent ready: {ready_s:.1f} s (accel {record.accel})")

        health = httpx.get(f"{record.url}/health", timeout=10)
        assert health.json()["lab_dir"] == str(lab_dir.resolve())

        proxied = httpx.get(f"{record.url}/nodes/self/health", timeout=30)
        assert proxied.status_code == 200 and proxied.json()["ok"] is True
        missing = httpx.get(f"{record.url}/nodes/nobody/health", timeout=30)
        assert missing.status_code == 404 and "nobody" in missing.json()["error"]

        started = time.monotonic()
        doctor = httpx.post(f"{record.url}/verbs/doctor", json={}, timeout=120)
        print(f"doctor verb inside the VM: {time.monotonic() - started:.1f} s")
        assert doctor.status_code == 200, doctor.text
        checks = {c["check"]: c for c in doctor.json()["checks"]}
        assert checks["mac80211_hwsim"]["ok"], checks["mac80211_hwsim"]

        unknown = httpx.post(f"{record.url}/verbs/no_such_verb", json={}, timeout=30)
        assert unknown.status_code == 404
    finally:
        started = time.monotonic()
        vm.stop(record, timeout=90)
        print(f"stop: {time.monotonic() - started:.1f} s")

    assert not vm_alive(record)
    assert not (lab_dir / "vm.json").exists()
    assert _processes_naming(str(lab_dir)) == []
    vm.stop(record)  # a second stop is a no-op


def test_run_once_runs_a_script_as_root_with_a_writable_dir(vm_tools: None, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text('id -u > "$1/uid"\nls /sys/class/net > "$1/nics"\nexit 7\n')
    started = time.monotonic()
    done = run_once(["bash", str(script), str(tmp_path)], [tmp_path], timeout=300)
    print(f"\nrun_once: {time.monotonic() - started:.1f} s")
    assert done.returncode == 7, done.stdout + done.stderr
    assert (tmp_path / "uid").read_text().strip() == "0"
    # no forward asked for: the job's VM has no NIC but loopback
    assert (tmp_path / "nics").read_text().split() == ["lo"]
