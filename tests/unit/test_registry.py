"""The host-wide lab registry: identities unique among live labs, names held by one lab directory
and one topology file, `up`/`down` of one lab serialized, labs found from any directory."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from orchestrator.lab import labdir, registry
from orchestrator.lab.plan import make_plan
from orchestrator.lab.topology import load_topology

REPO = Path(__file__).parents[2]


def live(lab_dir: Path) -> Path:
    """Make `lab_dir` look like a lab `up` has started (it writes state.json before anything else)."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    (lab_dir / "state.json").write_text("{}")
    return lab_dir


def test_names_that_hash_alike_get_different_identities(tmp_path):
    # what the old 16-bit hash of the name gave both (the example)
    assert hashlib.sha1(b"lab373").hexdigest()[:4] == hashlib.sha1(b"lab755").hexdigest()[:4] == "87f7"
    a = registry.claim("lab373", live(tmp_path / "lab373"), tmp_path / "a.yaml")
    b = registry.claim("lab755", live(tmp_path / "lab755"), tmp_path / "b.yaml")
    assert a.id != b.id and a.octet != b.octet
    topo = "name: {}\nnodes:\n  auth1: {{role: authority}}\n  client1: {{role: client}}\n"
    (tmp_path / "a.yaml").write_text(topo.format("lab373"))
    (tmp_path / "b.yaml").write_text(topo.format("lab755"))
    pa = make_plan(load_topology(tmp_path / "a.yaml"), a.identity)
    pb = make_plan(load_topology(tmp_path / "b.yaml"), b.identity)
    for field in ("radio", "mac", "host_veth", "mgmt_ip", "netns"):
        assert {getattr(n, field) for n in pa.nodes}.isdisjoint({getattr(n, field) for n in pb.nodes}), field
    assert pa.bridge != pb.bridge and pa.bridge_ip != pb.bridge_ip


def test_shipped_line3_and_diamond_get_different_subnets(tmp_path):
    topos = {name: load_topology(REPO / "topologies" / f"{name}.yaml") for name in ("line3", "diamond")}
    plans = [make_plan(t, registry.claim(t.name, live(tmp_path / t.name), REPO / "topologies" / f"{n}.yaml").identity)
             for n, t in topos.items()]
    assert plans[0].identity.mgmt_subnet != plans[1].identity.mgmt_subnet
    assert {n.mgmt_ip for n in plans[0].nodes}.isdisjoint({n.mgmt_ip for n in plans[1].nodes})


def test_claiming_again_keeps_the_identity(tmp_path):
    first = registry.claim("one", live(tmp_path / "one"), tmp_path / "one.yaml")
    again = registry.claim("one", tmp_path / "one", tmp_path / "one.yaml")
    assert again.identity == first.identity


def test_a_name_held_by_a_lab_elsewhere_is_refused_and_the_holder_named(tmp_path):
    registry.claim("one", live(tmp_path / "here" / "one"), tmp_path / "one.yaml")
    with pytest.raises(registry.RegistryError, match=r"already up, in .*here/one"):
        registry.claim("one", tmp_path / "there" / "one", tmp_path / "one.yaml")


def test_a_running_lab_from_another_file_is_refused_unless_replaced(tmp_path):
    registry.claim("one", live(tmp_path / "one"), tmp_path / "old.yaml")
    with pytest.raises(registry.RegistryError, match=r"another file, .*old.yaml.*--replace"):
        registry.claim("one", tmp_path / "one", tmp_path / "new.yaml")


def test_stale_entries_are_pruned_and_their_identity_given_again(tmp_path):
    gone = registry.claim("gone", tmp_path / "gone", tmp_path / "g.yaml")  # never wrote state.json
    assert registry.live_entries() == []
    again = registry.claim("next", live(tmp_path / "next"), tmp_path / "n.yaml")
    assert again.identity == gone.identity


def test_an_identity_recorded_by_an_earlier_up_and_now_held_is_refused(tmp_path):
    held = registry.claim("other", live(tmp_path / "other"), tmp_path / "o.yaml")
    with pytest.raises(registry.RegistryError, match=r"now held by lab other"):
        registry.claim("mine", tmp_path / "mine", tmp_path / "m.yaml", preferred=held.identity)


def test_release_frees_the_name(tmp_path):
    registry.claim("one", live(tmp_path / "one"), tmp_path / "one.yaml")
    registry.release("one", tmp_path / "one")
    assert registry.lookup("one") is None


def test_up_and_down_of_one_lab_are_serialized():
    events: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with registry.lab_lock("demo"):
            holding.set()
            time.sleep(0.3)
            events.append("first done")

    t = threading.Thread(target=first)
    t.start()
    holding.wait()
    with registry.lab_lock("demo", on_wait=lambda msg: events.append("waited")):
        events.append("second in")
    t.join()
    assert events == ["waited", "first done", "second in"]


def test_labs_are_found_from_any_directory(tmp_path, monkeypatch):
    registry.claim("far", live(tmp_path / "somewhere" / "labs" / "far"), tmp_path / "far.yaml")
    monkeypatch.chdir(tmp_path)  # no ./labs here
    assert labdir.find_lab(None) == tmp_path / "somewhere" / "labs" / "far"
    assert labdir.find_lab("far") == tmp_path / "somewhere" / "labs" / "far"
    with pytest.raises(labdir.LabNotFound, match="no lab 'near' on this host; labs: far"):
        labdir.find_lab("near")


def test_a_labs_root_narrows_the_search(tmp_path):
    registry.claim("far", live(tmp_path / "elsewhere" / "far"), tmp_path / "far.yaml")
    live(tmp_path / "root" / "near")
    assert labdir.find_lab(None, tmp_path / "root") == (tmp_path / "root" / "near").resolve()


def test_up_refuses_a_held_name_before_creating_anything(tmp_path, monkeypatch):
    from orchestrator.verbs import up

    topo = tmp_path / "t.yaml"
    topo.write_text("name: held\nnodes:\n  auth1: {role: authority}\n")
    registry.claim("held", live(tmp_path / "first" / "held"), topo)
    monkeypatch.setattr(up, "runtime_for", lambda *a, **k: pytest.fail("up created something"))
    with pytest.raises(registry.RegistryError, match="already up"):
        up.run(tmp_path / "second" / "held", str(topo))
    assert not (tmp_path / "second" / "held").exists()


class FakeMsg(dict):
    def __init__(self, index: int, **attrs) -> None:
        super().__init__(index=index)
        self.attrs = attrs

    def get_attr(self, name: str):
        return self.attrs.get(name)


class FakeKernel:
    """rtnetlink's view: links (index, name, alias) and IPv4 addresses (index, address)."""

    def __init__(self, links, addrs) -> None:
        self.links, self.addrs = links, addrs

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def get_links(self):
        return [FakeMsg(i, IFLA_IFNAME=n, IFLA_IFALIAS=a) for i, n, a in self.links]

    def get_addr(self, family):
        return [FakeMsg(i, IFA_ADDRESS=ip) for i, ip in self.addrs]


def test_up_skips_a_subnet_something_else_uses_on_this_kernel(tmp_path, monkeypatch):
    from orchestrator.verbs import up

    # a Docker network on 172.31.1.0/24 (not a lab's), and this lab's own old bridge on .2
    kernel = FakeKernel([(5, "br-docker", None), (6, "mp0009br", "meshpay-lab=mine")],
                        [(5, "172.31.1.1"), (6, "172.31.2.254")])
    monkeypatch.setattr(up, "iproute", lambda netns: kernel)
    busy = up._busy_octets("mine")
    assert busy == {1}
    entry = registry.claim("mine", live(tmp_path / "mine"), tmp_path / "m.yaml", busy_octets=busy)
    assert entry.octet == 2


def test_up_refuses_names_or_addresses_another_lab_holds_on_this_kernel(tmp_path, monkeypatch):
    from orchestrator.lab.registry import Identity
    from orchestrator.verbs import up

    topo = tmp_path / "t.yaml"
    topo.write_text("name: mine\nnodes:\n  auth1: {role: authority}\n")
    plan = make_plan(load_topology(topo), Identity("0001", 3))
    monkeypatch.setattr(up, "iproute", lambda netns: FakeKernel(
        [(7, "mp0001br", "meshpay-lab=oldlab")], [(7, "172.31.3.254")]))
    with pytest.raises(registry.RegistryError, match=r"interface mp0001br \(meshpay-lab=oldlab\), address 172.31.3.254"):
        up._refuse_kernel_holders(plan)
    monkeypatch.setattr(up, "iproute", lambda netns: FakeKernel(
        [(7, "mp0001br", "meshpay-lab=mine")], [(7, "172.31.3.254")]))
    up._refuse_kernel_holders(plan)  # its own, from an earlier up: reconciled, not refused
