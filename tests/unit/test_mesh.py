"""mesh.py message building and parsing, without a kernel."""

import pytest

from orchestrator.kernel import mesh
from orchestrator.kernel.netlink import NL80211_CMD_GET_MPATH, NL80211_CMD_GET_STATION, NL80211_CMD_JOIN_MESH, nl80211msg


def roundtrip(cmd: int, attrs: list) -> nl80211msg:
    msg = nl80211msg()
    msg["cmd"] = cmd
    msg["version"] = 1
    msg["attrs"] = attrs
    msg.encode()
    decoded = nl80211msg(bytes(msg.data))
    decoded.decode()
    return decoded


def test_mesh_params_map_to_nl80211_with_kernel_sizes() -> None:
    attrs = mesh.mesh_config_attrs({"mesh_fwding": 1, "mesh_path_refresh_time": 1000,
                                    "mesh_hwmp_preq_min_interval": 10})
    assert attrs == [["NL80211_MESHCONF_FORWARDING", 1], ["NL80211_MESHCONF_PATH_REFRESH_TIME", 1000],
                     ["NL80211_MESHCONF_HWMP_PREQ_MIN_INTERVAL", 10]]
    msg = nl80211msg()
    msg["cmd"] = NL80211_CMD_JOIN_MESH
    msg["version"] = 1
    msg["attrs"] = [["NL80211_ATTR_MESH_CONFIG", {"attrs": attrs}]]
    msg.encode()
    data = bytes(msg.data)
    # NL80211_ATTR_MESH_CONFIG is 35; FORWARDING (19) is a u8, PATH_REFRESH_TIME (9) a u32,
    # PREQ_MIN_INTERVAL (12) a u16: nla length 5, 8, 6
    assert int.from_bytes(data[22:24], "little") == 35
    inner = data[24:]
    assert inner[0:4] == (5).to_bytes(2, "little") + (19).to_bytes(2, "little")
    assert inner[8:12] == (8).to_bytes(2, "little") + (9).to_bytes(2, "little")
    assert inner[16:20] == (6).to_bytes(2, "little") + (12).to_bytes(2, "little")


@pytest.mark.parametrize("params", [{"mesh_fwd": 1}, {"mesh_fwding": 256}, {"mesh_ttl": -1},
                                    {"mesh_fwding": True}, {"mesh_fwding": "1"},
                                    # u16 and u8 on the wire, but the kernel takes 1..255 and 0..16
                                    {"mesh_confirm_timeout": 1000}, {"mesh_retry_timeout": 0},
                                    {"mesh_max_retries": 17}])
def test_bad_mesh_params_are_refused_with_the_reason(params: dict) -> None:
    with pytest.raises(ValueError, match="mesh param"):
        mesh.mesh_config_attrs(params)


def test_join_mesh_id_travels_as_raw_bytes() -> None:
    msg = roundtrip(NL80211_CMD_JOIN_MESH, [["NL80211_ATTR_MESH_ID", b"meshpay"]])
    assert msg.get_attr("NL80211_ATTR_MESH_ID") == b"meshpay"


def test_station_dump_entry_parses() -> None:
    msg = roundtrip(NL80211_CMD_GET_STATION, [
        ["NL80211_ATTR_MAC", "02:4d:50:00:00:02"],
        ["NL80211_ATTR_STA_INFO", {"attrs": [
            ["NL80211_STA_INFO_INACTIVE_TIME", 120],
            ["NL80211_STA_INFO_PLINK_STATE", 4],
            ["NL80211_STA_INFO_SIGNAL", -30],
            ["NL80211_STA_INFO_RX_BYTES64", 5000],
            ["NL80211_STA_INFO_TX_BYTES64", 7000],
        ]}],
    ])
    assert mesh.parse_station(msg) == mesh.Station("02:4d:50:00:00:02", "ESTAB", -30, 120, 5000, 7000)


def test_unknown_plink_state_is_named_not_dropped() -> None:
    msg = roundtrip(NL80211_CMD_GET_STATION, [
        ["NL80211_ATTR_MAC", "02:4d:50:00:00:02"],
        ["NL80211_ATTR_STA_INFO", {"attrs": [["NL80211_STA_INFO_PLINK_STATE", 9]]}],
    ])
    assert mesh.parse_station(msg).plink_state == "UNKNOWN(9)"


def test_mpath_dump_entry_parses_hop_count_and_flags() -> None:
    msg = roundtrip(NL80211_CMD_GET_MPATH, [
        ["NL80211_ATTR_MAC", "02:4d:50:00:00:04"],
        ["NL80211_ATTR_MPATH_NEXT_HOP", "02:4d:50:00:00:02"],
        ["NL80211_ATTR_MPATH_INFO", {"attrs": [
            ["NL80211_MPATH_INFO_SN", 3],
            ["NL80211_MPATH_INFO_METRIC", 24579],
            ["NL80211_MPATH_INFO_FLAGS", 1 | 4 | 16],
            ["NL80211_MPATH_INFO_HOP_COUNT", 3],
        ]}],
    ])
    assert mesh.parse_mpath(msg) == mesh.MeshPath(
        "02:4d:50:00:00:04", "02:4d:50:00:00:02", 3, 24579, 3, ("ACTIVE", "SN_VALID", "RESOLVED"))


def test_long_interface_names_are_refused() -> None:
    with pytest.raises(ValueError, match="15"):
        mesh.create_mesh_point("ns", 0, "mesh0-far-too-long")


def test_join_carries_beacon_interval_and_dtim_period_as_u32() -> None:
    attrs = mesh.join_attrs(3, "meshpay", 2412, {}, beacon_interval=2000, dtim_period=4)
    msg = roundtrip(NL80211_CMD_JOIN_MESH, attrs)
    assert msg.get_attr("NL80211_ATTR_BEACON_INTERVAL") == 2000
    assert msg.get_attr("NL80211_ATTR_DTIM_PERIOD") == 4
    data = bytes(msg.data)
    # NL80211_ATTR_BEACON_INTERVAL is 12, NL80211_ATTR_DTIM_PERIOD 13: u32 each (nla length 8)
    for kind, value in ((12, 2000), (13, 4)):
        at = data.index((8).to_bytes(2, "little") + kind.to_bytes(2, "little"))
        assert int.from_bytes(data[at + 4:at + 8], "little") == value


def test_join_without_timing_leaves_the_kernel_default() -> None:
    names = [name for name, _ in mesh.join_attrs(3, "meshpay", 2412, {})]
    assert names == ["NL80211_ATTR_IFINDEX", "NL80211_ATTR_MESH_ID", "NL80211_ATTR_WIPHY_FREQ"]


@pytest.mark.parametrize("timing", [{"beacon_interval": 9}, {"beacon_interval": 10001},
                                    {"dtim_period": 0}, {"dtim_period": 101}, {"beacon_interval": True}])
def test_bad_beacon_timing_is_refused_before_sending(timing: dict) -> None:
    with pytest.raises(ValueError, match="beacon interval|DTIM period"):
        mesh.join_attrs(3, "meshpay", 2412, {}, **timing)


def test_a_fixed_tx_rate_is_the_bands_only_legacy_rate_and_no_mcs() -> None:
    from orchestrator.kernel.netlink import NL80211_CMD_SET_TX_BITRATE_MASK

    data = bytes(roundtrip(NL80211_CMD_SET_TX_BITRATE_MASK, mesh.tx_rate_attrs(3, 2412, 11.0)).data)
    # NL80211_ATTR_TX_RATES (90) holds band 0 (2.4 GHz), which holds NL80211_TXRATE_LEGACY (1):
    # one rate, 22 in 500 kb/s units; and NL80211_TXRATE_HT (2) empty: no MCS either
    at = data.index((90).to_bytes(2, "little"))
    tx_rates = data[at - 2:at - 2 + int.from_bytes(data[at - 2:at], "little")]
    assert tx_rates[4:8] == (16).to_bytes(2, "little") + (0).to_bytes(2, "little")  # the 2.4 GHz nest
    assert tx_rates[8:16] == bytes([5, 0, 1, 0, 22, 0, 0, 0]) and tx_rates[16:20] == bytes([4, 0, 2, 0])
    five = bytes(roundtrip(NL80211_CMD_SET_TX_BITRATE_MASK, mesh.tx_rate_attrs(3, 5180, 6.0)).data)
    at = five.index((90).to_bytes(2, "little"))
    assert five[at + 4:at + 6] == (1).to_bytes(2, "little")  # band 1: 5 GHz
    assert bytes([5, 0, 1, 0, 12]) in five and (20).to_bytes(2, "little") + (3).to_bytes(2, "little") + bytes(16) in five


@pytest.mark.parametrize("freq, mbps", [(2412, 7.0), (2412, 65.0), (5180, 11.0), (5180, 1.0)])
def test_a_rate_the_band_lacks_is_refused_before_sending(freq: int, mbps: float) -> None:
    with pytest.raises(ValueError, match="not a legacy rate on"):
        mesh.tx_rate_attrs(3, freq, mbps)
