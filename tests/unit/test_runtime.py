"""runtime/ and mgmt.py pieces that need no privileges."""

import dataclasses
import os
from pathlib import Path

import pytest

from orchestrator import errors

from orchestrator.kernel import mgmt
from orchestrator.kernel.netns import pids_in_netns
from orchestrator.runtime import NodeRef, netns as netns_runtime
from orchestrator.runtime.base import NodeService
from orchestrator.runtime.netns import NetnsRuntime


def test_node_ref_is_frozen() -> None:
    node = NodeRef("lab1", "auth1", "mpl-lab1-auth1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.name = "other"  # type: ignore[misc]


def test_list_keeps_only_the_lab_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["mpl-lab1-auth1", "mpl-lab1-client1", "mpl-lab2-auth1", "other"]:
        (tmp_path / name).touch()
    monkeypatch.setattr(netns_runtime, "NETNS_DIR", str(tmp_path))
    assert NetnsRuntime().list("lab1") == ["mpl-lab1-auth1", "mpl-lab1-client1"]
    assert NetnsRuntime().netns_path(NodeRef("lab1", "a", "mpl-lab1-a")) == f"{tmp_path}/mpl-lab1-a"


def test_list_without_any_netns_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(netns_runtime, "NETNS_DIR", str(tmp_path / "absent"))
    assert NetnsRuntime().list("lab1") == []


def test_pids_in_netns_matches_by_namespace_inode() -> None:
    assert os.getpid() in pids_in_netns("/proc/self/ns/net")
    assert pids_in_netns("/run/netns/mpl-does-not-exist") == []


def test_start_into_a_missing_netns_says_what_to_do(tmp_path: Path) -> None:
    node = NodeRef("lab1", "ghost", "mpl-lab1-ghost-absent")
    with pytest.raises(errors.MeshpayError, match="create the node first") as caught:
        NetnsRuntime().start(node, ["true"], tmp_path / "log")
    assert errors.describe(caught.value)[1] == errors.FAILED and "`meshpay-lab up` again" in str(caught.value)


def test_delete_of_a_missing_netns_is_a_no_op() -> None:
    NetnsRuntime().delete(NodeRef("lab1", "ghost", "mpl-lab1-ghost-absent"))


def test_mgmt_alias_and_name_checks() -> None:
    assert mgmt.lab_alias("lab1") == "meshpay-lab=lab1"
    with pytest.raises(ValueError, match="15"):
        mgmt.create_bridge("a-bridge-name-too-long", "172.31.1.254/24", lab="lab1")
    assert mgmt.owned_links("no-such-lab-anywhere") == []


def test_node_services_go_through_the_prepared_launcher_once(monkeypatch, tmp_path: Path) -> None:
    batches: list[list[dict]] = []
    closed: list[bool] = []

    class FakeLauncher:
        def spawn(self, batch: list[dict]) -> dict[str, int]:
            batches.append(batch)
            return {item["name"]: 100 + i for i, item in enumerate(batch)}

        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(netns_runtime, "Launcher", FakeLauncher)
    monkeypatch.setattr(netns_runtime, "spawn_nodes", lambda batch: {item["name"]: 7 for item in batch})
    rt = NetnsRuntime()
    ref = NodeRef(lab="l", name="auth1", netns="mpl-l-auth1")
    service = NodeService(ref, tmp_path / "node.json", tmp_path / "node.log")
    rt.prepare_services()
    assert rt.start_services([service]) == {"auth1": 100}
    assert batches == [[{"name": "auth1", "netns_path": "/run/netns/mpl-l-auth1",
                         "config": str(tmp_path / "node.json"), "log": str(tmp_path / "node.log")}]]
    assert closed == [True]
    # a later start (fault restart) has no prepared launcher: a one-shot one forks it
    assert rt.start_services([service]) == {"auth1": 7}
    assert rt.start_services([]) == {}
    rt.close()
    assert closed == [True] and len(batches) == 1


def test_every_runtime_a_topology_may_name_has_a_runtime_and_no_other() -> None:
    from orchestrator.lab.topology import RUNTIMES
    from orchestrator.runtime import FACTORIES, runtime_for

    assert tuple(FACTORIES) == RUNTIMES
    assert isinstance(runtime_for("netns", "l"), NetnsRuntime)
    with pytest.raises(errors.UsageError, match="use `runtime: netns` or `runtime: docker`") as caught:
        runtime_for("lxc", "l")
    assert caught.value.exit_code == errors.USAGE
