"""mac80211_hwsim radios, made and removed through the MAC80211_HWSIM generic netlink family.

A radio's name is its wiphy name, chosen by the caller and scoped to a lab: the plan names them
`mpl<lab id>-<node index>` (lab/plan.py radio_prefix: the registry's id, not the lab's name, keeps
them short), so two labs share a host and `down` removes only its own radios. Radios are created without a
default interface (HWSIM_ATTR_NO_VIF): mesh.py adds the one interface a node needs.

The kernel only lists and deletes radios whose phy lives in the asking socket's network
namespace. A node's phy lives in the node's netns, so listing and deleting also ask from inside
every named netns (/run/netns): `down` finds a lab's radios wherever their phys are.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from orchestrator.errors import MeshpayError
from orchestrator.kernel.netlink import (
    NETNS_DIR,
    HWSIM_CMD_DEL_RADIO,
    HWSIM_CMD_GET_RADIO,
    HWSIM_CMD_NEW_RADIO,
    NL80211_CMD_GET_WIPHY,
    NL80211_CMD_SET_WIPHY_NETNS,
    hwsim_socket,
    nl80211_socket,
)

log = logging.getLogger(__name__)

# cfg80211 silently renames a wiphy whose requested name is taken or too long; we refuse instead
MAX_NAME = 64


@dataclass(frozen=True)
class HwsimRadio:
    radio_id: int
    name: str
    phy_index: int
    mac: str  # "" when the phy is in another netns (only the root sysfs view reports it)
    netns: str | None = None  # the named netns holding the phy; None: the caller's namespace


def mac_for_name(name: str) -> str:
    """A stable, locally administered unicast MAC derived from the radio name."""
    digest = hashlib.sha256(name.encode()).digest()
    first = (digest[0] | 0x02) & 0xFE
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


def new_radio_attrs(name: str, mac: str, channels: int = 1) -> list[list[object]]:
    return [
        ["HWSIM_ATTR_RADIO_NAME", name],
        ["HWSIM_ATTR_PERM_ADDR", mac],
        ["HWSIM_ATTR_CHANNELS", channels],
        ["HWSIM_ATTR_NO_VIF", True],
    ]


# Pauses before asking the kernel again for a new radio's phy index.
PHY_LOOKUP_PAUSES_S = (0.05, 0.1, 0.2, 0.5, 1.0)


def create_radio(name: str, mac: str | None = None, netns: str | None = None) -> HwsimRadio:
    """Create a radio whose wiphy is named `name`, in the named netns (default: the caller's).

    The creating netns decides which frames hwsim relays between radios and to which medium
    process (its "netgroup"), even after the phy moves elsewhere."""
    if not name or len(name) >= MAX_NAME or "/" in name:
        raise ValueError(f"radio name {name!r}: want 1..{MAX_NAME - 1} characters, no '/'")
    mac = mac or mac_for_name(name)
    with hwsim_socket(netns) as sock:
        before = dict(_dump(sock))
        if name in before.values():
            raise MeshpayError(f"radio {name!r} already exists: `meshpay-lab down --lab LAB` for the lab that "
                               "made it (`meshpay-lab list` shows the labs)")
        try:
            sock.request(HWSIM_CMD_NEW_RADIO, new_radio_attrs(name, mac))
        except NetlinkError as err:
            # hwsim acks NEW_RADIO with the new radio id in the error field, which pyroute2
            # raises; what the kernel now lists is the real answer
            failure: NetlinkError | None = err
        else:
            failure = None
        new = {rid: rname for rid, rname in _dump(sock) if rid not in before}
        if name not in new.values():
            # cfg80211 gives a wiphy a default name when ours is taken (e.g. by a phy that
            # lives in another netns): remove that stray radio rather than leave it behind
            for rid in new:
                sock.request(HWSIM_CMD_DEL_RADIO, [["HWSIM_ATTR_RADIO_ID", rid]])
            reason = f"hwsim refused it: {failure}" if not new else "the name is taken"
            raise MeshpayError(f"could not create radio {name!r}: {reason}; is a lab with it still up? "
                               "`meshpay-lab list`, then `meshpay-lab down --lab LAB`")
    radio = _find(name, netns)
    for pause in PHY_LOOKUP_PAUSES_S:
        if radio is not None and radio.phy_index >= 0:
            break
        # a wiphy dump taken while other radios are created or moved (up makes 4 at once) can
        # come back without the new phy (seen once in 100 radios: phy -1, then move_phy failed
        # to encode it); asking again a moment later finds it
        time.sleep(pause)
        radio = _find(name, netns)
    if radio is None or radio.phy_index < 0:
        raise MeshpayError(f"radio {name!r} was created but the kernel does not list its phy: "
                           "`meshpay-lab doctor` checks the host")
    log.info("radio created", extra={"radio": name, "phy": radio.phy_index, "mac": radio.mac})
    return radio


def delete_radio(name: str, netns: str | None = None) -> None:
    """Delete a radio by name, wherever its phy is; a radio that is already gone is not an error.
    `netns` names where its phy is, when known, to skip looking."""
    if _delete_in(name, netns) or netns is not None:
        return
    for found in list_radios(name):
        if found.name == name:
            _delete_in(name, found.netns)


def sweep_radios(prefix: str) -> list[str]:
    """Delete every radio whose name starts with prefix (`down` after a crash). Returns names."""
    found = list_radios(prefix)
    for r in found:
        delete_radio(r.name, r.netns)
    return sorted(r.name for r in found)


def list_radios(prefix: str = "", netns: str | None = None) -> list[HwsimRadio]:
    """Radios named with prefix: in `netns` only if given, else here and in every named netns."""
    if netns is not None:
        return _list_in(prefix, netns)
    found = _list_in(prefix, None)
    for name in _named_netns():
        try:
            found += _list_in(prefix, name)
        except OSError as err:  # a netns removed while we look, or one we may not enter
            log.debug("netns skipped", extra={"netns": name, "error": str(err)})
    return found


def move_phy(phy_index: int, netns_path: str, from_netns: str | None = None) -> None:
    """Move a phy (and its interfaces) from `from_netns` (default: the caller's) into the network
    namespace bound at netns_path."""
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        with nl80211_socket(from_netns) as sock:
            sock.request(
                NL80211_CMD_SET_WIPHY_NETNS,
                [["NL80211_ATTR_WIPHY", phy_index], ["NL80211_ATTR_NETNS_FD", fd]],
            )
    except NetlinkError as err:
        raise MeshpayError(f"could not move phy{phy_index} into {netns_path}: {err}; "
                           "`meshpay-lab doctor` checks the host") from err
    finally:
        os.close(fd)
    log.info("phy moved", extra={"phy": phy_index, "netns": netns_path})


def _find(name: str, netns: str | None = None) -> HwsimRadio | None:
    return next((r for r in _list_in(name, netns) if r.name == name), None)


def _delete_in(name: str, netns: str | None) -> bool:
    """Delete from one namespace; False when the radio is not there."""
    with hwsim_socket(netns) as sock:
        try:
            sock.request(HWSIM_CMD_DEL_RADIO, [["HWSIM_ATTR_RADIO_NAME", name]])
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return False
            raise MeshpayError(f"could not delete radio {name!r}: {err}; `meshpay-lab doctor` checks the host") from err
    log.info("radio deleted", extra={"radio": name, "netns": netns})
    return True


def _list_in(prefix: str, netns: str | None) -> list[HwsimRadio]:
    with hwsim_socket(netns) as sock:
        found = [(rid, rname) for rid, rname in _dump(sock) if rname.startswith(prefix)]
    if not found:
        return []
    phys = _phy_indexes(netns)
    return [
        HwsimRadio(rid, rname, phys.get(rname, -1), _sysfs_mac(rname) if netns is None else "", netns)
        for rid, rname in sorted(found)
    ]


def _named_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _dump(sock) -> list[tuple[int, str]]:
    return [
        (msg.get_attr("HWSIM_ATTR_RADIO_ID"), msg.get_attr("HWSIM_ATTR_RADIO_NAME"))
        for msg in sock.request(HWSIM_CMD_GET_RADIO, [], dump=True)
    ]


def _phy_indexes(netns: str | None) -> dict[str, int]:
    with nl80211_socket(netns) as sock:
        wiphys = sock.request(NL80211_CMD_GET_WIPHY, [], dump=True)
    # split dumps repeat a wiphy over several messages; name and index are in each
    return {
        msg.get_attr("NL80211_ATTR_WIPHY_NAME"): msg.get_attr("NL80211_ATTR_WIPHY")
        for msg in wiphys
        if msg.get_attr("NL80211_ATTR_WIPHY_NAME") is not None
    }


def _sysfs_mac(phy_name: str) -> str:
    # nl80211 does not report a wiphy's permanent address; sysfs does (root namespace view)
    try:
        with open(f"/sys/class/ieee80211/{phy_name}/macaddress") as f:
            return f.read().strip()
    except OSError:
        return ""
