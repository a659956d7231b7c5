"""Run a verb where its lab lives: here, or inside the lab's VM through the agent's forwarded port.

`call` is the one way into a verb, for the CLI, the scenario player, `draw` and benches alike:
- a verb of no lab (`doctor`) runs here;
- a host verb (`draw`, `run`) runs here and reaches the lab through `call` itself, step by step;
- any other verb runs in the lab's VM when the lab has one, else here.
A verb that fails in the VM fails here as errors.MeshpayError with the exit status and the
message the VM gave, so a lab answers the same from either side.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import httpx

from orchestrator import errors, labfiles

VERB_TIMEOUT_S = 900.0
# Verbs that run on the host even for a VM lab: they write files the host asked for (draw's
# --out, run's record) and each of their steps is itself a `call`.
HOST_VERBS = frozenset({"draw", "run"})


def is_vm_lab(lab_dir: Path) -> bool:
    return (Path(lab_dir) / labfiles.VM_RECORD).exists()


def call(lab_dir: Path | None, verb: str, **kwargs) -> dict:
    """`orchestrator.verbs.<verb>.run(lab_dir, **kwargs)` where the lab lives (lab_dir None: a
    verb of no lab). Errors: what the verb raises here; errors.MeshpayError from the VM."""
    if lab_dir is not None and verb not in HOST_VERBS and is_vm_lab(lab_dir):
        from orchestrator.vm.machine import VMRecord

        record = VMRecord.load(Path(lab_dir))
        if record is not None:
            # a verb given its own time limit (exec --timeout) gets it in full, and then some
            return agent_call(record.port, verb, kwargs, VERB_TIMEOUT_S + float(kwargs.get("timeout", 0)))
    module = importlib.import_module(f"orchestrator.verbs.{verb}")
    if lab_dir is None:
        return module.run(**kwargs)
    return module.run(Path(lab_dir), **kwargs)


def agent_call(port: int, verb: str, kwargs: dict, timeout: float = VERB_TIMEOUT_S) -> dict:
    try:
        resp = httpx.post(f"http://127.0.0.1:{port}/verbs/{verb}", json=kwargs, timeout=timeout)
    except httpx.HTTPError as exc:
        raise errors.MeshpayError(f"the lab's VM does not answer on port {port} ({exc}); "
                                  "see vm.log in the lab directory, or `meshpay-lab down` to clean up") from None
    body = resp.json()
    if resp.status_code >= 400:
        raise errors.MeshpayError(body.get("error") or body.get("detail") or str(body),
                                  body.get("exit_code", errors.FAILED))
    return body
