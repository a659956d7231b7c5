"""A node's 802.11s mesh point, driven from inside the node's netns.

Everything here is nl80211 over pyroute2, with the mesh attributes pyroute2 leaves raw (mesh
config, mpath info, plink action) described in orchestrator/kernel/netlink.py; no `iw` is needed. Link
state and addresses go through rtnetlink (pyroute2 IPRoute) in the same netns.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from orchestrator.errors import MeshpayError
from orchestrator.kernel.netlink import (
    NETLINK_ROUTE,
    NL80211_CMD_DEL_INTERFACE,
    NL80211_CMD_GET_INTERFACE,
    NL80211_CMD_GET_MPATH,
    NL80211_CMD_GET_STATION,
    NL80211_CMD_JOIN_MESH,
    NL80211_CMD_NEW_INTERFACE,
    NL80211_CMD_SET_MESH_CONFIG,
    NL80211_CMD_SET_STATION,
    NL80211_CMD_SET_TX_BITRATE_MASK,
    NL80211_IFTYPE_MESH_POINT,
    NL80211_PLINK_ACTION_BLOCK,
    iproute,
    neigh_replace_messages,
    netns_socket,
    nl80211_socket,
    send_with_acks,
    write_sysctl,
)
from orchestrator.air import rates
from orchestrator.kernel import meshconf

log = logging.getLogger(__name__)

MAX_IFNAME = 15

# enum nl80211_plink_state
PLINK_STATES = ("LISTEN", "OPN_SNT", "OPN_RCVD", "CNF_RCVD", "ESTAB", "HOLDING", "BLOCKED")

# enum nl80211_mpath_flags
MPATH_FLAGS = {1: "ACTIVE", 2: "RESOLVING", 4: "SN_VALID", 8: "FIXED", 16: "RESOLVED"}

class StationUnknown(MeshpayError):
    """The kernel has no station entry for that peer (not heard yet, or just expired)."""


@dataclass(frozen=True)
class Station:
    mac: str
    plink_state: str  # one of PLINK_STATES, or "UNKNOWN(n)"
    signal_dbm: int | None
    inactive_ms: int
    rx_bytes: int
    tx_bytes: int
    # The link's security (NL80211_STA_INFO_STA_FLAGS): `authorized` means data may flow (on an
    # SAE mesh: the peer proved the password); `mfp` means management frames are protected.
    # None when the kernel did not report the flag.
    authorized: bool | None = None
    mfp: bool | None = None


@dataclass(frozen=True)
class MeshPath:
    destination: str
    next_hop: str
    hop_count: int | None  # None on kernels older than 5.x, which do not report it
    metric: int
    sn: int
    flags: tuple[str, ...]


def mesh_config_attrs(params: dict[str, int]) -> list[list[object]]:
    """`iw`-style mesh params as NL80211_ATTR_MESH_CONFIG attributes; ValueError (from
    meshconf.check_param) on an unknown name or a value the kernel would refuse."""
    return [[meshconf.check_param(name, value), value] for name, value in params.items()]


def create_mesh_point(
    netns: str, phy_index: int, ifname: str = "mesh0", mac: str | None = None,
    cidr: str | None = None,
) -> int:
    """Replace the phy's interfaces with one mesh point; bring it and lo up. Returns ifindex."""
    if not 0 < len(ifname) <= MAX_IFNAME:
        raise ValueError(f"interface name {ifname!r}: want 1..{MAX_IFNAME} characters")
    with nl80211_socket(netns) as sock:
        for msg in sock.request(NL80211_CMD_GET_INTERFACE, [], dump=True):
            if msg.get_attr("NL80211_ATTR_WIPHY") == phy_index:
                sock.request(NL80211_CMD_DEL_INTERFACE,
                             [["NL80211_ATTR_IFINDEX", msg.get_attr("NL80211_ATTR_IFINDEX")]])
        attrs = [
            ["NL80211_ATTR_WIPHY", phy_index],
            ["NL80211_ATTR_IFNAME", ifname],
            ["NL80211_ATTR_IFTYPE", NL80211_IFTYPE_MESH_POINT],
        ]
        if mac:
            attrs.append(["NL80211_ATTR_MAC", mac])
        try:
            (reply,) = sock.request(NL80211_CMD_NEW_INTERFACE, attrs)
        except NetlinkError as err:
            raise MeshpayError(f"could not add {ifname} on phy{phy_index} in {netns}: {err}; "
                               "`meshpay-lab doctor` checks the host") from err
        ifindex = reply.get_attr("NL80211_ATTR_IFINDEX")
    # Before it is up: IPv6 would send DAD, MLD and router solicitations, group-addressed frames
    # every mesh station re-broadcasts. Nothing in the lab speaks IPv6, and in a 50-node `up`
    # those were half the frames through the medium.
    write_sysctl(netns, f"net/ipv6/conf/{ifname}/disable_ipv6", "1")  # False: no IPv6 to silence
    with iproute(netns) as ipr:
        (lo,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=lo, state="up")
        if cidr:
            address, prefix = cidr.split("/")
            ipr.addr("add", index=ifindex, address=address, prefixlen=int(prefix))
        ipr.link("set", index=ifindex, state="up")
    log.info("mesh point created", extra={"netns": netns, "ifname": ifname, "phy": phy_index})
    return ifindex


def set_static_neighbours(netns: str, ifname: str, neighbours: dict[str, str]) -> None:
    """Make `neighbours` (IPv4 address -> MAC) permanent entries of the netns' neighbour table on
    `ifname` (`ip neigh replace ... nud permanent`): the kernel then never sends an ARP request
    for them, which on an 802.11s mesh every mesh point would re-broadcast (a flood per
    resolution). Permanent entries are exempt from the neighbour table's garbage collection
    thresholds (Linux 5.2 on), so a 250-node lab's 62,250 entries fit. Idempotent."""
    if not neighbours:
        return
    with iproute(netns) as ipr:
        (index,) = ipr.link_lookup(ifname=ifname)
    sock = netns_socket(netns, NETLINK_ROUTE)
    try:
        send_with_acks(sock, neigh_replace_messages(index, neighbours), len(neighbours))
    except OSError as err:
        raise MeshpayError(f"{netns}/{ifname}: the kernel refused a static neighbour entry: {err}; "
                           "`meshpay-lab doctor` checks the host") from err
    finally:
        sock.close()


def join_attrs(ifindex: int, mesh_id: str, freq_mhz: int, params: dict[str, int],
               beacon_interval: int | None = None, dtim_period: int | None = None) -> list[list[object]]:
    """NL80211_CMD_JOIN_MESH's attributes; bad params, beacon interval or DTIM period raise
    ValueError before anything is sent (the kernel would only say EINVAL)."""
    meshconf.check_join(beacon_interval, dtim_period)
    config = mesh_config_attrs(params)
    attrs: list[list[object]] = [
        ["NL80211_ATTR_IFINDEX", ifindex],
        ["NL80211_ATTR_MESH_ID", mesh_id.encode()],
        ["NL80211_ATTR_WIPHY_FREQ", freq_mhz],
    ]
    if config:
        attrs.append(["NL80211_ATTR_MESH_CONFIG", {"attrs": config}])
    if beacon_interval is not None:
        attrs.append(["NL80211_ATTR_BEACON_INTERVAL", beacon_interval])
    if dtim_period is not None:
        attrs.append(["NL80211_ATTR_DTIM_PERIOD", dtim_period])
    return attrs


def join_mesh(
    netns: str, ifname: str, mesh_id: str, freq_mhz: int, params: dict[str, int] | None = None,
    beacon_interval: int | None = None, dtim_period: int | None = None,
) -> None:
    """Join the mesh `mesh_id` on a 20 MHz no-HT channel, with the given mesh params, beacon
    interval (TU) and DTIM period (None: the kernel's 1000 TU and 2)."""
    with nl80211_socket(netns) as sock:
        attrs = join_attrs(_ifindex(sock, netns, ifname), mesh_id, freq_mhz, params or {},
                           beacon_interval, dtim_period)
        try:
            sock.request(NL80211_CMD_JOIN_MESH, attrs)
        except NetlinkError as err:
            raise MeshpayError(
                f"{netns}/{ifname} could not join mesh {mesh_id!r} on {freq_mhz} MHz: {err}; "
                "`meshpay-lab doctor` checks the host (does its kernel have mesh support?)"
            ) from err
    log.info("mesh joined", extra={"netns": netns, "mesh_id": mesh_id, "freq": freq_mhz})


def tx_rate_attrs(ifindex: int, freq_mhz: int, mbps: float) -> list[list[object]]:
    """NL80211_CMD_SET_TX_BITRATE_MASK's attributes holding every frame of the interface to the
    legacy rate `mbps` on the band of `freq_mhz`: that rate as the band's only legacy rate, no HT
    MCS (an empty list) and, on 5 GHz, where hwsim has VHT, no VHT MCS. ValueError for a rate the
    band does not have (checked here: the kernel would only say EINVAL)."""
    if mbps not in rates.band_rates(freq_mhz):
        raise ValueError(f"{mbps:g} Mb/s is not a legacy rate on {freq_mhz} MHz "
                         f"({', '.join(f'{r:g}' for r in rates.band_rates(freq_mhz))})")
    five = freq_mhz >= rates.FIVE_GHZ_MHZ
    band: list[list[object]] = [["NL80211_TXRATE_LEGACY", bytes([rates.units_500k(rates.index_of(mbps))])],
                                ["NL80211_TXRATE_HT", b""]]
    if five:
        band.append(["NL80211_TXRATE_VHT", bytes(16)])
    return [["NL80211_ATTR_IFINDEX", ifindex],
            ["NL80211_ATTR_TX_RATES", {"attrs": [["NL80211_BAND_5GHZ" if five else "NL80211_BAND_2GHZ",
                                                   {"attrs": band}]]}]]


def set_tx_rate(netns: str, ifname: str, freq_mhz: int, mbps: float) -> None:
    """Hold every frame the mesh interface sends (data, management, beacons) to one legacy rate
    (`iw dev IF set bitrates legacy-2.4 R ht-mcs-2.4`), instead of minstrel's choice.

    Call it after the interface is up and BEFORE it joins the mesh. On a joined interface mac80211
    refuses (EINVAL) a mask with none of the mesh's basic rates (ieee80211_set_bitrate_mask,
    net/mac80211/cfg.c line 3283 in Debian's 6.1.192), and a 2.4 GHz mesh joined without basic
    rates has 1 Mb/s as its only one (__cfg80211_join_mesh, net/wireless/mesh.c lines 174-193), so
    any mask without 1 Mb/s is refused there. Before the join the interface has no channel context
    and that check is skipped; joining leaves the mask as it is. The mesh's basic rate stays 1 Mb/s:
    frames mac80211 would send at the lowest basic rate (beacons, group and management frames) go
    at the lowest rate of the mask instead, as no basic rate is at or above it
    (rc_send_low_basicrate, net/mac80211/rate.c). errors.MeshpayError (exit 1) with the kernel's
    error otherwise."""
    with nl80211_socket(netns) as sock:
        attrs = tx_rate_attrs(_ifindex(sock, netns, ifname), freq_mhz, mbps)
        try:
            sock.request(NL80211_CMD_SET_TX_BITRATE_MASK, attrs)
        except NetlinkError as err:
            raise MeshpayError(f"{netns}/{ifname} refused a tx rate of {mbps:g} Mb/s: {err}"
                               + ("; joined already? it is set before the mesh join: `meshpay-lab down`, then `up`"
                                  if err.code == errno.EINVAL else "; `meshpay-lab doctor` checks the host")
                               ) from err
    log.info("tx rate fixed", extra={"netns": netns, "ifname": ifname, "mbps": mbps})


def set_mesh_params(netns: str, ifname: str, params: dict[str, int]) -> None:
    """Change mesh params of a joined mesh (wpa_supplicant joins with its own; ours come after).
    Raises NotJoined before the join, even for no params."""
    config = mesh_config_attrs(params)
    with nl80211_socket(netns) as sock:
        attrs = [["NL80211_ATTR_IFINDEX", _ifindex(sock, netns, ifname)],
                 ["NL80211_ATTR_MESH_CONFIG", {"attrs": config}]]
        try:
            sock.request(NL80211_CMD_SET_MESH_CONFIG, attrs)
        except NetlinkError as err:
            if err.code == errno.ENOLINK:
                raise NotJoined(
                    f"{netns}/{ifname} has not joined a mesh yet: wait, or see `meshpay-lab status`") from err
            raise MeshpayError(f"{netns}/{ifname} refused mesh params {params}: {err}; "
                               "`meshpay-lab doctor` checks the host") from err


class NotJoined(MeshpayError):
    """The interface is not (yet) part of a mesh."""


def block_peer(netns: str, ifname: str, peer_mac: str) -> None:
    """Block the peer link to peer_mac. The peer must already be a station (seen by beacons)."""
    with nl80211_socket(netns) as sock:
        attrs = [
            ["NL80211_ATTR_IFINDEX", _ifindex(sock, netns, ifname)],
            ["NL80211_ATTR_MAC", peer_mac],
            ["NL80211_ATTR_STA_PLINK_ACTION", NL80211_PLINK_ACTION_BLOCK],
        ]
        try:
            sock.request(NL80211_CMD_SET_STATION, attrs)
        except NetlinkError as err:
            if err.code == errno.ENOENT:
                raise StationUnknown(
                    f"{netns}/{ifname} has not seen {peer_mac} yet: wait until stations() lists it"
                ) from err
            raise MeshpayError(f"{netns}/{ifname} could not block {peer_mac}: {err}; `meshpay-lab peers` "
                               "shows the links") from err
    log.info("peer blocked", extra={"netns": netns, "peer": peer_mac})


def stations(netns: str, ifname: str) -> list[Station]:
    with nl80211_socket(netns) as sock:
        msgs = sock.request(NL80211_CMD_GET_STATION,
                            [["NL80211_ATTR_IFINDEX", _ifindex(sock, netns, ifname)]], dump=True)
    return [parse_station(msg) for msg in msgs]


def mpaths(netns: str, ifname: str) -> list[MeshPath]:
    with nl80211_socket(netns) as sock:
        msgs = sock.request(NL80211_CMD_GET_MPATH,
                            [["NL80211_ATTR_IFINDEX", _ifindex(sock, netns, ifname)]], dump=True)
    return [parse_mpath(msg) for msg in msgs]


def hop_counts(paths: list[MeshPath], peers: list[Station]) -> dict[str, int | None]:
    """Radio hops to each MAC this node knows a way to: its HWMP path's hop count, else 1 for an
    established peer (a neighbour the node has not sent to yet has no mesh path, but it is one
    hop all the same). None where the kernel has a path but does not report its hop count."""
    hops: dict[str, int | None] = {p.destination: p.hop_count for p in paths}
    hops.update({s.mac: 1 for s in peers if s.plink_state == "ESTAB" and s.mac not in hops})
    return hops


def hops_from(netns: str, ifname: str) -> dict[str, int | None]:
    """hop_counts() as the node in `netns` sees the mesh now."""
    return hop_counts(mpaths(netns, ifname), stations(netns, ifname))


def parse_station(msg) -> Station:
    info = msg.get_attr("NL80211_ATTR_STA_INFO")
    state = info.get_attr("NL80211_STA_INFO_PLINK_STATE")
    rx = info.get_attr("NL80211_STA_INFO_RX_BYTES64")
    tx = info.get_attr("NL80211_STA_INFO_TX_BYTES64")
    return Station(
        mac=msg.get_attr("NL80211_ATTR_MAC"),
        plink_state=_plink_name(state),
        signal_dbm=info.get_attr("NL80211_STA_INFO_SIGNAL"),
        inactive_ms=info.get_attr("NL80211_STA_INFO_INACTIVE_TIME") or 0,
        rx_bytes=rx if rx is not None else info.get_attr("NL80211_STA_INFO_RX_BYTES") or 0,
        tx_bytes=tx if tx is not None else info.get_attr("NL80211_STA_INFO_TX_BYTES") or 0,
        **_sta_flags(info.get_attr("NL80211_STA_INFO_STA_FLAGS")),
    )


def _sta_flags(flags: dict[str, bool] | None) -> dict[str, bool | None]:
    # pyroute2 decodes struct nl80211_sta_flag_update into {"AUTHORIZED": bool, "MFP": bool, ...}
    if not isinstance(flags, dict):
        return {"authorized": None, "mfp": None}
    return {"authorized": flags.get("AUTHORIZED"), "mfp": flags.get("MFP")}


def parse_mpath(msg) -> MeshPath:
    info = msg.get_attr("NL80211_ATTR_MPATH_INFO")
    flags = info.get_attr("NL80211_MPATH_INFO_FLAGS") or 0
    return MeshPath(
        destination=msg.get_attr("NL80211_ATTR_MAC"),
        next_hop=msg.get_attr("NL80211_ATTR_MPATH_NEXT_HOP"),
        hop_count=info.get_attr("NL80211_MPATH_INFO_HOP_COUNT"),
        metric=info.get_attr("NL80211_MPATH_INFO_METRIC") or 0,
        sn=info.get_attr("NL80211_MPATH_INFO_SN") or 0,
        flags=tuple(name for bit, name in MPATH_FLAGS.items() if flags & bit),
    )


def _plink_name(state: int | None) -> str:
    if state is not None and 0 <= state < len(PLINK_STATES):
        return PLINK_STATES[state]
    return f"UNKNOWN({state})"


def _ifindex(sock, netns: str, ifname: str) -> int:
    for msg in sock.request(NL80211_CMD_GET_INTERFACE, [], dump=True):
        if msg.get_attr("NL80211_ATTR_IFNAME") == ifname:
            return msg.get_attr("NL80211_ATTR_IFINDEX")
    raise MeshpayError(f"no wireless interface {ifname!r} in netns {netns}: the node lost its radio; "
                       "`meshpay-lab up` again makes what is missing")
