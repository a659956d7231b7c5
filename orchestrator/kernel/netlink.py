"""Generic netlink message classes and sockets for the two families the kernel layer speaks.

pyroute2 ships an nl80211 message class, but it leaves the mesh attributes as raw `hex` (mesh ID,
mesh config, mpath info, plink action), and it has no mac80211_hwsim family at all. Both are
described here, once, from the kernel's uapi headers (include/uapi/linux/nl80211.h and
drivers/net/wireless/mac80211_hwsim.h as of Linux 6.1), so radio.py and mesh.py only build
attribute lists.

Sockets can be opened inside a named netns (`/run/netns/<name>`): nl80211 interface indexes and
station tables are per namespace, so a node's mesh is only reachable from a socket living there.
A socket belongs to the netns it was created in, so a short-lived thread enters the netns
(setns is per thread), creates the socket and ends; pyroute2's own `netns=` forks a process per
socket instead, which costs seconds per node under QEMU TCG.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink import (NETLINK_GENERIC, NETLINK_ROUTE, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE,
                              NLM_F_REQUEST, NLMSG_ERROR, genlmsg, nla)
from pyroute2.netlink.rtnl import RTM_NEWNEIGH
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket
from pyroute2.netlink.nl80211 import nl80211cmd

from orchestrator.errors import MeshpayError

log = logging.getLogger(__name__)
T = TypeVar("T")

HWSIM_FAMILY = "MAC80211_HWSIM"
NL80211_FAMILY = "nl80211"
NETNS_DIR = "/run/netns"

HWSIM_MISSING = (
    "mac80211_hwsim is not loaded: run `modprobe mac80211_hwsim radios=0`, "
    "or use `meshpay-lab up --vm`"
)

# enum hwsim_commands
HWSIM_CMD_NEW_RADIO = 4
HWSIM_CMD_DEL_RADIO = 5
HWSIM_CMD_GET_RADIO = 6

# enum nl80211_commands (the subset we send)
NL80211_CMD_GET_WIPHY = 1
NL80211_CMD_GET_INTERFACE = 5
NL80211_CMD_NEW_INTERFACE = 7
NL80211_CMD_DEL_INTERFACE = 8
NL80211_CMD_GET_STATION = 17
NL80211_CMD_SET_STATION = 18
NL80211_CMD_GET_MPATH = 21
NL80211_CMD_GET_MESH_CONFIG = 28
NL80211_CMD_SET_MESH_CONFIG = 29
NL80211_CMD_SET_WIPHY_NETNS = 49
NL80211_CMD_SET_TX_BITRATE_MASK = 57
NL80211_CMD_JOIN_MESH = 68
NL80211_CMD_LEAVE_MESH = 69

NL80211_IFTYPE_MESH_POINT = 7
NL80211_PLINK_ACTION_BLOCK = 2


class hwsimmsg(genlmsg):
    """MAC80211_HWSIM messages (enum hwsim_attrs, positions are the attribute numbers)."""

    prefix = "HWSIM_ATTR_"
    nla_map = (
        ("HWSIM_ATTR_UNSPEC", "none"),
        ("HWSIM_ATTR_ADDR_RECEIVER", "l2addr"),
        ("HWSIM_ATTR_ADDR_TRANSMITTER", "l2addr"),
        ("HWSIM_ATTR_FRAME", "cdata"),
        ("HWSIM_ATTR_FLAGS", "uint32"),
        ("HWSIM_ATTR_RX_RATE", "uint32"),
        ("HWSIM_ATTR_SIGNAL", "uint32"),
        ("HWSIM_ATTR_TX_INFO", "cdata"),
        ("HWSIM_ATTR_COOKIE", "uint64"),
        ("HWSIM_ATTR_CHANNELS", "uint32"),
        ("HWSIM_ATTR_RADIO_ID", "uint32"),
        ("HWSIM_ATTR_REG_HINT_ALPHA2", "string"),
        ("HWSIM_ATTR_REG_CUSTOM_REG", "uint32"),
        ("HWSIM_ATTR_REG_STRICT_REG", "flag"),
        ("HWSIM_ATTR_SUPPORT_P2P_DEVICE", "flag"),
        ("HWSIM_ATTR_USE_CHANCTX", "flag"),
        ("HWSIM_ATTR_DESTROY_RADIO_ON_CLOSE", "flag"),
        # the kernel sends the name without a trailing NUL and reads it with "%.*s"
        ("HWSIM_ATTR_RADIO_NAME", "string"),
        ("HWSIM_ATTR_NO_VIF", "flag"),
        ("HWSIM_ATTR_FREQ", "uint32"),
        ("HWSIM_ATTR_PAD", "none"),
        ("HWSIM_ATTR_TX_INFO_FLAGS", "cdata"),
        ("HWSIM_ATTR_PERM_ADDR", "l2addr"),
        ("HWSIM_ATTR_IFTYPE_SUPPORT", "uint32"),
        ("HWSIM_ATTR_CIPHER_SUPPORT", "cdata"),
    )


# enum nl80211_meshconf_params: (attribute, pyroute2 type); position = attribute number.
# Sizes matter: the kernel's policy rejects a u32 where it expects a u8.
MESHCONF_ATTRS: tuple[tuple[str, str], ...] = (
    ("__NL80211_MESHCONF_INVALID", "none"),
    ("NL80211_MESHCONF_RETRY_TIMEOUT", "uint16"),
    ("NL80211_MESHCONF_CONFIRM_TIMEOUT", "uint16"),
    ("NL80211_MESHCONF_HOLDING_TIMEOUT", "uint16"),
    ("NL80211_MESHCONF_MAX_PEER_LINKS", "uint16"),
    ("NL80211_MESHCONF_MAX_RETRIES", "uint8"),
    ("NL80211_MESHCONF_TTL", "uint8"),
    ("NL80211_MESHCONF_AUTO_OPEN_PLINKS", "uint8"),
    ("NL80211_MESHCONF_HWMP_MAX_PREQ_RETRIES", "uint8"),
    ("NL80211_MESHCONF_PATH_REFRESH_TIME", "uint32"),
    ("NL80211_MESHCONF_MIN_DISCOVERY_TIMEOUT", "uint16"),
    ("NL80211_MESHCONF_HWMP_ACTIVE_PATH_TIMEOUT", "uint32"),
    ("NL80211_MESHCONF_HWMP_PREQ_MIN_INTERVAL", "uint16"),
    ("NL80211_MESHCONF_HWMP_NET_DIAM_TRVS_TIME", "uint16"),
    ("NL80211_MESHCONF_HWMP_ROOTMODE", "uint8"),
    ("NL80211_MESHCONF_ELEMENT_TTL", "uint8"),
    ("NL80211_MESHCONF_HWMP_RANN_INTERVAL", "uint16"),
    ("NL80211_MESHCONF_GATE_ANNOUNCEMENTS", "uint8"),
    ("NL80211_MESHCONF_HWMP_PERR_MIN_INTERVAL", "uint16"),
    ("NL80211_MESHCONF_FORWARDING", "uint8"),
    ("NL80211_MESHCONF_RSSI_THRESHOLD", "int32"),
    ("NL80211_MESHCONF_SYNC_OFFSET_MAX_NEIGHBOR", "uint32"),
    ("NL80211_MESHCONF_HT_OPMODE", "uint16"),
    ("NL80211_MESHCONF_HWMP_PATH_TO_ROOT_TIMEOUT", "uint32"),
    ("NL80211_MESHCONF_HWMP_ROOT_INTERVAL", "uint16"),
    ("NL80211_MESHCONF_HWMP_CONFIRMATION_INTERVAL", "uint16"),
    ("NL80211_MESHCONF_POWER_MODE", "uint32"),
    ("NL80211_MESHCONF_AWAKE_WINDOW", "uint16"),
    ("NL80211_MESHCONF_PLINK_TIMEOUT", "uint32"),
    ("NL80211_MESHCONF_CONNECTED_TO_GATE", "uint8"),
    ("NL80211_MESHCONF_NOLEARN", "uint8"),
    ("NL80211_MESHCONF_CONNECTED_TO_AS", "uint8"),
)

# pyroute2 leaves these nl80211 attributes as hex dumps; we need them typed.
_NL80211_OVERRIDES = {
    "NL80211_ATTR_MESH_ID": "cdata",
    "NL80211_ATTR_STA_PLINK_ACTION": "uint8",
    "NL80211_ATTR_MPATH_NEXT_HOP": "l2addr",
    "NL80211_ATTR_MPATH_INFO": "mpath_info",
    "NL80211_ATTR_MESH_CONFIG": "mesh_config",
    "NL80211_ATTR_BEACON_INTERVAL": "uint32",
    "NL80211_ATTR_DTIM_PERIOD": "uint32",
    "NL80211_ATTR_TX_RATES": "tx_rates",
}


class nl80211msg(nl80211cmd):
    """pyroute2's nl80211 message with the mesh attributes decoded."""

    nla_map = tuple(
        (name, _NL80211_OVERRIDES.get(name, kind)) for name, kind in nl80211cmd.nla_map
    )

    class mesh_config(nla):
        prefix = "NL80211_MESHCONF_"
        nla_map = MESHCONF_ATTRS

    class tx_rates(nla):
        # NL80211_ATTR_TX_RATES: one nest per band, whose attribute type is the band (enum
        # nl80211_band: 2.4 GHz is 0), holding enum nl80211_tx_rate_attributes
        nla_map = (
            ("NL80211_BAND_2GHZ", "txrate"),
            ("NL80211_BAND_5GHZ", "txrate"),
        )

        class txrate(nla):
            prefix = "NL80211_TXRATE_"
            nla_map = (
                ("__NL80211_TXRATE_INVALID", "none"),
                ("NL80211_TXRATE_LEGACY", "cdata"),  # u8 rates in 500 kb/s units
                ("NL80211_TXRATE_HT", "cdata"),  # u8 MCS indexes; empty: none
                ("NL80211_TXRATE_VHT", "cdata"),  # struct nl80211_txrate_vht: u16 MCS mask per NSS (8)
            )

    class mpath_info(nla):
        # enum nl80211_mpath_info
        prefix = "NL80211_MPATH_INFO_"
        nla_map = (
            ("__NL80211_MPATH_INFO_INVALID", "none"),
            ("NL80211_MPATH_INFO_FRAME_QLEN", "uint32"),
            ("NL80211_MPATH_INFO_SN", "uint32"),
            ("NL80211_MPATH_INFO_METRIC", "uint32"),
            ("NL80211_MPATH_INFO_EXPTIME", "uint32"),
            ("NL80211_MPATH_INFO_FLAGS", "uint8"),
            ("NL80211_MPATH_INFO_DISCOVERY_TIMEOUT", "uint32"),
            ("NL80211_MPATH_INFO_DISCOVERY_RETRIES", "uint8"),
            ("NL80211_MPATH_INFO_HOP_COUNT", "uint8"),
            ("NL80211_MPATH_INFO_PATH_CHANGE", "uint32"),
        )


class FamilyMissing(MeshpayError):
    """The generic netlink family is not registered in this kernel (its name is the message;
    _genl says which module to load)."""


class GenlSocket(GenericNetlinkSocket):
    """A generic netlink socket bound to one family, optionally inside a named netns."""

    def __init__(self, family: str, msg_class: type[genlmsg], netns: str | None = None):
        super().__init__(use_socket=netns_socket(netns, NETLINK_GENERIC) if netns else None)
        self.msg_class = msg_class
        # pyroute2 logs a missing family at error level; we raise an error that says what to do
        self.asyncore.module_err_level = "debug"
        try:
            self.bind(family, msg_class)
        except NetlinkError as err:
            self.close()
            if err.code in (errno.ENOENT, errno.ENOTSUP):
                raise FamilyMissing(family) from err
            raise

    def request(self, cmd: int, attrs: list[list[Any]], dump: bool = False) -> list[genlmsg]:
        msg = self.msg_class()
        msg["cmd"] = cmd
        msg["version"] = 1
        msg["attrs"] = attrs
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        return list(self.nlm_request(msg, msg_type=self.prid, msg_flags=flags))


CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 4096, 16384, 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(netns: str, work: Callable[[], T]) -> T:
    """Run `work` in a short-lived thread that entered the named netns; the caller's is untouched.
    Sockets it creates, and /proc/sys/net files it opens, belong to that netns."""
    path = f"{NETNS_DIR}/{netns}"
    result: dict[str, object] = {}

    def enter_and_work() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = FileNotFoundError(errno.ENOENT, f"netns {netns!r} does not exist", path)
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                result["error"] = OSError(code, f"cannot enter netns {netns!r}: {os.strerror(code)}")
                return
            result["value"] = work()
        except OSError as err:
            result["error"] = err
        finally:
            os.close(fd)

    worker = threading.Thread(target=enter_and_work, name=f"netns-{netns}")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def create_netns(netns: str) -> None:
    """Create the named netns (/run/netns/<name>) as `ip netns add` does: a short-lived thread
    unshares its own network namespace and bind-mounts it there. pyroute2's netns.create forks
    the caller instead, and under a loaded TCG host that child did not answer in time."""
    if not netns or "/" in netns or netns in (".", ".."):
        raise ValueError(f"netns name {netns!r}: want a file name")
    path = f"{NETNS_DIR}/{netns}"
    os.makedirs(NETNS_DIR, exist_ok=True)
    # /run/netns must be a shared mount point, or the namespaces' bind mounts would not be seen
    # by other mount namespaces (`ip netns exec` makes one per command)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        if _libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None) != 0 \
                or _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot make {NETNS_DIR} a shared mount: {os.strerror(code)}")
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    result: dict[str, OSError] = {}

    def unshare_and_bind() -> None:
        if _libc.unshare(CLONE_NEWNET) != 0 or \
                _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None) != 0:
            code = ctypes.get_errno()
            result["error"] = OSError(code, f"cannot create netns {netns!r}: {os.strerror(code)}")

    worker = threading.Thread(target=unshare_and_bind, name=f"netns-add-{netns}")
    worker.start()
    worker.join()
    if "error" in result:
        os.unlink(path)
        raise result["error"]


def netns_socket(netns: str, proto: int) -> socket.socket:
    """A netlink socket created inside the named netns."""
    return in_netns(netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, proto))


def write_sysctl(netns: str, key: str, value: str) -> bool:
    """Set a net.* sysctl (`key` as in /proc/sys, e.g. net/ipv6/conf/mesh0/disable_ipv6) in the
    netns; False when that netns has no such sysctl (a kernel without IPv6, an interface gone)."""
    if not key.startswith("net/") or ".." in key.split("/"):
        raise ValueError(f"sysctl {key!r}: want a path under net/")

    def write() -> bool:
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        except FileNotFoundError:
            return False
        return True

    return in_netns(netns, write)


def iproute(netns: str | None = None) -> IPRoute:
    """rtnetlink, in the named netns or the caller's."""
    return IPRoute(use_socket=netns_socket(netns, NETLINK_ROUTE)) if netns else IPRoute()


@contextmanager
def hwsim_socket(netns: str | None = None) -> Iterator[GenlSocket]:
    with _genl(HWSIM_FAMILY, hwsimmsg, netns, HWSIM_MISSING) as sock:
        yield sock


@contextmanager
def nl80211_socket(netns: str | None = None) -> Iterator[GenlSocket]:
    missing = "nl80211 is not available: load cfg80211 (`modprobe cfg80211`)"
    with _genl(NL80211_FAMILY, nl80211msg, netns, missing) as sock:
        yield sock


@contextmanager
def _genl(family: str, msg_class: type[genlmsg], netns: str | None, missing: str) -> Iterator[GenlSocket]:
    try:
        sock = GenlSocket(family, msg_class, netns)
    except FamilyMissing:
        raise MeshpayError(missing) from None
    try:
        yield sock
    finally:
        sock.close()


# include/uapi/linux/neighbour.h (pyroute2 names the rest)
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT = 0x80
_NLMSGHDR = struct.Struct("=IHHII")
_NEIGH = struct.Struct("=IHHII BBHiHBB HH4s HH6s2x")  # nlmsghdr, ndmsg, NDA_DST, NDA_LLADDR (padded)


def neigh_replace_messages(ifindex: int, entries: dict[str, str]) -> bytes:
    """RTM_NEWNEIGH (create or replace, permanent) for each IPv4 address -> MAC of `entries`, as
    one buffer for one send: built with struct because pyroute2 spends ~0.2 ms of Python per
    message, seconds per node for a 250-node lab's table under TCG."""
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return b"".join(
        _NEIGH.pack(_NEIGH.size, RTM_NEWNEIGH, flags, seq, 0,
                    socket.AF_INET, 0, 0, ifindex, NUD_PERMANENT, 0, 0,
                    8, NDA_DST, socket.inet_aton(address),
                    10, NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
        for seq, (address, mac) in enumerate(entries.items(), 1)
    )


def send_with_acks(sock: socket.socket, buffer: bytes, count: int) -> None:
    """Send `count` netlink requests (each with NLM_F_ACK) in one buffer and read their acks;
    raises OSError with the kernel's errno for the first refused one."""
    sock.sendto(buffer, (0, 0))
    acked, first_error = 0, 0
    while acked < count:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if kind == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
                acked += 1
                first_error = first_error or -error
            offset += (length + 3) & ~3 or len(data)
    if first_error:
        raise OSError(first_error, os.strerror(first_error))
