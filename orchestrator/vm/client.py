"""The host's client of the agent: run one verb in the lab's VM, through its forwarded port.

A verb that fails in the VM fails here as the same kind of errors.MeshpayError (NotFound,
NotConfirmed, ...; errors.from_wire) with the message, exit status and record the agent gave it,
so a lab answers the same from either side.
"""

from __future__ import annotations

import httpx

from orchestrator import errors

VERB_TIMEOUT_S = 900.0


def agent_call(port: int, verb: str, kwargs: dict, timeout: float = VERB_TIMEOUT_S) -> dict:
    """`verb`'s JSON result from the agent on 127.0.0.1:`port`. Errors: errors.MeshpayError."""
    try:
        resp = httpx.post(f"http://127.0.0.1:{port}/verbs/{verb}", json=kwargs, timeout=timeout)
    except httpx.HTTPError as exc:
        raise errors.MeshpayError(f"the lab's VM does not answer on port {port} ({exc}); "
                                  "see vm.log in the lab directory, or `meshpay-lab down` to clean up") from None
    body = resp.json()
    if resp.status_code >= 400:
        raise errors.from_wire(body)
    return body
