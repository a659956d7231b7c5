"""Run a verb where its lab lives: here, or inside the lab's VM through the agent's forwarded port."""

from __future__ import annotations

import importlib
from pathlib import Path

import httpx

from orchestrator import labfiles

VERB_TIMEOUT_S = 900.0


def is_vm_lab(lab_dir: Path) -> bool:
    return (Path(lab_dir) / labfiles.VM_RECORD).exists()


def call(lab_dir: Path, verb: str, **kwargs) -> dict:
    if is_vm_lab(lab_dir):
        from orchestrator.vm.machine import VMRecord

        record = VMRecord.load(Path(lab_dir))
        if record is not None:
            # a verb given its own time limit (exec --timeout) gets it in full, and then some
            return agent_call(record.port, verb, kwargs, VERB_TIMEOUT_S + float(kwargs.get("timeout", 0)))
    module = importlib.import_module(f"orchestrator.verbs.{verb}")
    return module.run(Path(lab_dir), **kwargs)


def agent_call(port: int, verb: str, kwargs: dict, timeout: float = VERB_TIMEOUT_S) -> dict:
    try:
        resp = httpx.post(f"http://127.0.0.1:{port}/verbs/{verb}", json=kwargs, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"the lab's VM does not answer on port {port} ({exc}); "
                           "see vm.log in the lab directory, or `meshpay-lab down` to clean up") from None
    body = resp.json()
    if resp.status_code >= 400:
        raise RuntimeError(body.get("error") or body.get("detail") or str(body))
    return body
