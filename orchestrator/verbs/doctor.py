"""`doctor`: what this host has for a lab, and what to do about each thing it lacks."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from orchestrator.vm import machine

APT = "apt-get install -y"


def _check(name: str, ok: bool, detail: str, fix: str = "") -> dict:
    return {"check": name, "ok": ok, "detail": detail, "fix": "" if ok else fix}


def hwsim_available() -> bool:
    """True if this kernel has mac80211_hwsim loaded, or can load it now."""
    if Path("/sys/module/mac80211_hwsim").exists():
        return True
    if os.geteuid() != 0 or shutil.which("modprobe") is None:
        return False
    return subprocess.run(["modprobe", "mac80211_hwsim", "radios=0"], capture_output=True).returncode == 0


def _tool(name: str, package: str) -> dict:
    path = shutil.which(name)
    return _check(name, path is not None, path or "not found", f"{APT} {package}")


def _found(find: Callable[[], Path]) -> tuple[bool, str]:
    """(found, where or why not) from one of the VM route's own finders, so doctor reports the
    kernel and vng that `up --vm` will use."""
    try:
        return True, str(find())
    except machine.VMError as exc:
        return False, str(exc)


def run(lab_dir: Path | None = None) -> dict:
    kernel_ok, kernel = _found(machine.find_kernel)
    vng_ok, vng = _found(machine.find_vng)
    checks = [
        _check("root", os.geteuid() == 0, f"uid {os.geteuid()}",
               "run as root (netns, radios and netlink need CAP_NET_ADMIN)"),
        _check("mac80211_hwsim", hwsim_available(), "loaded" if Path("/sys/module/mac80211_hwsim").exists()
               else "not in this kernel", "use `meshpay-lab up --vm` (boots a distro kernel that has it)"),
        _tool("iw", "iw"),
        _tool("ip", "iproute2"),
        _tool("ping", "iputils-ping"),
        _tool("wpa_supplicant", "wpasupplicant"),
        _tool("qemu-system-x86_64", "qemu-system-x86"),
        _tool("busybox", "busybox-static"),
        _check("distro kernel", kernel_ok, kernel, f"{APT} linux-image-amd64 (the VM route boots it)"),
        _check("virtme-ng", vng_ok, vng, "pip install 'meshpay-lab[vm]' (virtme-ng)"),
        _tool("docker", "docker.io"),
    ]
    return {"checks": checks, "ready_native": all(c["ok"] for c in checks[:5]),
            "ready_vm": all(c["ok"] for c in checks if c["check"] in
                            ("root", "qemu-system-x86_64", "busybox", "distro kernel", "virtme-ng"))}
