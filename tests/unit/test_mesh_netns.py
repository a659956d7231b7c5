"""Sockets inside a named netns (orchestrator.kernel.netlink.netns_socket) and the management plane."""

import os
import subprocess
import uuid

import pytest

from orchestrator.kernel import mgmt
from orchestrator.kernel.netlink import create_netns, iproute, netns_socket, write_sysctl

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or subprocess.run(["ip", "netns", "help"], capture_output=True).returncode not in (0, 255),
    reason="needs root and `ip netns`",
)


def test_missing_netns_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        netns_socket("mpl-no-such-netns", 0)


@pytest.fixture
def netns():
    name = f"mpl-ut-{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a netns here")
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@needs_netns
def test_socket_lives_in_the_netns_and_we_do_not_move(netns: str) -> None:
    before = os.readlink("/proc/self/ns/net")
    with iproute(netns) as ipr:
        assert [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()] == ["lo"]
    assert os.readlink("/proc/self/ns/net") == before


@needs_netns
def test_node_link_reaches_the_node_and_is_owned(netns: str) -> None:
    tag = netns[-6:]
    lab, bridge, veth = f"ut{tag}", f"mplbr{tag}", f"mplv{tag}"
    try:
        mgmt.create_bridge(bridge, "172.31.251.254/24", lab=lab)
        mgmt.add_node_link(bridge, netns, veth, cidr="172.31.251.1/24", lab=lab)
        assert mgmt.owned_links(lab) == sorted([bridge, veth])
        ping = subprocess.run(["ping", "-c1", "-W2", "172.31.251.1"], capture_output=True)
        assert ping.returncode == 0
    finally:
        mgmt.delete_link(veth)
        mgmt.delete_link(bridge)
    assert mgmt.owned_links(lab) == []


def test_sysctl_outside_net_is_refused() -> None:
    with pytest.raises(ValueError, match="under net/"):
        write_sysctl("mpl-no-such-netns", "kernel/hostname", "x")
    with pytest.raises(ValueError, match="under net/"):
        write_sysctl("mpl-no-such-netns", "net/../kernel/hostname", "x")


@needs_netns
def test_sysctl_is_set_in_the_netns_only(netns: str) -> None:
    key = "net/ipv4/ip_forward"
    before = open(f"/proc/sys/{key}").read()
    assert write_sysctl(netns, key, "1" if before.strip() == "0" else "0") is True
    assert open(f"/proc/sys/{key}").read() == before
    flipped = subprocess.run(["ip", "netns", "exec", netns, "cat", f"/proc/sys/{key}"],
                             capture_output=True, text=True).stdout
    assert flipped != before
    assert write_sysctl(netns, "net/ipv6/conf/no-such-if/disable_ipv6", "1") is False


def test_netns_names_that_are_not_file_names_are_refused() -> None:
    for bad in ("", "a/b", ".."):
        with pytest.raises(ValueError, match="netns name"):
            create_netns(bad)


@needs_netns
def test_created_netns_is_a_new_one_that_ip_netns_sees() -> None:
    name = f"mpl-ut-{uuid.uuid4().hex[:6]}"
    try:
        create_netns(name)
        assert os.stat(f"/run/netns/{name}").st_ino != os.stat("/proc/self/ns/net").st_ino
        links = subprocess.run(["ip", "netns", "exec", name, "ip", "-o", "link"], capture_output=True, text=True)
        assert links.returncode == 0 and [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
        with pytest.raises(FileExistsError):
            create_netns(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@needs_netns
def test_static_neighbours_are_permanent_and_replace_idempotently(netns: str) -> None:
    from orchestrator.kernel.mesh import set_static_neighbours

    subprocess.run(["ip", "-n", netns, "link", "add", "mesh0", "type", "veth", "peer", "name", "peer0"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "mesh0", "up"], check=True)
    table = {f"10.77.0.{i}": f"02:ab:cd:00:00:{i:02x}" for i in range(2, 60)}
    set_static_neighbours(netns, "mesh0", table)
    set_static_neighbours(netns, "mesh0", {**table, "10.77.0.2": "02:ab:cd:00:01:02"})  # a re-run of `up`
    out = subprocess.run(["ip", "-n", netns, "neigh", "show", "dev", "mesh0"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    entries = {line.split()[0]: line.split() for line in out}
    assert len(entries) == len(table)
    assert entries["10.77.0.2"][2] == "02:ab:cd:00:01:02"
    assert all(row[-1] == "PERMANENT" for row in entries.values())


@needs_netns
def test_a_refused_neighbour_entry_is_an_error_with_the_kernels_errno(netns: str) -> None:
    import errno

    from orchestrator.kernel.netlink import NETLINK_ROUTE, neigh_replace_messages, send_with_acks

    sock = netns_socket(netns, NETLINK_ROUTE)
    try:
        with pytest.raises(OSError) as info:  # no interface 9999 in a fresh netns
            send_with_acks(sock, neigh_replace_messages(9999, {"10.77.0.2": "02:00:00:00:00:02"}), 1)
    finally:
        sock.close()
    assert info.value.errno == errno.ENODEV
