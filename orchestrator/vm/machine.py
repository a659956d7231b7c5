"""The VM route: run the lab inside a virtme-ng VM when the host kernel has no mac80211_hwsim.

One long-lived VM per lab. The lab directory is shared writable at the same path, so paths mean
the same thing on both sides; the agent (`orchestrator/vm/agent.py`) listens on guest port 8080 and a
QEMU user-mode NIC forwards one host loopback port to it. The lab directory records the VM in
`vm.json`, so any later verb (and any later process) finds it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from orchestrator import atomic, labfiles
from orchestrator.errors import MeshpayError

log = logging.getLogger(__name__)

GUEST_PORT = 8080
# QEMU user-mode networking hands out 10.0.2.15 first; the forward targets it and the agent
# assigns it statically (no DHCP client runs on our NIC).
GUEST_ADDR = "10.0.2.15"
GUEST_PREFIX = 24
RECORD_NAME = labfiles.VM_RECORD
LOG_NAME = labfiles.VM_LOG
REPO_ROOT = Path(__file__).resolve().parents[2]


class VMError(MeshpayError):
    """The VM could not be found, started, reached or stopped; the message says what to do."""


# ---------------------------------------------------------------- discovery


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.name))


def find_kernel(boot_dir: Path = Path("/boot")) -> Path:
    """The newest kernel image in `boot_dir` (the guest runs it with the host's modules)."""
    kernels = sorted(boot_dir.glob("vmlinuz-*"), key=_version_key)
    if not kernels:
        raise VMError(
            f"no kernel image (vmlinuz-*) in {boot_dir}; install one: "
            "apt-get install linux-image-amd64"
        )
    return kernels[-1]


def find_vng() -> Path:
    """virtme-ng's `vng`: on PATH, else next to this interpreter (a venv that was not activated)."""
    found = shutil.which("vng")
    if found:
        return Path(found)
    beside = Path(sys.executable).parent / "vng"
    if beside.exists():
        return beside
    raise VMError("virtme-ng's `vng` is not on PATH nor next to python; run: pip install virtme-ng")


def _probe_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "meshpay-lab" / "kvm-probe.json"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def kvm_usable(timeout: float = 15, kernel: Path | None = None) -> bool:
    """True if a KVM guest really runs here.

    /dev/kvm can exist while a KVM guest hangs silently (seen on nested hosts), so boot the
    kernel with no root under KVM: a working KVM reaches the kernel panic and QEMU exits within
    a second or two. The answer is cached per host boot because a hanging probe costs `timeout`.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    kernel = kernel or find_kernel()
    cache = _probe_cache_path()
    key = {"boot_id": _boot_id(), "kernel": str(kernel)}
    try:
        cached = json.loads(cache.read_text())
        if {k: cached.get(k) for k in key} == key:
            return bool(cached["usable"])
    except (OSError, ValueError, KeyError):
        pass
    usable = _probe_kvm(kernel, timeout)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({**key, "usable": usable}))
    except OSError as exc:
        log.debug("kvm probe cache not written: %s", exc)
    return usable


def _probe_kvm(kernel: Path, timeout: float) -> bool:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return False
    argv = [
        qemu, "-accel", "kvm", "-m", "256", "-kernel", str(kernel),
        "-append", "console=ttyS0 panic=-1", "-no-reboot",
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-net", "none",
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        log.info("kvm probe: guest hung for %.0f s; using TCG", timeout)
        return False
    usable = b"Linux version" in done.stdout
    log.info("kvm probe: usable=%s in %.1f s", usable, time.monotonic() - started)
    return usable


@functools.cache
def choose_accel() -> str:
    """'kvm' or 'tcg' for this process (the probe runs at most once)."""
    return "kvm" if kvm_usable() else "tcg"


# ---------------------------------------------------------------- command lines


def forward_opts(host_port: int, guest_port: int = GUEST_PORT) -> str:
    """QEMU options for a second user-mode NIC forwarding host loopback to the guest.

    A NIC of our own (not vng's --network) so that no DHCP client races us and no second slirp
    subnet shadows the route back to the forwarder.
    """
    return (
        f"-netdev user,id=fw0,hostfwd=tcp:127.0.0.1:{host_port}-{GUEST_ADDR}:{guest_port} "
        "-device virtio-net-pci,netdev=fw0"
    )


def vng_argv(
    vng: Path,
    kernel: Path,
    guest_argv: list[str],
    *,
    rwdirs: list[Path],
    memory: str,
    cpus: int,
    accel: str,
    host_port: int | None = None,
) -> list[str]:
    """The vng command line that boots `kernel` and runs `guest_argv` as root inside."""
    argv = [str(vng), "--run", str(kernel), "--memory", memory, "--cpus", str(cpus)]
    # vng boots with loglevel=0; errors and panics must reach vm.log to explain a dead VM
    argv.append("--append=loglevel=4")
    if accel == "tcg":
        argv.append("--disable-kvm")
    for rwdir in rwdirs:
        if "=" in str(rwdir):
            # vng reads `a=b` as guestpath=hostpath
            raise VMError(f"cannot share {rwdir} with the VM: rename it without '='")
        argv.append(f"--rwdir={rwdir}")
    if host_port is not None:
        # the `=` form: a value starting with '-' would otherwise parse as an option
        argv.append(f"--qemu-opts={forward_opts(host_port)}")
    argv += ["--exec", shlex.join(guest_argv)]
    return argv


# The agent is the VM's only command: when it ends, so does the VM. Its exit status and the
# kernel's last words go to vm.log, or a dead agent (a reset connection on the host) is a mystery.
AGENT_WRAPPER = (
    'repo=$1 python=$2 lab=$3 port=$4; shift 4; '
    'PYTHONPATH="$repo" "$python" -m orchestrator.vm.agent --lab-dir "$lab" --port "$port" "$@"; rc=$?; '
    'echo "agent exited with status $rc" >&2; dmesg 2>&1 | tail -n 40 >&2; exit $rc'
)


def agent_argv(lab_dir: Path, python: Path | None = None) -> list[str]:
    """The guest command that runs the agent; the guest starts with an empty environment."""
    return [
        "/bin/sh", "-c", AGENT_WRAPPER, "agent",
        str(REPO_ROOT), str(python or sys.executable), str(lab_dir), str(GUEST_PORT),
    ]  # fmt: skip


def vng_env(vng: Path) -> dict[str, str]:
    """The environment for vng: it starts `virtme-run` through the shell, so its venv must be on PATH."""
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": f"{vng.parent}{os.pathsep}{path}" if path else str(vng.parent)}


def free_port() -> int:
    """A free TCP port on host loopback (QEMU binds it a moment later; a loser fails loudly)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- one-shot jobs


def run_once(
    script_argv: list[str],
    rwdirs: list[Path],
    timeout: float,
    memory: str = "2G",
    cpus: int = 2,
) -> subprocess.CompletedProcess:
    """Boot a VM, run `script_argv` inside as root, return its exit code and console output.

    The guest sees the host's files read-only (`rwdirs` writable, at the same paths), starts in
    the host's working directory, and has an almost empty environment (PATH, HOME).
    """
    vng = find_vng()
    argv = vng_argv(
        vng, find_kernel(), script_argv,
        rwdirs=rwdirs, memory=memory, cpus=cpus, accel=choose_accel(),
    )  # fmt: skip
    # own session: vng forks QEMU, and a timeout must take both down
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=vng_env(vng),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise VMError(
            f"VM job {shlex.join(script_argv)} did not finish within {timeout:.0f} s; "
            f"console tail:\n{_tail(out + err, 30)}"
        ) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# ---------------------------------------------------------------- the lab VM


@dataclass(frozen=True)
class VMRecord:
    """What `lab_dir/vm.json` says about the lab's VM."""

    lab_dir: str
    pid: int
    port: int
    log_path: str
    kernel: str
    accel: str
    started_at: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> VMRecord:
        return cls(**json.loads(text))

    @classmethod
    def load(cls, lab_dir: Path) -> VMRecord | None:
        """The lab's record, or None if the lab has no VM."""
        try:
            return cls.from_json((lab_dir / RECORD_NAME).read_text())
        except FileNotFoundError:
            return None


def vm_alive(record: VMRecord) -> bool:
    """True while any process of the VM's group runs (vng, or QEMU left behind by it).

    The leader's command line must name the lab directory, so a reused pid is never taken for
    the VM.
    """
    _reap(record.pid)
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
        state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return _group_exists(record.pid)
    if state == "Z" or not cmdline:  # leader gone, or caught between fork and exec
        return _group_exists(record.pid)
    return f"--rwdir={record.lab_dir}".encode() in cmdline


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    # a VM booted by this very process stays a zombie until waited for
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _log_tail(record: VMRecord, lines: int = 30) -> str:
    try:
        return _tail(Path(record.log_path).read_text(errors="replace"), lines)
    except OSError:
        return "(no log)"


class LabVM:
    """Boot, reach and stop the one VM of a lab."""

    def __init__(
        self, vng: Path | None = None, kernel: Path | None = None, accel: str | None = None
    ) -> None:
        self._vng = vng
        self._kernel = kernel
        self._accel = accel

    def boot(
        self,
        lab_dir: Path,
        guest_argv: list[str],
        port: int | None = None,
        memory: str = "4G",
        cpus: int = 2,
    ) -> VMRecord:
        """Start the VM detached and record it; it is usable once `wait_ready` returns."""
        lab_dir = lab_dir.resolve()
        lab_dir.mkdir(parents=True, exist_ok=True)
        previous = VMRecord.load(lab_dir)
        if previous is not None:
            if vm_alive(previous):
                raise VMError(
                    f"lab {lab_dir} already has a VM (pid {previous.pid}, port {previous.port}); "
                    "run `meshpay-lab down` first"
                )
            (lab_dir / RECORD_NAME).unlink(missing_ok=True)
        kernel = self._kernel or find_kernel()
        accel = self._accel or choose_accel()
        port = port or free_port()
        vng = self._vng or find_vng()
        argv = vng_argv(
            vng, kernel, guest_argv,
            rwdirs=[lab_dir], memory=memory, cpus=cpus, accel=accel, host_port=port,
        )  # fmt: skip
        log_path = lab_dir / LOG_NAME
        with open(log_path, "ab") as console:
            proc = subprocess.Popen(
                argv,
                cwd=lab_dir,
                env=vng_env(vng),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the verb that booted it; killable as a group
            )
        record = VMRecord(
            lab_dir=str(lab_dir),
            pid=proc.pid,
            port=port,
            log_path=str(log_path),
            kernel=str(kernel),
            accel=accel,
            started_at=time.time(),
        )
        atomic.write_text(lab_dir / RECORD_NAME, record.to_json())
        log.info("vm boot pid=%d port=%d accel=%s log=%s", proc.pid, port, accel, log_path)
        return record

    def wait_ready(self, record: VMRecord, timeout: float = 300) -> float:
        """Wait until the agent answers /health; returns the seconds since boot."""
        deadline = time.monotonic() + timeout
        while True:
            if not vm_alive(record):
                raise VMError(
                    f"the VM exited before its agent answered; last lines of {record.log_path}:\n"
                    f"{_log_tail(record)}"
                )
            try:
                if httpx.get(f"{record.url}/health", timeout=3).status_code == 200:
                    ready = time.time() - record.started_at
                    log.info("vm ready port=%d after=%.1fs", record.port, ready)
                    return ready
            except httpx.HTTPError:
                pass  # QEMU accepts and drops connections until the guest listens
            if time.monotonic() > deadline:
                raise VMError(
                    f"the VM's agent did not answer within {timeout:.0f} s; "
                    f"last lines of {record.log_path}:\n{_log_tail(record)}"
                )
            time.sleep(0.5)

    def stop(self, record: VMRecord, timeout: float = 60) -> None:
        """Ask the agent to take the lab down and power off; force it after `timeout`.

        Safe to call twice and when the VM is already gone.
        """
        if vm_alive(record):
            deadline = time.monotonic() + timeout
            try:
                httpx.post(f"{record.url}/shutdown", timeout=timeout)
            except httpx.HTTPError as exc:
                log.info("vm shutdown request failed (%s); waiting, then forcing", exc)
            while vm_alive(record) and time.monotonic() < deadline:
                time.sleep(0.3)
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if not vm_alive(record):
                    break
                log.warning("vm pid=%d still running; sending %s", record.pid, sig.name)
                _killpg(record.pid, sig)
                until = time.monotonic() + grace
                while vm_alive(record) and time.monotonic() < until:
                    time.sleep(0.2)
            if vm_alive(record):
                raise VMError(f"VM pid {record.pid} survived SIGKILL; check `ps -g {record.pid}`")
        # a later boot of the same lab owns the file by then; leave its record alone
        if VMRecord.load(Path(record.lab_dir)) in (record, None):
            (Path(record.lab_dir) / RECORD_NAME).unlink(missing_ok=True)
        log.info("vm stopped pid=%d", record.pid)
