"""The kernel layer against a real kernel: runs kernel_smoke.py here if this kernel has
mac80211_hwsim, otherwise inside a virtme-ng VM (QEMU TCG, ~2 minutes)."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SMOKE = Path(__file__).with_name("kernel_smoke.py")
MARKER = "KERNEL_SMOKE_JSON "
TIMEOUT_S = 600


def _hwsim_here() -> bool:
    if os.path.exists("/sys/module/mac80211_hwsim"):
        return True
    try:
        return subprocess.run(["modprobe", "mac80211_hwsim", "radios=0"],
                              capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _vng() -> str | None:
    return shutil.which("vng") or next(
        (str(p) for p in [Path(sys.executable).parent / "vng"] if p.exists()), None
    )


def _vm_kernel() -> str | None:
    if os.environ.get("MESHPAY_VM_KERNEL"):
        return os.environ["MESHPAY_VM_KERNEL"]
    images = sorted(glob.glob("/boot/vmlinuz-*"))
    return images[-1] if images else None


def _summary(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith(MARKER)]
    assert lines, f"kernel_smoke.py printed no summary; output tail:\n{text[-3000:]}"
    return json.loads(lines[-1][len(MARKER):])


def _run_here() -> dict:
    out = subprocess.run([sys.executable, str(SMOKE)], capture_output=True, text=True, timeout=TIMEOUT_S)
    return _summary(out.stdout + out.stderr)


def _run_in_vm(workdir: Path) -> dict:
    vng, kernel = _vng(), _vm_kernel()
    if vng is None or kernel is None:
        pytest.skip("no mac80211_hwsim here and no virtme-ng (`pip install virtme-ng`) or /boot/vmlinuz-*")
    out_file = workdir / "smoke.out"
    inner = f"{shlex.quote(sys.executable)} {shlex.quote(str(SMOKE))} > {shlex.quote(str(out_file))} 2>&1"
    env = {**os.environ, "PATH": f"{Path(vng).parent}:{os.environ.get('PATH', '')}"}
    # TCG only: this machine's /dev/kvm hangs the guest without an error
    cmd = ["timeout", str(TIMEOUT_S), vng, "--run", kernel, "--disable-kvm", "--memory", "2G",
           "--cpus", "2", "--rwdir", str(workdir), "--exec", inner]
    vm = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT_S + 30)
    text = out_file.read_text() if out_file.exists() else ""
    assert text, f"VM produced no output (rc {vm.returncode}):\n{vm.stdout[-2000:]}\n{vm.stderr[-2000:]}"
    return _summary(text)


def test_line_of_four_on_real_kernel(tmp_path: Path) -> None:
    summary = _run_here() if _hwsim_here() else _run_in_vm(tmp_path)
    print(json.dumps(summary, indent=1))
    assert summary["ok"], summary.get("error") or summary.get("teardown_error") or summary
    far = summary["mpaths_node0"]["02:4d:50:00:00:04"]
    assert far["hops"] == 3
    assert far["next_hop"] == "02:4d:50:00:00:02"
    assert summary["mesh_params_node0"]["mesh_hwmp_preq_min_interval"] == 10
    assert summary["mgmt_ping_ok"] and summary["runtime_start_stop_ok"]
    assert summary["duplicate_name_refused"]
    assert summary["swept_radios"] == [f"mpl-ksmoke-n{i}" for i in range(4)]
    assert summary["leftover_radios"] == summary["leftover_netns"] == summary["leftover_links"] == []
