"""Refusals are counted always and logged at a bounded rate (meshpay/ratelog.py)."""

import asyncio
import logging

from meshpay import wire
from meshpay.messages import ErrorCode, ErrorReply
from meshpay.metrics import Metrics
from meshpay.ratelog import RefusalLog
from meshpay.transport import WireServer, read_payload


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_counted_in_full_and_logged_in_at_most_two_lines_per_interval(caplog):
    clock = Clock()
    metrics = Metrics()
    refusals = RefusalLog(logging.getLogger("test.refusals"), metrics, interval=10.0, clock=clock)
    with caplog.at_level("WARNING", logger="test.refusals"):
        for i in range(100_000):  # 100 k hostile frames over 60 simulated seconds
            clock.now = i * 0.0006
            refusals.refused("bad_frame" if i % 3 else "connection_refused", "10.0.0.9:4242", "x" * 5000)
        refusals.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert refusals.counts == {"bad_frame": 66_666, "connection_refused": 33_334}
    assert len(lines) <= 2 * (60 / 10 + 1)
    assert all(len(line) < 600 for line in lines)  # the peer's 5000 bytes are cut
    summaries = [line for line in lines if "event=refusals_summary" in line]
    summed = sum(int(part.split(":")[1]) for line in summaries for part in line.split("counts=")[1].split()[0].split(","))
    assert summed + (len(lines) - len(summaries)) == 100_000  # every refusal is in a line or a sum
    assert 'meshpay_wire_refused_total{kind="bad_frame"} 66666' in metrics.render()


def test_one_refusal_alone_is_logged_at_once(caplog):
    refusals = RefusalLog(logging.getLogger("test.one"), interval=10.0, clock=Clock())
    with caplog.at_level("WARNING", logger="test.one"):
        refusals.refused("bad_frame", "peer", "unknown message type 99")
    assert len(caplog.records) == 1 and "unknown message type 99" in caplog.records[0].getMessage()


def test_bad_frame_flood_on_a_real_server_keeps_the_log_bounded(caplog):
    metrics = Metrics()
    flood = 400

    async def main() -> None:
        async def handler(msg):
            return msg

        server = WireServer(handler, "127.0.0.1", 0,
                            refusals=RefusalLog(logging.getLogger("meshpay.transport"), metrics, interval=60.0))
        await server.start()
        try:
            for _ in range(flood):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(wire.LENGTH.pack(6) + bytes([1, 99, 0, 0, 0, 1]))  # unknown message type
                _, reply = wire.decode_payload(await read_payload(reader))
                assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.MALFORMED
                writer.close()
        finally:
            await server.close()

    with caplog.at_level("WARNING", logger="meshpay.transport"):
        asyncio.run(main())
    lines = [r for r in caplog.records if r.name == "meshpay.transport"]
    assert len(lines) == 2  # the first at once, the summary of the other 399 on close
    assert "counts=bad_frame:399" in lines[1].getMessage()
    assert f'meshpay_wire_refused_total{{kind="bad_frame"}} {flood}' in metrics.render()
