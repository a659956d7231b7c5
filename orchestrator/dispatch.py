"""The one way into a verb, for the CLI, `draw --live` and benches alike: run it where its lab lives.

- `up` and `down` run through vmlab.py, which brings a lab up or down here or in its VM;
- a verb of no lab (`doctor`; `labs`, given a root) runs here;
- a host verb (`draw`, `run`, `labs`) runs here: it writes files the host asked for or looks at
  many labs, and reaches each lab through `call` itself (it is given `dispatch=call`);
- any other verb runs in the lab's VM when the lab has one (vm/client.py), else here.
Errors: what the verb raises; errors.MeshpayError, with the VM's exit status, from a VM.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from orchestrator import labfiles, vmlab
from orchestrator.vm.client import VERB_TIMEOUT_S, agent_call

# Verbs that run on the host even for a VM lab, given `dispatch` for their own steps.
HOST_VERBS = frozenset({"draw", "run", "labs"})
LIFECYCLE = {"up": "up", "down": "down_lab"}  # verb -> its function in vmlab.py


def is_vm_lab(lab_dir: Path) -> bool:
    return (Path(lab_dir) / labfiles.VM_RECORD).exists()


def call(lab_dir: Path | None, verb: str, **kwargs) -> dict:
    """`orchestrator.verbs.<verb>.run(lab_dir, **kwargs)` where the lab lives (lab_dir None: a
    verb of no lab, called with kwargs only)."""
    if verb in LIFECYCLE:
        return getattr(vmlab, LIFECYCLE[verb])(Path(lab_dir), **kwargs)
    if verb in HOST_VERBS:
        kwargs["dispatch"] = call
    elif lab_dir is not None and is_vm_lab(lab_dir):
        from orchestrator.vm.machine import VMRecord

        record = VMRecord.load(Path(lab_dir))
        if record is not None:
            # a verb given its own time limit (exec --timeout) gets it in full, and then some
            return agent_call(record.port, verb, kwargs, VERB_TIMEOUT_S + float(kwargs.get("timeout", 0)))
    module = importlib.import_module(f"orchestrator.verbs.{verb}")
    if lab_dir is None:
        return module.run(**kwargs)
    return module.run(Path(lab_dir), **kwargs)
