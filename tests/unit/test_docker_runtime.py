"""The docker runtime's logic against a fake Docker client: names, labels, isolation, the netns
link that follows the container, what `down` finds, and the AppArmor decision."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from docker.errors import ImageNotFound, NotFound

from orchestrator import errors
from orchestrator.runtime import docker as docker_rt, engine
from orchestrator.runtime.base import NodeRef, NodeService
from orchestrator.runtime.docker import DockerRuntime, LABEL_LAB, LABEL_NODE, container_name


class FakeContainer:
    def __init__(self, client: FakeClient, name: str, labels: dict[str, str], pid: int) -> None:
        self.client, self.name, self.labels = client, name, labels
        self.id = f"id-{name}"
        self.status = "running"
        self.attrs = {"State": {"Pid": pid}}

    def start(self) -> None:
        self.status = "running"
        self.attrs["State"]["Pid"] = self.client.next_pid()  # a restart is a new init process

    def reload(self) -> None:
        pass

    def remove(self, force: bool = False) -> None:
        assert force
        del self.client.containers.items[self.name]


class FakeContainers:
    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.items: dict[str, FakeContainer] = {}
        self.runs: list[dict] = []

    def run(self, image: str, **kwargs) -> FakeContainer:
        self.runs.append({"image": image, **kwargs})
        c = FakeContainer(self.client, kwargs["name"], kwargs["labels"], self.client.next_pid())
        self.items[c.name] = c
        return c

    def get(self, name: str) -> FakeContainer:
        if name not in self.items:
            raise NotFound(name)
        return self.items[name]

    def list(self, all: bool, filters: dict) -> list[FakeContainer]:
        assert all, "down must see stopped containers too"
        key, value = filters["label"].split("=", 1)
        return [c for c in self.items.values() if c.labels.get(key) == value]


class FakeImages:
    def __init__(self) -> None:
        self.present: set[str] = set()
        self.loaded: list[bytes] = []

    def get(self, name: str) -> object:
        if name not in self.present:
            raise ImageNotFound(name)
        return object()

    def load(self, data) -> None:
        self.loaded.append(data.read())
        self.present.add(engine.NODE_IMAGE)


class FakeAPI:
    def __init__(self) -> None:
        self.execs: dict[str, dict] = {}

    def exec_create(self, container: str, cmd: list[str], environment: dict) -> dict:
        exec_id = f"exec{len(self.execs)}"
        self.execs[exec_id] = {"container": container, "cmd": cmd, "env": environment, "started": False}
        return {"Id": exec_id}

    def exec_start(self, exec_id: str, detach: bool) -> None:
        assert detach
        self.execs[exec_id]["started"] = True

    def exec_inspect(self, exec_id: str) -> dict:
        return {"Pid": 4242, "Running": True, "ExitCode": None}


class FakeClient:
    def __init__(self, security: list[str] | None = None) -> None:
        self._pid = 1000
        self.containers = FakeContainers(self)
        self.images = FakeImages()
        self.images.present.add(engine.NODE_IMAGE)
        self.api = FakeAPI()
        self.security = security or ["name=seccomp,profile=default"]

    def next_pid(self) -> int:
        self._pid += 1
        return self._pid

    def info(self) -> dict:
        return {"SecurityOptions": self.security}


@pytest.fixture
def netns_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "netns"
    monkeypatch.setattr(docker_rt, "NETNS_DIR", str(d))
    return d


def ref(node: str = "auth1", lab: str = "demo") -> NodeRef:
    return NodeRef(lab=lab, name=node, netns=f"mpl-{lab}-{node}")


def runtime(client: FakeClient, tmp_path: Path) -> DockerRuntime:
    return DockerRuntime("demo", lab_dir=tmp_path / "lab", _client=client)


def test_create_runs_an_isolated_labelled_container_and_links_its_netns(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    (run,) = client.containers.runs
    assert run["name"] == "meshpay-demo-auth1" == container_name(ref())
    assert run["labels"] == {LABEL_LAB: "demo", LABEL_NODE: "auth1"}
    assert run["network_mode"] == "none"
    assert run["cap_add"] == ["NET_ADMIN"]
    assert run["security_opt"] == []
    node_dir = str((tmp_path / "lab" / "nodes" / "auth1").resolve())
    assert run["volumes"] == {node_dir: {"bind": node_dir, "mode": "rw"}}
    pid = client.containers.items["meshpay-demo-auth1"].attrs["State"]["Pid"]
    assert os.readlink(netns_dir / "mpl-demo-auth1") == f"/proc/{pid}/ns/net"
    assert rt.netns_path(ref()) == str(netns_dir / "mpl-demo-auth1")


def test_create_again_changes_nothing(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    before = os.readlink(netns_dir / "mpl-demo-auth1")
    rt.create(ref())
    assert len(client.containers.runs) == 1
    assert os.readlink(netns_dir / "mpl-demo-auth1") == before


def test_a_restarted_container_gets_its_netns_name_back(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    container = client.containers.items["meshpay-demo-auth1"]
    container.status = "exited"  # crashed; `up` starts it again
    rt.create(ref())
    assert container.status == "running"
    assert os.readlink(netns_dir / "mpl-demo-auth1") == f"/proc/{container.attrs['State']['Pid']}/ns/net"


def test_a_container_of_that_name_from_elsewhere_is_not_taken_over(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    client.containers.items["meshpay-demo-auth1"] = FakeContainer(client, "meshpay-demo-auth1", {}, 5)
    with pytest.raises(errors.MeshpayError, match="docker rm -f meshpay-demo-auth1"):
        runtime(client, tmp_path).create(ref())


def test_apparmor_without_docker_default_runs_unconfined(tmp_path: Path, netns_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient(security=["name=apparmor", "name=seccomp,profile=default"])
    monkeypatch.setattr(engine, "APPARMOR_PROFILES", tmp_path / "no-such-file")
    runtime(client, tmp_path).create(ref())
    assert client.containers.runs[0]["security_opt"] == ["apparmor=unconfined"]


def test_apparmor_with_docker_default_loaded_keeps_it(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.write_text("man (enforce)\n")
    assert engine.needs_unconfined(FakeClient(security=["name=apparmor"]), profiles) is True
    profiles.write_text("docker-default (enforce)\nman (enforce)\n")
    assert engine.needs_unconfined(FakeClient(security=["name=apparmor"]), profiles) is False
    assert engine.needs_unconfined(FakeClient(), profiles) is False  # the engine applies no AppArmor


def test_list_is_every_container_and_link_of_this_lab_only(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref("auth1"))
    rt.create(ref("client1"))
    DockerRuntime("other", lab_dir=tmp_path / "other", _client=client).create(ref("auth1", lab="other"))
    client.containers.items["meshpay-demo-client1"].status = "exited"
    os.symlink("/proc/1/ns/net", netns_dir / "mpl-demo-ghost")  # link left by a crashed controller
    (netns_dir / "mpl-demo-.medium").touch()  # a bound netns of another part of the lab
    assert rt.list("demo") == ["mpl-demo-auth1", "mpl-demo-client1", "mpl-demo-ghost"]


def test_delete_removes_container_and_link_and_tolerates_either_missing(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    rt.delete(ref())
    assert client.containers.items == {}
    assert not os.path.lexists(netns_dir / "mpl-demo-auth1")
    rt.delete(ref())  # a second `down`
    os.symlink("/proc/1/ns/net", netns_dir / "mpl-demo-ghost")
    rt.delete(ref("ghost"))
    assert rt.list("demo") == []


def test_start_execs_the_service_into_its_log_and_returns_its_pid(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    log = tmp_path / "lab" / "nodes" / "auth1" / "node.log"
    pid = rt.start(ref(), ["meshpay-node", "--config", "/x/node.json"], log)
    assert pid == 4242
    (ex,) = client.api.execs.values()
    assert ex["container"] == "id-meshpay-demo-auth1" and ex["started"]
    assert ex["cmd"] == ["sh", "-c", f"exec meshpay-node --config /x/node.json >>{log} 2>&1"]


def test_start_in_a_stopped_container_says_to_run_up(tmp_path: Path, netns_dir: Path) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    client.containers.items["meshpay-demo-auth1"].status = "exited"
    with pytest.raises(errors.MeshpayError, match="run `meshpay-lab up` again"):
        rt.start(ref(), ["true"], tmp_path / "log")


def test_missing_image_is_loaded_from_the_saved_tarball(tmp_path: Path) -> None:
    client = FakeClient()
    client.images.present.clear()
    with pytest.raises(engine.EngineError, match="meshpay-lab image build"):
        engine.ensure_image(client, image_dir=tmp_path)
    (tmp_path / engine.IMAGE_TAR).write_bytes(b"tarball")
    engine.ensure_image(client, image_dir=tmp_path)
    assert client.images.loaded == [b"tarball"]
    engine.ensure_image(client, image_dir=tmp_path)  # present now: not loaded twice
    assert len(client.images.loaded) == 1


def test_stop_ends_the_service_but_not_the_containers_own_processes(
        tmp_path: Path, netns_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient()
    rt = runtime(client, tmp_path)
    rt.create(ref())
    init = client.containers.items["meshpay-demo-auth1"].attrs["State"]["Pid"]
    # init -> sleep (the container's command); 900 is the exec'd service, its parent the shim
    parents = {init: 1, 50: init, 900: 7, 901: 900}
    monkeypatch.setattr(docker_rt, "pids_in_netns", lambda path: [init, 50, 900, 901])
    monkeypatch.setattr(docker_rt, "_parent", lambda pid: parents[pid])
    killed = []
    monkeypatch.setattr(docker_rt.procs, "send", lambda pid, sig: killed.append(pid))
    rt.stop_timeout = 0
    rt.stop(ref())
    assert sorted(set(killed)) == [900, 901]


def test_node_services_are_docker_execed_meshpay_nodes(tmp_path, monkeypatch) -> None:
    rt = DockerRuntime("demo", lab_dir=tmp_path / "lab", _client=object())
    started = []
    monkeypatch.setattr(rt, "start", lambda node, argv, log: started.append((node.name, argv, log)) or 40 + len(started))
    ref = NodeRef("demo", "auth1", "mpl-demo-auth1")
    rt.prepare_services()
    assert rt.start_services([NodeService(ref, tmp_path / "node.json", tmp_path / "node.log")]) == {"auth1": 41}
    assert started == [("auth1", ["meshpay-node", "--config", str(tmp_path / "node.json")], tmp_path / "node.log")]
    rt.close()
    assert rt.node_kind == "container"
