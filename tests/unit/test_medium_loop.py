"""The medium's loop (Medium.run) against a stand-in kernel (a socket pair keeping message
boundaries): frames in, deliveries and statuses out, a delayed delivery sent when due, nothing
left behind when it stops."""

import socket
import threading
import time

from test_medium import FAMILY, MACS, air, decode, kernel_frame

from orchestrator.air.airspace import Impairment, mac_bytes, write_config
from orchestrator.medium import process as medium_process
from orchestrator.medium import hwsim


def test_the_loop_routes_frames_and_sends_delayed_deliveries_when_due(tmp_path):
    cfg = air().config
    write_config(tmp_path, cfg.__class__(cfg.freq, cfg.model, cfg.radios, cfg.loss,
                                         impairments={("n1", "n2"): Impairment(delay_ms=30)}))
    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    m = medium_process.Medium(tmp_path, lambda: 0.5, sock=ours, family=FAMILY)
    loop = threading.Thread(target=m.run, daemon=True)
    loop.start()
    try:
        sent_at = time.monotonic()
        kernel.send(bytes(kernel_frame(1, mac_bytes(MACS[2]))))  # n1 -> n2 over the delayed direction
        kernel.send(bytes(kernel_frame(0, mac_bytes(MACS[1]))))  # n0 -> n1, not impaired
        kernel.settimeout(5)
        got = []  # (seconds after sending, command, receiver or transmitter)
        while len(got) < 4:
            data = kernel.recv(1 << 16)
            for end, start in zip(medium_process.message_ends(data), [0, *medium_process.message_ends(data)]):
                cmd, attrs = decode(data[start:end])
                who = attrs.get(hwsim.A_RECEIVER) or attrs.get(hwsim.A_TRANSMITTER)
                got.append((time.monotonic() - sent_at, cmd, who))
    finally:
        m.stop = True
        loop.join(timeout=5)
    delivery_to_n2 = [t for t, cmd, who in got if cmd == hwsim.HWSIM_CMD_FRAME and who == mac_bytes(MACS[2])]
    status_n1 = [t for t, cmd, who in got if cmd == hwsim.HWSIM_CMD_TX_INFO_FRAME and who == mac_bytes(MACS[1])]
    assert len(delivery_to_n2) == 1 and delivery_to_n2[0] >= 0.03  # held for its delay
    assert status_n1 and status_n1[0] < delivery_to_n2[0]  # the sender heard its ACK at once
    assert {(cmd, who) for _, cmd, who in got} >= {(hwsim.HWSIM_CMD_FRAME, mac_bytes(MACS[1])),
                                                    (hwsim.HWSIM_CMD_TX_INFO_FRAME, mac_bytes(MACS[0]))}
    assert m.counters.delayed == 1 and m.counters.medium_lost == 0 and len(m.shaping) == 0
    assert (tmp_path / medium_process.STATS_FILE).exists()


def test_a_delivery_still_held_when_the_medium_stops_is_sent_not_lost(tmp_path):
    cfg = air().config
    write_config(tmp_path, cfg.__class__(cfg.freq, cfg.model, cfg.radios, cfg.loss,
                                         impairments={("n1", "n2"): Impairment(delay_ms=10_000)}))
    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    m = medium_process.Medium(tmp_path, lambda: 0.5, sock=ours, family=FAMILY)
    loop = threading.Thread(target=m.run, daemon=True)
    loop.start()
    kernel.send(bytes(kernel_frame(1, mac_bytes(MACS[2]))))
    kernel.settimeout(5)
    assert decode(kernel.recv(1 << 16))[0] == hwsim.HWSIM_CMD_TX_INFO_FRAME
    m.stop = True
    loop.join(timeout=5)
    cmd, attrs = decode(kernel.recv(1 << 16))
    assert cmd == hwsim.HWSIM_CMD_FRAME and attrs[hwsim.A_RECEIVER] == mac_bytes(MACS[2])
