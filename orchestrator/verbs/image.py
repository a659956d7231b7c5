"""`meshpay-lab image build`: the node image (node_image/Dockerfile), with or without a registry.

- An engine answers here and `--base` names a registry image (python:3.11-slim): a plain
  `docker build`; pip fetches the Python packages.
- Otherwise (no registry; or no engine on this host, as where labs run in the VM): a Debian base
  made by node_image/make-base.sh (debootstrap from Debian's mirror), and the Python wheels for
  the base's CPython 3.11 downloaded here into node_image/wheels/, so the build needs no network.
  With no engine here the build runs in a throwaway VM that starts its own dockerd.

Either way a VM lab needs the image as a tarball (build/node-image/meshpay-node.tar), which the
lab VM's engine loads (orchestrator/runtime/engine.py).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import MeshpayError
from orchestrator.runtime import engine

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / "node_image" / "wheels"
LOCAL_BASE = "meshpay-base:bookworm"
BASE_TAR = "base.tar"
VM_BUILD_TIMEOUT_S = 1500.0
# The debootstrap base runs Debian bookworm's CPython; its wheels must match it, not this host.
WHEEL_TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux2014_x86_64", "--platform", "any"]


@dataclass(frozen=True)
class BuildResult:
    image: str
    base: str
    where: str  # "here" or "vm"
    tarball: str | None
    seconds: float


def build(base: str | None = None, save: bool = True, image_dir: Path = engine.IMAGE_DIR) -> BuildResult:
    """Build the node image; `base` None means the offline route (a debootstrap base)."""
    started = time.monotonic()
    image_dir.mkdir(parents=True, exist_ok=True)
    try:
        cli = engine.client(start=False)
    except engine.EngineError:
        cli = None
    if base is None:
        fetch_wheels()
        base_tar = make_base(image_dir)
    if cli is not None:
        if base is None:
            import_base(cli, base_tar)
        tarball = build_with(cli, base or LOCAL_BASE, image_dir if save else None)
        where = "here"
    else:
        if base is not None:
            raise engine.EngineError(f"no Docker engine here to pull {base} with; "
                                     "omit --base to build offline in a VM, or start dockerd")
        _build_in_vm(image_dir)
        tarball, where = str(image_dir / engine.IMAGE_TAR), "vm"
    return BuildResult(engine.NODE_IMAGE, base or LOCAL_BASE, where, tarball,
                       round(time.monotonic() - started, 1))


def fetch_wheels(dest: Path = WHEELS) -> None:
    """This package and every dependency as wheels for CPython 3.11 on x86-64 Linux."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("meshpay_lab-*.whl"):
        old.unlink()  # a stale build of our own code must not win over this one
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(dest), str(REPO)])
    ours = next(dest.glob("meshpay_lab-*.whl"))
    _run([*pip, "download", "--dest", str(dest), "--only-binary=:all:", *WHEEL_TARGET, str(ours)])


def make_base(image_dir: Path) -> Path:
    tar = image_dir / BASE_TAR
    if not tar.exists():
        _run(["bash", str(REPO / "node_image" / "make-base.sh"), str(tar)])
    return tar


def import_base(cli, base_tar: Path) -> None:
    repository, tag = LOCAL_BASE.split(":")
    # from the file, not a stream: the SDK sends a stream as chunked, which this engine rejects
    cli.api.import_image_from_file(str(base_tar), repository=repository, tag=tag)


def build_with(cli, base: str, save_dir: Path | None) -> str | None:
    """Build from the repository root with node_image/Dockerfile; save a tarball if asked."""
    offline = base == LOCAL_BASE
    _, logs = cli.images.build(
        path=str(REPO), dockerfile="node_image/Dockerfile", tag=engine.NODE_IMAGE, rm=True,
        buildargs={"BASE": base}, network_mode="none" if offline else None,
    )
    for chunk in logs:
        if "stream" in chunk:
            log.info("build: %s", chunk["stream"].rstrip())
    if save_dir is None:
        return None
    tarball = save_dir / engine.IMAGE_TAR
    tmp = tarball.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for piece in cli.images.get(engine.NODE_IMAGE).save(named=True):
            f.write(piece)
    tmp.replace(tarball)
    return str(tarball)


def _build_in_vm(image_dir: Path) -> None:
    from orchestrator.vm.machine import run_once

    argv = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "orchestrator.verbs.image",
            "--inside-vm", str(image_dir)]
    done = run_once(argv, rwdirs=[image_dir], timeout=VM_BUILD_TIMEOUT_S, memory="3G")
    if done.returncode != 0 or not (image_dir / engine.IMAGE_TAR).exists():
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise MeshpayError(f"the image build in the VM failed ({done.returncode}); its last lines say why "
                           f"(run again with MESHPAY_LOG=DEBUG for more):\n{tail}")


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise MeshpayError(f"{' '.join(argv[:4])} ... failed ({done.returncode}); its error output says why, "
                           f"then run `meshpay-lab image build` again:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> None:
    """Inside the build VM: start an engine, import the base, build, save the tarball."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.verbs.image")
    parser.add_argument("--inside-vm", type=Path, required=True, metavar="IMAGE_DIR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="image %(message)s")
    t0 = time.monotonic()
    cli = engine.client()
    log.info("engine up in %.1f s", time.monotonic() - t0)
    import_base(cli, args.inside_vm / BASE_TAR)
    log.info("base imported at %.1f s", time.monotonic() - t0)
    build_with(cli, LOCAL_BASE, args.inside_vm)
    log.info("image built and saved at %.1f s", time.monotonic() - t0)


if __name__ == "__main__":
    main()
