"""The management plane: a lab bridge in the controller's namespace and one veth per node.

Every interface made here carries the alias `meshpay-lab=<lab>` (IFLA_IFALIAS), so `down` after a
crash finds exactly what its lab made by asking the kernel, not by guessing from names.
"""

from __future__ import annotations

import errno
import ipaddress
import logging

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from orchestrator.errors import MeshpayError
from orchestrator.kernel.netlink import iproute

log = logging.getLogger(__name__)

MAX_IFNAME = 15
ALIAS_PREFIX = "meshpay-lab="


def lab_alias(lab: str) -> str:
    return f"{ALIAS_PREFIX}{lab}"


def create_bridge(name: str, cidr: str, *, lab: str) -> int:
    """Create the lab bridge holding `cidr` (e.g. 172.31.7.254/24), up. Returns its ifindex."""
    _check_name(name)
    iface = ipaddress.ip_interface(cidr)
    with IPRoute() as ipr:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as err:
            raise MeshpayError(f"could not create bridge {name}: {err} (left over from a lab not taken down? "
                               f"`meshpay-lab down --lab {lab}`)") from err
        (index,) = ipr.link_lookup(ifname=name)
        ipr.link("set", index=index, ifalias=lab_alias(lab))
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")
    log.info("bridge created", extra={"bridge": name, "cidr": cidr})
    return index


def add_node_link(
    bridge: str, netns: str, host_ifname: str, *, cidr: str, lab: str, node_ifname: str = "mgmt0",
) -> None:
    """A veth from the bridge into the node's netns; the node end gets `cidr`; lo comes up too."""
    _check_name(host_ifname)
    _check_name(node_ifname)
    iface = ipaddress.ip_interface(cidr)
    with IPRoute() as ipr:
        (bridge_index,) = _lookup(ipr, bridge)
        try:
            # the peer is born inside the node's netns, so its name never clashes in ours
            ipr.link("add", ifname=host_ifname, kind="veth",
                     peer={"ifname": node_ifname, "net_ns_fd": f"/run/netns/{netns}"})
        except NetlinkError as err:
            raise MeshpayError(f"could not create veth {host_ifname} into {netns}: {err} (left over? "
                               f"`meshpay-lab down --lab {lab}`, then `up` again)") from err
        (index,) = ipr.link_lookup(ifname=host_ifname)
        ipr.link("set", index=index, ifalias=lab_alias(lab), master=bridge_index, state="up")
    with iproute(netns) as ipr:
        (lo,) = _lookup(ipr, "lo")
        ipr.link("set", index=lo, state="up")
        (index,) = _lookup(ipr, node_ifname)
        ipr.link("set", index=index, ifalias=lab_alias(lab))
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")
    log.info("node link created", extra={"netns": netns, "host_ifname": host_ifname, "cidr": cidr})


def delete_link(name: str) -> None:
    """Delete an interface (a veth takes its peer with it); a missing one is not an error."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as err:
            # a veth vanishes on its own when the netns holding its peer is removed
            if err.code != errno.ENODEV:
                raise MeshpayError(f"could not delete interface {name}: {err}; `ip link del {name}` removes it "
                                   "by hand") from err
            return
    log.info("link deleted", extra={"ifname": name})


def owned_links(lab: str) -> list[str]:
    """Names of the interfaces in this namespace that carry this lab's alias."""
    alias = lab_alias(lab)
    with IPRoute() as ipr:
        return sorted(
            link.get_attr("IFLA_IFNAME")
            for link in ipr.get_links()
            if link.get_attr("IFLA_IFALIAS") == alias
        )


def _lookup(ipr: IPRoute, name: str) -> list[int]:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise MeshpayError(f"interface {name!r} not found: `meshpay-lab up` again makes what is missing")
    return found


def _check_name(name: str) -> None:
    if not 0 < len(name) <= MAX_IFNAME or "/" in name or " " in name:
        raise ValueError(f"interface name {name!r}: want 1..{MAX_IFNAME} characters, no '/' or spaces")
