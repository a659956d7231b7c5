"""Fixtures shared by unit tests."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Imports of matplotlib fail, as on a host without the `plots` extra."""
    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)


@pytest.fixture(autouse=True)
def private_registry(tmp_path_factory, monkeypatch):
    """Every unit test gets a lab registry of its own: none reads or writes the host's /run."""
    monkeypatch.setenv("MESHPAY_REGISTRY", str(tmp_path_factory.mktemp("registry")))


@pytest.fixture
def labdir(tmp_path: Path) -> Path:
    """A lab directory as `up` leaves it, whose nodes' REST ports answer nothing."""
    d = tmp_path / "labs" / "demo"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"lab": "demo", "pids": {}}))
    nodes = {name: {"role": role, "mesh_ip": f"10.77.0.{i + 1}", "mgmt_ip": "127.0.0.1", "mac": f"02:00:01:00:00:0{i}",
                    "netns": f"mpl-demo-{name}", "position": [i * 50.0, 0.0],
                    "api_url": "http://127.0.0.1:9", "rest_url": "http://127.0.0.1:9"}
             for i, (name, role) in enumerate([("auth1", "authority"), ("client1", "client"), ("client2", "client")])}
    (d / "lab.json").write_text(json.dumps({"lab": "demo", "nodes": nodes}))
    (d / "token").write_text("t\n")
    return d
