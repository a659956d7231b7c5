"""The Docker engine a docker-runtime lab uses: the one already answering, or one we start.

Inside the lab's VM nothing runs dockerd, so the first verb that needs an engine starts one,
detached, with its data on a tmpfs (the VM's root filesystem is the host's, read-only) and no
networking of its own (`--iptables=false --bridge=none`: node containers get `--network none`
and the lab wires them itself). No registry is reachable there: the node image comes from the
tarball `meshpay-lab image build` saved (orchestrator/verbs/image.py).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from orchestrator.errors import MeshpayError

log = logging.getLogger(__name__)

NODE_IMAGE = "meshpay-node:latest"
# Where `image build` leaves the saved node image; the VM sees the host's files at the same path.
IMAGE_DIR = Path(os.environ.get("MESHPAY_IMAGE_DIR", Path(__file__).resolve().parents[2] / "build" / "node-image"))
IMAGE_TAR = "meshpay-node.tar"
ENGINE_DIR = Path("/run/meshpay-lab/docker")
START_TIMEOUT_S = 120.0
APPARMOR_PROFILES = Path("/sys/kernel/security/apparmor/profiles")


class EngineError(MeshpayError):
    """No usable Docker engine or node image; the message says what to do."""


def client(start: bool = True) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST, the default socket, or one a previous verb started
    here; with `start`, start one when none answers."""
    private = f"unix://{ENGINE_DIR / 'docker.sock'}"
    urls = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else ["unix:///var/run/docker.sock", private]
    for url in urls:
        cli = _connect(url)
        if cli is not None:
            return cli
    if not start:
        raise EngineError(f"no Docker engine answers at {', '.join(urls)}; start dockerd, or set DOCKER_HOST")
    return _start_private_engine()


def _start_private_engine() -> docker.DockerClient:
    dockerd, containerd = shutil.which("dockerd"), shutil.which("containerd")
    if dockerd is None or containerd is None:
        raise EngineError("no Docker engine answers and dockerd/containerd are not installed: apt-get install docker.io")
    data = ENGINE_DIR / "data"
    data.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(data):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711", "tmpfs", str(data)], check=True)
    ctr_sock, sock = ENGINE_DIR / "containerd.sock", ENGINE_DIR / "docker.sock"
    ctr_log = ENGINE_DIR / "containerd.log"
    # containerd first, on its own: under TCG it can take longer to answer than dockerd's fixed
    # wait for the containerd it would start itself ("timeout waiting for containerd to start").
    script = (f'{shlex.join([containerd, "--address", str(ctr_sock), "--root", str(data / "containerd"), "--state", str(ENGINE_DIR / "containerd-state")])} >>{shlex.quote(str(ctr_log))} 2>&1 &\n'
              f'while [ ! -S {shlex.quote(str(ctr_sock))} ]; do sleep 0.5; done\n'
              f'exec {shlex.join([dockerd, "--containerd", str(ctr_sock), "--data-root", str(data), "--exec-root", str(ENGINE_DIR / "exec"), "--pidfile", str(ENGINE_DIR / "dockerd.pid"), "--host", f"unix://{sock}", "--iptables=false", "--ip6tables=false", "--bridge=none"])}\n')
    if _apparmor_without_parser():
        # The kernel has AppArmor on but no policy and no apparmor_parser (the lab VM): dockerd
        # would insist on a docker-default profile it cannot load, and even `docker build` fails.
        # Both daemons run in a mount namespace of their own where securityfs is hidden, so they
        # see no AppArmor (there is none to enforce) and the lab's other mounts stay untouched.
        script = "mount -t tmpfs -o size=4k tmpfs /sys/kernel/security\n" + script
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    else:
        argv = ["sh", "-c", script]
    _spawn(argv, ENGINE_DIR / "dockerd.log")
    _wait(lambda: sock.exists() and _connect(f"unix://{sock}") is not None, "dockerd", ENGINE_DIR / "dockerd.log")
    log.info("dockerd started sock=%s", sock)
    return docker.DockerClient(base_url=f"unix://{sock}", timeout=300)


def _apparmor_without_parser() -> bool:
    return Path("/sys/kernel/security/apparmor").exists() and shutil.which("apparmor_parser") is None


def _spawn(argv: list[str], log_path: Path) -> None:
    with open(log_path, "ab") as out:
        # its own session: the engine outlives the verb that started it, like the nodes do
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)


def _connect(url: str) -> docker.DockerClient | None:
    try:
        cli = docker.DockerClient(base_url=url, timeout=300)  # asks the engine's API version
        cli.ping()
        return cli
    except DockerException:
        return None


def _wait(ready: Callable[[], bool], what: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace").splitlines()[-10:]
            raise EngineError(f"{what} did not answer within {START_TIMEOUT_S:.0f} s; {log_path}:\n"
                              + "\n".join(tail))
        time.sleep(0.5)


def ensure_image(cli: docker.DockerClient, image: str = NODE_IMAGE, image_dir: Path = IMAGE_DIR) -> None:
    """Make `image` present: it is, or load the tarball `image build` saved."""
    try:
        cli.images.get(image)
        return
    except ImageNotFound:
        pass
    tar = image_dir / IMAGE_TAR
    if not tar.exists():
        raise EngineError(f"the engine has no image {image} and there is no {tar}: "
                          "run `meshpay-lab image build` first")
    started = time.monotonic()
    with tar.open("rb") as f:
        cli.images.load(f)
    log.info("node image loaded from %s in %.1f s", tar, time.monotonic() - started)


def needs_unconfined(cli: docker.DockerClient, profiles: Path | None = None) -> bool:
    """True where the engine applies AppArmor but the kernel has no docker-default profile
    (a VM booted from the host's files never loaded one): a container asking for it would not start."""
    options = cli.info().get("SecurityOptions") or []
    if not any("name=apparmor" in opt for opt in options):
        return False
    try:
        loaded = (profiles or APPARMOR_PROFILES).read_text()
    except OSError:
        return True
    return not any(line.startswith("docker-default ") for line in loaded.splitlines())
