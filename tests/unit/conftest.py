"""Fixtures shared by unit tests."""

from __future__ import annotations

import builtins

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
