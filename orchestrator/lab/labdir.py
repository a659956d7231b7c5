"""The lab directory: where `up` records what it made, so every other verb finds it.

Labs are found by name through the host-wide registry (orchestrator/lab/registry.py) from any
directory; `--labs-root` (or $MESHPAY_LAB_ROOT) narrows the search to the labs under one root.

The files in it are named in orchestrator/labfiles.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator import atomic, labfiles
from orchestrator.errors import MeshpayError, NotFound
from orchestrator.lab import registry

DEFAULT_ROOT = Path("labs")


class LabNotFound(NotFound):
    """No lab or node of that name (or no lab at all where one was asked for): a usage error
    (exit 2); the message lists what there is."""


class LabNotUp(MeshpayError):
    """The lab's directory is there but holds no state.json: the lab is not up (exit 1)."""


def lab_dir(name: str, root: Path | None = None) -> Path:
    return (root or DEFAULT_ROOT).resolve() / name


def is_lab(path: Path) -> bool:
    return (path / labfiles.STATE).exists() or (path / labfiles.VM_RECORD).exists()


def known_labs(root: Path | None = None) -> dict[str, Path]:
    """name -> lab directory: the labs under `root` if one is given; else every live lab in the
    host registry, and any under ./labs (a lab made before the registry, or whose /run was lost)."""
    under = (root or DEFAULT_ROOT).resolve()
    found = {p.name: p for p in sorted(under.glob("*")) if is_lab(p)}
    if root is None:
        for entry in registry.live_entries():
            found.setdefault(entry.name, Path(entry.lab_dir))
    return dict(sorted(found.items()))


def find_lab(name: str | None, root: Path | None = None) -> Path:
    """The named lab, or the only lab there is; the error lists what exists."""
    labs = known_labs(root)
    where = f"under {root.resolve()}" if root is not None else "on this host"
    if name is not None:
        if name in labs:
            return labs[name]
        raise LabNotFound(f"no lab {name!r} {where}; labs: {', '.join(labs) or 'none'} (`meshpay-lab list`)")
    if len(labs) == 1:
        return next(iter(labs.values()))
    if not labs:
        raise LabNotFound(f"no lab {where}: start one with `meshpay-lab up TOPOLOGY.yaml`")
    raise LabNotFound(f"several labs {where} ({', '.join(labs)}): name one with --lab")


def _write_json(path: Path, data: dict, mode: int = 0o644) -> None:
    # Write then rename, so a crash mid-write never leaves a half state file for `down` to trip on.
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def state_path(lab: Path) -> Path:
    return lab / labfiles.STATE


def read_state(lab: Path) -> dict:
    path = state_path(lab)
    if not path.exists():
        raise LabNotUp(f"{lab} has no state.json: the lab is not up (start it with `meshpay-lab up`)")
    return read_json(path)


def write_state(lab: Path, state: dict) -> None:
    # The state holds the nodes' seeds and the API token: owner-only.
    _write_json(state_path(lab), state, mode=0o600)


def token_path(lab: Path) -> Path:
    return lab / labfiles.TOKEN


def write_token(lab: Path, token: str) -> None:
    fd = os.open(token_path(lab), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")


def read_token(lab: Path) -> str:
    return token_path(lab).read_text().strip()


def write_lab_json(lab: Path, info: dict) -> None:
    _write_json(lab / labfiles.LAB, info)


def read_lab_json(lab: Path) -> dict:
    return read_json(lab / labfiles.LAB)


def node_dir(lab: Path, node: str) -> Path:
    path = lab / labfiles.NODES_DIR / node
    path.mkdir(parents=True, exist_ok=True)
    return path


def node_file(lab: Path, node: str, name: str, shard: int = 0) -> Path:
    """The file `name` (labfiles.NODE_CONFIG, NODE_DB, NODE_LOG) of `node`'s shard `shard`."""
    return node_dir(lab, node) / labfiles.shard_file(name, shard)


def node_services(name: str, node: dict) -> list[dict]:
    """Every FastPay process of node `name` as lab.json records it, shard 0 first:
    [{"key": its name in state.json's pids, "shard": k, "api_url": its REST URL}]. A lab.json
    written before shards lists none: its node is one process under its own name."""
    return node.get("services") or [{"key": name, "shard": 0, "api_url": node["api_url"]}]


def write_secret_json(path: Path, data: dict) -> None:
    """Node configs hold private keys and the API token: owner-only."""
    _write_json(path, data, mode=0o600)


def write_secret_text(path: Path, text: str) -> None:
    """A file holding a password or key: owner-only from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "w") as f:
        f.write(text)


def lab_node(lab: Path, name: str) -> dict:
    """Node `name`'s entry in lab.json; errors.NotFound (exit 2) naming the nodes there are."""
    nodes = read_lab_json(lab)["nodes"]
    if name not in nodes:
        raise NotFound(f"no node {name!r} in this lab; nodes: {', '.join(sorted(nodes))}")
    return nodes[name]
