"""The host-wide lab registry: which labs live on this kernel, and the identity each was given.

A lab's kernel objects (radios `mpl<id>-<i>`, bridge `mp<id>br`, veths `mp<id>v<i>`, MACs
`02:<id>:...`, management subnet 172.31.<octet>.0/24) must never collide with another lab's on the
same kernel. A hash of the name cannot promise that (`lab373` and `lab755` both hash to 87f7), so
`up` allocates the id and the subnet here, under a lock, unique among the live labs:

    <dir>/registry.json     {"labs": {name: Entry}}; <dir> is $MESHPAY_REGISTRY, else /run/meshpay-lab
    <dir>/registry.lock     flock held while the registry is read, changed and written
    <dir>/labs/<name>.lock  flock held by an `up` or `down` of that lab for its whole run

/run is the kernel's own: it empties at boot, as the objects it describes do. On the VM route the
VM's kernel holds the objects, so the agent's `up` allocates from the VM's /run; the host's registry
records the VM lab (`where: vm`, no id) so that every verb finds it from any directory.

An entry is live while its lab directory holds state.json or vm.json (written by `up` before it
creates anything, removed by `down` last) or while its lab lock is held; anything else is stale and
pruned at the next claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator import atomic, labfiles
from orchestrator.errors import MeshpayError

DEFAULT_DIR = Path("/run/meshpay-lab")
# Interface names are capped at 15 characters: four hex digits fit `mp<id>v<249>` and `mpl<id>-<249>`.
ID_SPACE = 0xFFFF
# Each lab's management plane is 172.31.<octet>.0/24, octet 1..250 (the upper ones are left to
# anything else on the host).
MGMT_RANGE = ipaddress.ip_network("172.31.0.0/16")
OCTETS = range(1, 251)


class RegistryError(MeshpayError):
    """A claim the registry refuses (exit 1); the message names the lab that holds what was asked
    for, and how to free it."""


@dataclass(frozen=True)
class Identity:
    """What scopes one lab's kernel objects: `id` four hex digits, `octet` its management /24."""

    id: str
    octet: int

    @property
    def mgmt_subnet(self) -> str:
        return self.mgmt_ip(0) + "/24"

    def mgmt_ip(self, host: int) -> str:
        """Host `host` (0..255) of the lab's management /24."""
        return str(MGMT_RANGE.network_address + (self.octet << 8) + host)


@dataclass(frozen=True)
class Entry:
    name: str
    lab_dir: str
    topology: str
    where: str  # "host": its objects are on this kernel; "vm": in the lab's own VM
    id: str | None = None
    octet: int | None = None
    pid: int | None = None  # the `up` that claimed it

    @property
    def identity(self) -> Identity | None:
        return Identity(self.id, self.octet) if self.id is not None and self.octet is not None else None


def registry_dir() -> Path:
    return Path(os.environ.get("MESHPAY_REGISTRY") or DEFAULT_DIR)


def _path() -> Path:
    return registry_dir() / "registry.json"


@contextlib.contextmanager
def _locked() -> Iterator[dict]:
    """The registry's contents, exclusively; written back when the block ends without error."""
    d = registry_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(d / "registry.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(_path().read_text()) if _path().exists() else {}
        except ValueError:
            data = {}  # a torn file cannot happen (write then rename); a hand-edited one is rebuilt
        data.setdefault("labs", {})
        yield data
        atomic.write_text(_path(), json.dumps(data, indent=2, sort_keys=True) + "\n")


def _lock_path(name: str) -> Path:
    return registry_dir() / "labs" / f"{name}.lock"


@contextlib.contextmanager
def lab_lock(name: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold lab `name`'s lock: a second `up` or `down` of the same lab waits here for the first.
    `on_wait(msg)` is told once when it has to wait."""
    path = _lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"another `up` or `down` of lab {name} is running: waiting for it to end")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _lock_held(name: str) -> bool:
    path = _lock_path(name)
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def _live(entry: Entry, holder_pid: int) -> bool:
    d = Path(entry.lab_dir)
    if (d / labfiles.STATE).exists() or (d / labfiles.VM_RECORD).exists():
        return True
    # an `up` between its claim and its first state file holds the lab lock (not us: we hold it too)
    return entry.pid not in (None, holder_pid) and _lock_held(entry.name)


def _entries(data: dict) -> dict[str, Entry]:
    return {name: Entry(**e) for name, e in data["labs"].items()}


def live_entries() -> list[Entry]:
    """Every live lab on this host, by name."""
    if not _path().exists():
        return []
    if not os.access(registry_dir(), os.W_OK):  # a user who may not change it still reads it
        try:
            entries = _entries({"labs": {}, **json.loads(_path().read_text())})
        except (OSError, ValueError):
            return []
        return sorted((e for e in entries.values() if _live(e, os.getpid())), key=lambda e: e.name)
    with _locked() as data:
        entries = _entries(data)
        live = {n: e for n, e in entries.items() if _live(e, os.getpid())}
        data["labs"] = {n: asdict(e) for n, e in live.items()}
    return sorted(live.values(), key=lambda e: e.name)


def lookup(name: str) -> Entry | None:
    return next((e for e in live_entries() if e.name == name), None)


def claim(name: str, lab_dir: Path, topology: Path, where: str = "host",
          preferred: Identity | None = None, busy_octets: frozenset[int] = frozenset()) -> Entry:
    """Register lab `name` (in `lab_dir`, made from `topology`) and, for a lab on this kernel, give
    it an id and a management subnet no other live lab holds. Claiming again what one already holds
    (a re-run of `up`) returns the same identity.

    `busy_octets`: management /24s something outside the registry uses on this kernel (another
    program's 172.31.<n>.0/24): never given.

    Raises RegistryError, naming the holder, when the name is held by a live lab in another lab
    directory or made from another topology file.
    """
    lab_dir, topology = Path(lab_dir).resolve(), Path(topology).resolve()
    with _locked() as data:
        entries = {n: e for n, e in _entries(data).items() if _live(e, os.getpid())}
        mine = entries.pop(name, None)
        if mine is not None:
            if mine.lab_dir != str(lab_dir):
                raise RegistryError(f"lab {name} is already up, in {mine.lab_dir} (from {mine.topology}): "
                                    f"take it down first (`meshpay-lab down --lab {name}`) or rename this lab")
            if mine.topology != str(topology):
                raise RegistryError(f"lab {name} is already up from another file, {mine.topology}: "
                                    f"`meshpay-lab up {topology} --replace` takes it down and starts this one")
        identity = mine.identity if mine is not None and mine.where == where else None
        if where == "host" and identity is None:
            identity = _allocate(name, entries.values(), preferred, busy_octets)
        entry = Entry(name=name, lab_dir=str(lab_dir), topology=str(topology), where=where,
                      id=identity.id if identity else None, octet=identity.octet if identity else None,
                      pid=os.getpid())
        entries[name] = entry
        data["labs"] = {n: asdict(e) for n, e in entries.items()}
    return entry


def _allocate(name: str, others: Iterable[Entry], preferred: Identity | None,
              busy_octets: frozenset[int] = frozenset()) -> Identity:
    others = list(others)
    taken_ids = {e.id for e in others if e.id is not None}
    taken_octets = {e.octet for e in others if e.octet is not None} | set(busy_octets)
    if preferred is not None:
        # What this lab had before (its state.json): its objects on the kernel carry these names.
        for e in others:
            if e.id == preferred.id or e.octet == preferred.octet:
                raise RegistryError(
                    f"lab {name} was made with id {preferred.id} and subnet {preferred.mgmt_subnet}, now held "
                    f"by lab {e.name} ({e.lab_dir}): take lab {name} down (`meshpay-lab down --lab {name}`) "
                    "and bring it up again")
        return preferred
    lab_id = next((f"{i:04x}" for i in range(1, ID_SPACE + 1) if f"{i:04x}" not in taken_ids), None)
    octet = next((o for o in OCTETS if o not in taken_octets), None)
    if lab_id is None or octet is None:
        holders = ", ".join(sorted(e.name for e in others))
        raise RegistryError(f"no free management subnet for lab {name}: {len(taken_octets)} labs hold "
                            f"one each ({holders}); take one down first")
    return Identity(lab_id, octet)


def release(name: str, lab_dir: Path) -> None:
    """Forget lab `name` once `down` removed it (only the entry for this lab directory)."""
    if not _path().exists():
        return
    with _locked() as data:
        entry = data["labs"].get(name)
        if entry is not None and entry["lab_dir"] == str(Path(lab_dir).resolve()):
            del data["labs"][name]
