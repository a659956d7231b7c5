"""bench/bench_radio.py's pure parts: the 802.11 throughput arithmetic (against figures worked by
hand from IEEE 802.11-2020's OFDM/ERP timings), and its readers of iperf3 JSON, ping and iw output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_radio", ROOT / "bench" / "bench_radio.py")
bench_radio = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_radio)

R54, R11 = 11, 3  # absolute rate indexes of 54 Mb/s (OFDM) and 11 Mb/s (CCK)


def test_one_1500_byte_packet_at_54_mbps_on_2_4_ghz_by_hand() -> None:
    # DIFS 10 + 2*9 = 28; mean backoff 7.5 slots = 67.5; data: 1546 + 4 FCS bytes = 12,400 bits,
    # ceil((16 + 12400 + 6) / 216) = 58 symbols = 232 + 20 preamble + 6 extension = 258; SIFS 10;
    # ACK at 24 Mb/s: ceil((16 + 144 + 6) / 96) = 2 symbols = 8 + 26 = 34. Sum 397.5 µs.
    assert bench_radio.exchange_s(1500, R54, 2412) == pytest.approx(397.5e-6)


def test_5_ghz_has_no_signal_extension_and_a_longer_sifs() -> None:
    # DIFS 16 + 18 = 34; backoff 67.5; data 232 + 20 = 252; SIFS 16; ACK 8 + 20 = 28: 397.5 µs again
    assert bench_radio.exchange_s(1500, R54, 5180) == pytest.approx(397.5e-6)


def test_cck_uses_the_long_preamble_and_bits_over_rate() -> None:
    # data 192 + 12,400 / 11 = 1319.27; ACK at 11 Mb/s: 192 + 144 / 11 = 205.09; + 28 + 67.5 + 10
    assert bench_radio.exchange_s(1500, R11, 2412) == pytest.approx((28 + 67.5 + 192 + 12400 / 11 + 10 + 192 + 144 / 11) * 1e-6)


def test_theoretical_goodput_at_54_mbps() -> None:
    one = bench_radio.theoretical(R54, 2412, 1)
    assert one["udp_mbps"] == pytest.approx(1472 * 8 / 397.5, abs=0.01)  # 29.62 Mb/s
    # two 1500-byte segments and one 52-byte ACK (98 + 4 bytes: 4 symbols, 42 µs; 181.5 µs in all)
    assert one["tcp_mbps"] == pytest.approx(2 * 1448 * 8 / (2 * 397.5 + 181.5), abs=0.01)  # 23.72 Mb/s
    # an 84-byte echo request: 134 bytes on air, 6 symbols = 50 µs; 189.5 µs each way
    assert one["ping_rtt_ms"] == pytest.approx(2 * 0.1895, abs=1e-3)


def test_hops_of_a_line_take_turns() -> None:
    one, three = bench_radio.theoretical(R54, 2412, 1), bench_radio.theoretical(R54, 2412, 3)
    assert three["udp_mbps"] == pytest.approx(one["udp_mbps"] / 3, abs=0.01)
    assert three["ping_rtt_ms"] == pytest.approx(3 * one["ping_rtt_ms"], abs=1e-3)
    with pytest.raises(ValueError, match="hops must be 1 to 3"):
        bench_radio.theoretical(R54, 2412, 4)


def test_rate_index_of_legacy_rates_and_refusal_of_others() -> None:
    assert bench_radio.rate_index(54.0) == R54
    assert bench_radio.rate_index(11.0) == R11
    assert bench_radio.rate_index(6.0) == 4
    with pytest.raises(ValueError, match="not an 802.11b/g rate"):
        bench_radio.rate_index(65.0)  # HT MCS 7


def _iperf(received_bps: float, sent_bps: float, **extra: object) -> str:
    return json.dumps({"start": {}, "intervals": [], "end": {
        "sum_sent": {"seconds": 10.0, "bits_per_second": sent_bps, "bytes": 1, **({"retransmits": 3} if not extra else {})},
        "sum_received": {"seconds": 10.2, "bits_per_second": received_bps, "bytes": 1, **extra}}})


def test_parse_iperf3_tcp_takes_the_receivers_figure() -> None:
    assert bench_radio.parse_iperf3(_iperf(2.5e6, 2.7e6)) == {"mbps": 2.5, "sent_mbps": 2.7, "seconds": 10.2,
                                                             "retransmits": 3}


def test_parse_iperf3_udp_keeps_the_loss() -> None:
    row = bench_radio.parse_iperf3(_iperf(1e6, 30e6, lost_percent=96.666, jitter_ms=1.0))
    assert row == {"mbps": 1.0, "sent_mbps": 30.0, "seconds": 10.2, "lost_percent": 96.67}


def test_parse_iperf3_error_says_iperf3s_reason() -> None:
    with pytest.raises(ValueError, match="iperf3: unable to connect to server"):
        bench_radio.parse_iperf3(json.dumps({"start": {}, "intervals": [], "end": {},
                                             "error": "unable to connect to server: Connection refused"}))


def test_parse_ping_summary() -> None:
    text = ("PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data.\n\n--- 10.77.0.2 ping statistics ---\n"
            "20 packets transmitted, 19 received, 5% packet loss, time 3805ms\n"
            "rtt min/avg/max/mdev = 1.234/5.678/20.100/3.300 ms\n")
    assert bench_radio.parse_ping(text) == {"sent": 20, "received": 19,
                                            "rtt_ms": {"min": 1.234, "avg": 5.678, "max": 20.1, "mdev": 3.3}}


def test_parse_ping_with_nothing_back_and_with_no_summary() -> None:
    lost = "--- 10.77.0.4 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n"
    assert bench_radio.parse_ping(lost) == {"sent": 3, "received": 0, "rtt_ms": None}
    with pytest.raises(ValueError, match="no ping summary"):
        bench_radio.parse_ping("ping: connect: Network is unreachable\n")


def test_parse_tx_bitrates_per_station() -> None:
    dump = ("Station 02:00:00:00:01:00 (on mesh0)\n\tinactive time:\t120 ms\n\ttx bitrate:\t54.0 MBit/s\n"
            "\tmesh plink:\tESTAB\nStation 02:00:00:00:02:00 (on mesh0)\n\ttx bitrate:\t36.0 MBit/s\n")
    assert bench_radio.parse_tx_bitrates(dump) == {"02:00:00:00:01:00": 54.0, "02:00:00:00:02:00": 36.0}


def test_airtime_copy_of_the_topology_switches_it_on(tmp_path: Path) -> None:
    from orchestrator.lab.topology import load_topology

    shipped = load_topology(bench_radio.topology_for(False, tmp_path))
    assert shipped.medium.airtime is False and shipped.mesh.rate_mbps is None
    on = load_topology(bench_radio.topology_for(True, tmp_path))
    assert on.medium.airtime is True and on.name == "radio_air" and on.mesh.rate_mbps is None


def test_a_fixed_rate_copy_of_the_topology_holds_the_radios_to_it(tmp_path: Path) -> None:
    from orchestrator.lab.topology import load_topology

    slow = load_topology(bench_radio.topology_for(True, tmp_path, 11.0))
    assert (slow.name, slow.medium.airtime, slow.mesh.rate_mbps) == ("radio_air_11", True, 11.0)
    assert slow.mesh.params == load_topology(bench_radio.TOPOLOGY).mesh.params  # the rest as shipped
    cck = load_topology(bench_radio.topology_for(False, tmp_path, 5.5))
    assert (cck.name, cck.medium.airtime, cck.mesh.rate_mbps) == ("radio_5p5", False, 5.5)


def test_the_heard_pair_hears_each_other_and_the_hidden_pair_does_not() -> None:
    from orchestrator.lab.plan import make_plan
    from orchestrator.lab.topology import load_topology

    blocked = set(make_plan(load_topology(bench_radio.TOPOLOGY)).blocked)
    assert (bench_radio.HIDDEN_A, bench_radio.HIDDEN_B) in blocked
    assert tuple(sorted((bench_radio.HEARD_A, bench_radio.HEARD_B))) not in blocked
    for pair in ((bench_radio.HIDDEN_A, bench_radio.HIDDEN_RX), (bench_radio.HIDDEN_B, bench_radio.HIDDEN_RX),
                 (bench_radio.HEARD_A, bench_radio.HEARD_RX), (bench_radio.HEARD_B, bench_radio.HEARD_RX)):
        assert tuple(sorted(pair)) not in blocked


def test_the_bench_and_its_topology_agree_on_the_channel() -> None:
    from orchestrator.lab.topology import load_topology

    assert load_topology(bench_radio.TOPOLOGY).mesh.freq == bench_radio.FREQ_MHZ


def _pass(rate: object, collisions: int) -> dict:
    row = {"mbps": 1.0, "lost_percent": 5.0, "medium": {"collisions": collisions}}
    pair = {"medium": {"collisions": 9, "dropped_collision": 4, "unacked": 4}}
    return {"rate": rate, "tx_bitrate_mbps": {"line2": 54.0}, "tcp": {str(h): row for h in (1, 2, 3)},
            "udp": {str(h): row for h in (1, 2, 3)}, "ping": {str(h): {"rtt_ms": {"avg": 3.0}} for h in (1, 2, 3)},
            "hidden": {"alone": row, "both": {"hidden-a": row, "hidden-b": row, **pair},
                       "heard": {"heard-a": row, "heard-b": row, "medium": {"collisions": 0}}},
            "theoretical": {str(h): bench_radio.theoretical(R54, 2412, h) for h in (1, 2, 3)}}


def test_plot_and_summary_from_a_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = {"settings": [{"airtime": False, "passes": [_pass("minstrel", 0), _pass(6.0, 0)]},
                           {"airtime": True, "passes": [_pass("minstrel", 4), _pass(6.0, 40)]}]}
    assert bench_radio.plot(report, tmp_path / "r.png") is None
    assert (tmp_path / "r.png").stat().st_size > 10_000
    lines = bench_radio.summary_lines(report)
    assert len(lines) == 2 * 2 * 6
    assert "UDP 1.0 Mb/s (bound 29.63)" in lines[0]
    assert lines[4].endswith("hidden pair: a 1.0 Mb/s of None sent (5.0 % lost, kernel drops None) + b 1.0 Mb/s "
                             "of None sent (5.0 % lost, kernel drops None); 9 collisions, 4 frames lost to them, "
                             "4 unacknowledged")
    assert "heard pair: a 1.0 Mb/s" in lines[5] and "; 0 collisions" in lines[5]


def test_plot_and_summary_of_a_pairs_only_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    only_pairs = {k: v for k, v in _pass(11.0, 3).items() if k not in ("tcp", "udp", "ping", "tx_bitrate_mbps")}
    only_pairs.update(tcp={}, udp={}, ping={}, tx_bitrate_mbps={}, pair_tx_bitrate_mbps={"hidden-rx": 11.0})
    report = {"settings": [{"airtime": True, "passes": [only_pairs]}]}
    assert bench_radio.plot(report, tmp_path / "r.png") is None
    lines = bench_radio.summary_lines(report)
    assert len(lines) == 3 and all(line.startswith("airtime on  11.0 Mb/s ") for line in lines)


def test_plot_says_why_when_there_is_nothing_to_draw(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert bench_radio.plot({"settings": [{"airtime": False, "error": "boom"}]}, tmp_path / "r.png") == \
        "no PNG: no pass produced figures"
    failed = {"rate": 11.0, "error": "RuntimeError: up failed"}
    report = {"settings": [{"airtime": True, "passes": [failed]}]}
    assert bench_radio.plot(report, tmp_path / "r.png") == "no PNG: no pass produced figures"
    assert bench_radio.summary_lines(report) == ["airtime on  rate 11.0: error: RuntimeError: up failed"]


def test_parse_drops_from_ip_and_tc_json() -> None:
    link = json.dumps([{"ifname": "mesh0", "stats64": {"rx": {"dropped": 9}, "tx": {"bytes": 1, "dropped": 4}}}])
    qdisc = json.dumps([{"kind": "mq", "drops": 3}, {"kind": "fq_codel", "drops": 2}, {"kind": "fq_codel"}])
    assert bench_radio.parse_drops(link, qdisc) == {"tx_dropped": 4, "qdisc_dropped": 5}
    with pytest.raises(ValueError, match="not ip/tc JSON"):
        bench_radio.parse_drops("Device \"mesh0\" does not exist.", "[]")


def test_parse_udp_errors_from_proc_net_snmp() -> None:
    snmp = ("Ip: Forwarding DefaultTTL\nIp: 1 64\n"
            "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n"
            "Udp: 900 0 12 5 10 2 0 0 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n")
    assert bench_radio.parse_udp_errors(snmp) == {"udp_in_errors": 12, "udp_rcvbuf_errors": 10, "udp_sndbuf_errors": 2}
    with pytest.raises(ValueError, match="no Udp: lines"):
        bench_radio.parse_udp_errors("Ip: Forwarding\nIp: 1\n")


class _FakeLab:
    """Stands in for bench_radio.Lab: every run receives 1 Mb/s; station dumps say `sent_at`."""

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at

    def ping(self, src: str, dst: str, count: int) -> dict:
        return {"sent": count, "received": count, "rtt_ms": None}

    def iperf(self, src: str, dst: str, seconds: float, udp_mbps: float | None, port: int = 5201) -> dict:
        return {"mbps": 1.0, "lost_percent": 0.0}

    def medium(self) -> dict:
        return {}

    def tx_bitrates(self, node: str) -> dict[str, float]:
        return {"hidden-rx": self.sent_at}

    def drops(self, node: str) -> dict[str, int]:
        return {"tx_dropped": 0, "qdisc_dropped": 0}


def test_a_fixed_rate_pass_whose_radios_sent_at_another_rate_says_so() -> None:
    held = bench_radio.measure(_FakeLab(11.0), 1, 5, 5, 3, 11.0, ("pairs",))
    assert not held.get("rate_mismatch") and held["theoretical"][1] == bench_radio.theoretical(R11, 2412, 1)
    assert set(held["hidden"]) == {"alone", "both", "heard"}
    ignored = bench_radio.measure(_FakeLab(54.0), 1, 5, 5, 3, 11.0, ("pairs",))
    assert ignored["rate_mismatch"] and "asked for 11 Mb/s" in ignored["errors"][0]


def test_rates_option_takes_legacy_rates_only() -> None:
    assert bench_radio.rates_mbps_ok("6") == 6.0
    with pytest.raises(ValueError, match="neither `minstrel` nor a rate"):
        bench_radio.rates_mbps_ok("fast")
    with pytest.raises(ValueError, match="not an 802.11b/g rate"):
        bench_radio.rates_mbps_ok("7")
