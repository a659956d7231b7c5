"""802.11s mesh parameters as nl80211 takes them, the one home of their names and ranges.

Each `iw set mesh_param` name, its NL80211_MESHCONF attribute and the range the kernel accepts,
and the beacon interval and DTIM period it accepts at join. Pure (no socket): the topology checks
a file against it at load (lab/topology.py) and kernel/mesh.py builds its attributes from it.
Errors: ValueError naming the parameter, the value and the range.
"""

from __future__ import annotations

from orchestrator.kernel.netlink import MESHCONF_ATTRS

# `iw set mesh_param` names -> nl80211 attribute, so topologies use the names people know
MESH_PARAMS: dict[str, str] = {
    "mesh_retry_timeout": "NL80211_MESHCONF_RETRY_TIMEOUT",
    "mesh_confirm_timeout": "NL80211_MESHCONF_CONFIRM_TIMEOUT",
    "mesh_holding_timeout": "NL80211_MESHCONF_HOLDING_TIMEOUT",
    "mesh_max_peer_links": "NL80211_MESHCONF_MAX_PEER_LINKS",
    "mesh_max_retries": "NL80211_MESHCONF_MAX_RETRIES",
    "mesh_ttl": "NL80211_MESHCONF_TTL",
    "mesh_element_ttl": "NL80211_MESHCONF_ELEMENT_TTL",
    "mesh_auto_open_plinks": "NL80211_MESHCONF_AUTO_OPEN_PLINKS",
    "mesh_hwmp_max_preq_retries": "NL80211_MESHCONF_HWMP_MAX_PREQ_RETRIES",
    "mesh_path_refresh_time": "NL80211_MESHCONF_PATH_REFRESH_TIME",
    "mesh_min_discovery_timeout": "NL80211_MESHCONF_MIN_DISCOVERY_TIMEOUT",
    "mesh_hwmp_active_path_timeout": "NL80211_MESHCONF_HWMP_ACTIVE_PATH_TIMEOUT",
    "mesh_hwmp_preq_min_interval": "NL80211_MESHCONF_HWMP_PREQ_MIN_INTERVAL",
    "mesh_hwmp_net_diameter_traversal_time": "NL80211_MESHCONF_HWMP_NET_DIAM_TRVS_TIME",
    "mesh_hwmp_rootmode": "NL80211_MESHCONF_HWMP_ROOTMODE",
    "mesh_hwmp_rann_interval": "NL80211_MESHCONF_HWMP_RANN_INTERVAL",
    "mesh_gate_announcements": "NL80211_MESHCONF_GATE_ANNOUNCEMENTS",
    "mesh_hwmp_perr_min_interval": "NL80211_MESHCONF_HWMP_PERR_MIN_INTERVAL",
    "mesh_fwding": "NL80211_MESHCONF_FORWARDING",
    "mesh_rssi_threshold": "NL80211_MESHCONF_RSSI_THRESHOLD",
    "mesh_sync_offset_max_neighbor": "NL80211_MESHCONF_SYNC_OFFSET_MAX_NEIGHBOR",
    "mesh_hwmp_active_path_to_root_timeout": "NL80211_MESHCONF_HWMP_PATH_TO_ROOT_TIMEOUT",
    "mesh_hwmp_root_interval": "NL80211_MESHCONF_HWMP_ROOT_INTERVAL",
    "mesh_hwmp_confirmation_interval": "NL80211_MESHCONF_HWMP_CONFIRMATION_INTERVAL",
    "mesh_power_mode": "NL80211_MESHCONF_POWER_MODE",
    "mesh_awake_window": "NL80211_MESHCONF_AWAKE_WINDOW",
    "mesh_plink_timeout": "NL80211_MESHCONF_PLINK_TIMEOUT",
    "mesh_connected_to_gate": "NL80211_MESHCONF_CONNECTED_TO_GATE",
    "mesh_nolearn": "NL80211_MESHCONF_NOLEARN",
    "mesh_connected_to_as": "NL80211_MESHCONF_CONNECTED_TO_AS",
}

# The ones a topology may set (`mesh.params`, `mesh.authority_params`): the HWMP, peering and
# TTL knobs the lab is built and tested with. The rest (power save, auto-open of peer links,
# gate/AS flags, sync, nolearn) change how nodes peer or forward in ways no lab here exercises.
TOPOLOGY_PARAMS = frozenset({
    "mesh_fwding", "mesh_hwmp_rootmode", "mesh_hwmp_active_path_timeout", "mesh_hwmp_preq_min_interval",
    "mesh_hwmp_net_diameter_traversal_time", "mesh_hwmp_max_preq_retries", "mesh_hwmp_root_interval",
    "mesh_hwmp_active_path_to_root_timeout", "mesh_min_discovery_timeout", "mesh_hwmp_rann_interval",
    "mesh_path_refresh_time", "mesh_element_ttl", "mesh_ttl", "mesh_retry_timeout", "mesh_confirm_timeout",
    "mesh_holding_timeout", "mesh_max_retries", "mesh_max_peer_links", "mesh_rssi_threshold",
    "mesh_plink_timeout", "mesh_gate_announcements",
})

_ATTR_KIND = dict(MESHCONF_ATTRS)
# Params the kernel holds to a narrower range than their size: net/wireless/nl80211.c,
# nl80211_meshconf_params_policy (NLA_POLICY_RANGE/MIN/MAX) and the extra checks in
# nl80211_parse_mesh_config (the u32 timeouts to 1..65535). Outside it the join fails with EINVAL.
_KERNEL_RANGES = {
    "mesh_retry_timeout": (1, 255), "mesh_confirm_timeout": (1, 255), "mesh_holding_timeout": (1, 255),
    "mesh_max_peer_links": (0, 255), "mesh_max_retries": (0, 16), "mesh_ttl": (1, 255),
    "mesh_element_ttl": (1, 255), "mesh_auto_open_plinks": (0, 1), "mesh_sync_offset_max_neighbor": (1, 255),
    "mesh_path_refresh_time": (1, 65535), "mesh_min_discovery_timeout": (1, 65535),
    "mesh_hwmp_active_path_timeout": (1, 65535), "mesh_hwmp_preq_min_interval": (1, 65535),
    "mesh_hwmp_perr_min_interval": (1, 65535), "mesh_hwmp_net_diameter_traversal_time": (1, 65535),
    "mesh_hwmp_rootmode": (0, 4), "mesh_hwmp_rann_interval": (1, 65535), "mesh_gate_announcements": (0, 1),
    "mesh_fwding": (0, 1), "mesh_rssi_threshold": (-255, 0),
    "mesh_hwmp_active_path_to_root_timeout": (1, 65535), "mesh_hwmp_root_interval": (1, 65535),
    "mesh_hwmp_confirmation_interval": (1, 65535), "mesh_power_mode": (1, 3),  # ACTIVE..DEEP_SLEEP
    "mesh_connected_to_gate": (0, 1), "mesh_nolearn": (0, 1), "mesh_connected_to_as": (0, 1),
}
_RANGES = {"uint8": (0, 0xFF), "uint16": (0, 0xFFFF), "uint32": (0, 0xFFFFFFFF),
           "int32": (-(2**31), 2**31 - 1)}

# What cfg80211 accepts at mesh join (cfg80211_validate_beacon_int, nl80211_join_mesh in 6.1).
BEACON_INTERVAL_TU = (10, 10000)
DTIM_PERIOD = (1, 100)


def _want_int(what: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}{value!r}: want an integer in {low}..{high}")


def check_param(name: str, value: object) -> str:
    """The NL80211_MESHCONF attribute of mesh param `name`; ValueError if the name is unknown or
    `value` is not an integer in the kernel's range for it."""
    attr = MESH_PARAMS.get(name)
    if attr is None:
        raise ValueError(f"unknown mesh param {name!r}; known: {', '.join(sorted(MESH_PARAMS))}")
    low, high = _KERNEL_RANGES.get(name) or _RANGES[_ATTR_KIND[attr]]
    _want_int(f"mesh param {name}=", value, low, high)
    return attr


def check_join(beacon_interval: int | None, dtim_period: int | None) -> None:
    """ValueError unless each given value is in what cfg80211 accepts at join (None: not given)."""
    for what, value, (low, high) in (("beacon interval (TU) ", beacon_interval, BEACON_INTERVAL_TU),
                                     ("DTIM period ", dtim_period, DTIM_PERIOD)):
        if value is not None:
            _want_int(what, value, low, high)
