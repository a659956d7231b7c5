"""`down`: remove every process, namespace, radio and interface this lab made, and nothing else.

It works from names the plan derives from the lab name and its registry id (recorded in state.json
and in the host-wide registry before `up` creates anything) and the alias on every interface, so a
`down` after a crashed or interrupted `up` still finds everything. Once nothing is left, the lab's
registry entry goes, and its id and subnet are free for another lab.

Inside a lab's own VM that is about to power off (`vm_stopping`), the kernel takes every process,
namespace, radio and interface with it: `down` then only lists them (radios as `up` recorded them)
and removes the lab's state files from the shared lab directory. Tearing 50 nodes down one by one under TCG took over 7 minutes.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator import labfiles
from orchestrator.kernel import mgmt, radio
from orchestrator.lab import labdir, registry
from orchestrator.lab.plan import medium_netns, netns_prefix, radio_prefix
from orchestrator.medium.control import delete_netns as delete_medium_netns
from orchestrator.runtime import runtime_for, sae
from orchestrator.runtime.base import NodeRef

STATE_FILES = (labfiles.STATE, labfiles.LAB, labfiles.TOKEN, labfiles.PROGRESS, labfiles.MEDIUM_CONFIG,
               labfiles.MEDIUM_STATS)


def run(lab_dir: Path, lab_name: str | None = None, vm_stopping: bool = False) -> dict:
    lab_dir = Path(lab_dir)
    state = labdir.read_state(lab_dir) if labdir.state_path(lab_dir).exists() else {}
    name = lab_name or state.get("lab") or lab_dir.name
    runtime = state.get("runtime", "netns")
    rt = runtime_for(runtime, name, lab_dir)
    lab_id = _lab_id(name, state)

    nodes = rt.list(name)
    if vm_stopping:
        # the radios `up` recorded: asking each netns for them took minutes with 100 busy nodes
        found = {"lab": name, "nodes": nodes, "radios": sorted(state.get("radios", [])),
                 "links": mgmt.owned_links(name), "leftover": [], "removed_by": "vm_stop"}
        remove_state_files(lab_dir)
        registry.release(name, lab_dir)
        return found
    for netns in nodes:
        rt.stop(_ref(name, netns))
    radios = radio.sweep_radios(radio_prefix(lab_id)) if lab_id else []
    links = mgmt.owned_links(name)
    for link in links:
        mgmt.delete_link(link)
    for netns in nodes:
        rt.delete(_ref(name, netns))
    # a netns runtime listed (and removed) it with the nodes; any other runtime did not
    delete_medium_netns(name, medium_netns(name))
    sae.remove_run_dir(name)  # the supplicants' control sockets; they stopped with their netns
    left = leftover(name, runtime, lab_id)
    if not left:  # something still there keeps the lab, its id and its subnet: `down` again retries
        remove_state_files(lab_dir)
        registry.release(name, lab_dir)
    return {"lab": name, "nodes": nodes, "radios": radios, "links": links, "leftover": left}


def _lab_id(name: str, state: dict) -> str | None:
    """The registry id the lab's radios are named by: state.json's, else the registry's."""
    if state.get("identity"):
        return state["identity"]["id"]
    entry = registry.lookup(name)
    return entry.id if entry is not None else None


def remove_state_files(lab_dir: Path) -> None:
    """Remove the lab's state files; the rest of its directory (node logs, databases) stays."""
    for f in STATE_FILES:
        (lab_dir / f).unlink(missing_ok=True)


def leftover(lab_name: str, runtime: str = "netns", lab_id: str | None = None) -> list[str]:
    """What of this lab still exists on the kernel: empty after a clean `down`."""
    rt = runtime_for(runtime, lab_name)
    radios = radio.list_radios(radio_prefix(lab_id)) if lab_id else []
    return ([f"{rt.node_kind} {n}" for n in rt.list(lab_name)]
            + [f"radio {r.name}" for r in radios]
            + [f"link {link}" for link in mgmt.owned_links(lab_name)])


def _ref(lab_name: str, netns: str) -> NodeRef:
    return NodeRef(lab=lab_name, name=netns.removeprefix(netns_prefix(lab_name)), netns=netns)
