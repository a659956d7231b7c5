"""The VM route without a VM: discovery, the vng command line, the record, and the lab VM's
life cycle with a stand-in for vng that runs the agent on the forwarded port itself."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.vm import machine
from orchestrator.vm.machine import LabVM, VMError, VMRecord


def test_find_kernel_picks_the_newest_version(tmp_path: Path) -> None:
    for name in ["vmlinuz-5.10.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-6.1.0-9-amd64"]:
        (tmp_path / name).touch()
    assert machine.find_kernel(tmp_path) == tmp_path / "vmlinuz-6.1.0-56-amd64"


def test_find_kernel_missing_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(VMError, match="linux-image-amd64"):
        machine.find_kernel(tmp_path)


def test_find_vng_falls_back_to_the_interpreter_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    monkeypatch.setattr(machine.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(VMError, match="pip install virtme-ng"):
        machine.find_vng()
    (tmp_path / "vng").touch()
    assert machine.find_vng() == tmp_path / "vng"


def test_vng_argv_tcg_with_forward() -> None:
    argv = machine.vng_argv(
        Path("/venv/bin/vng"), Path("/boot/vmlinuz-6.1.0-56-amd64"), ["python", "-c", "print('a b')"],
        rwdirs=[Path("/labs/demo")], memory="4G", cpus=2, accel="tcg", host_port=18080,
    )  # fmt: skip
    assert argv == [
        "/venv/bin/vng", "--run", "/boot/vmlinuz-6.1.0-56-amd64", "--memory", "4G", "--cpus", "2",
        "--append=loglevel=4", "--disable-kvm", "--rwdir=/labs/demo",
        "--qemu-opts=-netdev user,id=fw0,hostfwd=tcp:127.0.0.1:18080-10.0.2.15:8080"
        " -device virtio-net-pci,netdev=fw0",
        "--exec", "python -c 'print('\"'\"'a b'\"'\"')'",
    ]  # fmt: skip
    assert shlex.split(argv[-1]) == ["python", "-c", "print('a b')"]


def test_vng_argv_kvm_without_forward() -> None:
    argv = machine.vng_argv(
        Path("vng"), Path("k"), ["true"], rwdirs=[], memory="2G", cpus=1, accel="kvm"
    )
    assert "--disable-kvm" not in argv
    assert not any(a.startswith("--qemu-opts") for a in argv)


def test_vng_argv_refuses_a_dir_vng_would_misread(tmp_path: Path) -> None:
    with pytest.raises(VMError, match="'='"):
        machine.vng_argv(
            Path("vng"), Path("k"), ["true"], rwdirs=[Path("/labs/a=b")], memory="2G", cpus=1,
            accel="tcg",
        )  # fmt: skip


def test_agent_argv_runs_this_checkout_with_this_python_and_reports_its_end(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "PYTHONPATH=$PYTHONPATH args=$*"\nexit 3\n')
    fake_python.chmod(0o755)
    done = subprocess.run(machine.agent_argv(tmp_path, python=fake_python), capture_output=True, text=True)
    assert done.stdout.strip() == (f"PYTHONPATH={machine.REPO_ROOT} args=-m orchestrator.vm.agent "
                                   f"--lab-dir {tmp_path} --port 8080")
    assert done.returncode == 3
    assert "agent exited with status 3" in done.stderr


def test_vng_env_puts_the_venv_first(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    assert machine.vng_env(Path("/venv/bin/vng"))["PATH"] == "/venv/bin:/usr/bin"


def test_record_round_trip(tmp_path: Path) -> None:
    record = VMRecord(
        lab_dir=str(tmp_path), pid=42, port=18080, log_path=str(tmp_path / "vm.log"),
        kernel="/boot/vmlinuz-6.1.0-56-amd64", accel="tcg", started_at=1.5,
    )  # fmt: skip
    assert VMRecord.from_json(record.to_json()) == record
    assert record.url == "http://127.0.0.1:18080"
    assert VMRecord.load(tmp_path) is None
    (tmp_path / "vm.json").write_text(record.to_json())
    assert VMRecord.load(tmp_path) == record


def test_kvm_probe_runs_once_per_boot(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(machine.os, "access", lambda path, mode: True)
    probes: list[Path] = []
    monkeypatch.setattr(machine, "_probe_kvm", lambda kernel, timeout: probes.append(kernel) or False)
    kernel = Path("/boot/vmlinuz-x")
    assert machine.kvm_usable(kernel=kernel) is False
    assert machine.kvm_usable(kernel=kernel) is False
    assert probes == [kernel]


def test_kvm_unusable_without_dev_kvm(monkeypatch) -> None:
    monkeypatch.setattr(machine.os, "access", lambda path, mode: False)
    monkeypatch.setattr(machine, "_probe_kvm", lambda kernel, timeout: pytest.fail("probed"))
    assert machine.kvm_usable() is False


# A stand-in for vng: it runs the guest command on the host, with the forwarded host port in
# place of guest port 8080, the way the VM would expose it.
FAKE_VNG = textwrap.dedent(
    """\
    #!{python}
    import re, shlex, subprocess, sys
    argv = sys.argv[1:]
    if "--panic" in " ".join(argv):
        print("Kernel panic - not syncing: fake"); sys.exit(255)
    opts = next(a for a in argv if a.startswith("--qemu-opts="))
    port = re.search(r"hostfwd=tcp:127.0.0.1:(\\d+)-", opts).group(1)
    guest = shlex.split(argv[argv.index("--exec") + 1])
    guest[guest.index("8080")] = port  # agent_argv's last argument
    sys.exit(subprocess.call(guest + ["--host", "127.0.0.1", "--no-setup"]))
    """
)


@pytest.fixture
def fake_vm(tmp_path: Path) -> LabVM:
    vng = tmp_path / "bin" / "vng"
    vng.parent.mkdir()
    vng.write_text(FAKE_VNG.format(python=sys.executable))
    vng.chmod(0o755)
    return LabVM(vng=vng, kernel=Path("/boot/vmlinuz-fake"), accel="tcg")


def test_lab_vm_boot_ready_stop(fake_vm: LabVM, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    record = fake_vm.boot(lab_dir, machine.agent_argv(lab_dir))
    try:
        assert VMRecord.load(lab_dir) == record
        assert machine.vm_alive(record)
        with pytest.raises(VMError, match="already has a VM"):
            fake_vm.boot(lab_dir, machine.agent_argv(lab_dir))
        assert fake_vm.wait_ready(record, timeout=60) > 0
    finally:
        fake_vm.stop(record, timeout=20)
    assert not machine.vm_alive(record)
    assert not (lab_dir / "vm.json").exists()
    fake_vm.stop(record)  # already gone: nothing to do, no error


def test_wait_ready_reports_a_dead_vm_with_its_log(fake_vm: LabVM, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    record = fake_vm.boot(lab_dir, ["--panic"])
    with pytest.raises(VMError, match="Kernel panic"):
        fake_vm.wait_ready(record, timeout=30)
    fake_vm.stop(record)
    assert not (lab_dir / "vm.json").exists()


def test_stop_forces_a_vm_that_ignores_shutdown(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    stubborn = tmp_path / "bin" / "vng"
    stubborn.parent.mkdir()
    # a process group of two that answers nothing, like a hung guest
    stubborn.write_text("#!/bin/sh\nsleep 300 &\nsleep 300\n")
    stubborn.chmod(0o755)
    lab_vm = LabVM(vng=stubborn, kernel=Path("k"), accel="tcg")
    record = lab_vm.boot(lab_dir, ["true"])
    assert machine.vm_alive(record)
    lab_vm.stop(record, timeout=1)
    assert not machine.vm_alive(record)
    assert not (lab_dir / "vm.json").exists()


def test_boot_replaces_a_stale_record(fake_vm: LabVM, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = VMRecord(str(lab_dir), dead.pid, 1, "", "", "tcg", 0.0)
    (lab_dir / "vm.json").write_text(stale.to_json())
    record = fake_vm.boot(lab_dir, ["--panic"])
    assert VMRecord.load(lab_dir) == record
    fake_vm.stop(record)


def test_run_once_returns_the_job_result(monkeypatch, tmp_path: Path) -> None:
    vng = tmp_path / "vng"
    vng.write_text('#!/bin/sh\necho "ran: $*"\nexit 3\n')
    vng.chmod(0o755)
    monkeypatch.setattr(machine, "find_vng", lambda: vng)
    monkeypatch.setattr(machine, "find_kernel", lambda: Path("/boot/k"))
    monkeypatch.setattr(machine, "choose_accel", lambda: "tcg")
    done = machine.run_once(["bash", "/x/job.sh"], [tmp_path], timeout=30)
    assert done.returncode == 3
    assert f"--rwdir={tmp_path}" in done.stdout and "--exec bash /x/job.sh" in done.stdout


def test_run_once_timeout_kills_the_whole_group(monkeypatch, tmp_path: Path) -> None:
    vng = tmp_path / "vng"
    pid_file = tmp_path / "pid"
    # vng forks QEMU: a child that would outlive a kill of vng alone
    vng.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nsleep 300 &\nsleep 300\n")
    vng.chmod(0o755)
    monkeypatch.setattr(machine, "find_vng", lambda: vng)
    monkeypatch.setattr(machine, "find_kernel", lambda: Path("/boot/k"))
    monkeypatch.setattr(machine, "choose_accel", lambda: "tcg")
    with pytest.raises(VMError, match="did not finish within 1 s"):
        machine.run_once(["true"], [], timeout=1)
    group = VMRecord("", int(pid_file.read_text()), 0, "", "", "tcg", 0.0)
    # the orphaned child is a zombie until init reaps it
    deadline = time.monotonic() + 5
    while machine.vm_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not machine.vm_alive(group)


def test_stop_of_an_old_record_keeps_a_newer_vms_record(fake_vm: LabVM, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    newer = VMRecord(str(lab_dir), os.getpid(), 1, "", "", "tcg", 2.0)
    (lab_dir / "vm.json").write_text(newer.to_json())
    fake_vm.stop(VMRecord(str(lab_dir), 2**22 + 1, 1, "", "", "tcg", 1.0))
    assert VMRecord.load(lab_dir) == newer
