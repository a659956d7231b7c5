import asyncio
import struct

import pytest

from meshpay import wire
from meshpay.messages import AccountInfoRequest, ConfirmationAck, ErrorCode, ErrorReply
from meshpay.localnet import free_port
from meshpay.transport import ConnectFailed, Peer, TransportError, WireServer


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def echo_handler(msg):
    if isinstance(msg, AccountInfoRequest) and msg.limit:
        await asyncio.sleep(msg.limit / 1000)
    return ConfirmationAck(msg.account, msg.sent_from, True)


async def echo_server(handler=None) -> WireServer:
    server = WireServer(handler or echo_handler, "127.0.0.1", 0)
    await server.start()
    return server


def test_request_reply_and_pipelining():
    async def main():
        server = await echo_server()
        peer = Peer("127.0.0.1", server.port)
        # Many requests in flight on one connection, each caller gets its own reply.
        replies = await asyncio.gather(*(peer.request(AccountInfoRequest(b"b" * 32, i, 0, i % 3), 5) for i in range(50)))
        assert [r.sequence for r in replies] == list(range(50))
        await peer.close()
        await server.close()

    run(main())


def test_bad_frames_get_a_clear_error_and_a_hang_up():
    async def main():
        server = await echo_server()
        for junk in (b"\x00\x00\x00\x03abc", struct.pack(">I", wire.MAX_FRAME + 1), struct.pack(">I", 6) + bytes([9, 1, 0, 0, 0, 1])):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(junk)
            await writer.drain()
            data = await reader.read()
            writer.close()
            if data:
                _, reply = wire.decode_frame(data)
                assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.MALFORMED
        # The server is still fine.
        peer = Peer("127.0.0.1", server.port)
        assert isinstance(await peer.request(AccountInfoRequest(b"a" * 32), 5), ConfirmationAck)
        await peer.close()
        await server.close()

    run(main())


def test_garbage_reply_is_a_transport_error():
    async def garbage(msg):
        return b"\xff" * 10

    async def main():
        server = await echo_server(garbage)
        peer = Peer("127.0.0.1", server.port)
        with pytest.raises(TransportError, match="invalid frame"):
            await peer.request(AccountInfoRequest(b"a" * 32), 5)
        await peer.close()
        await server.close()

    run(main())


def test_handler_crash_costs_one_reply_not_the_connection():
    async def broken(msg):
        if msg.sent_from == 1:
            raise RuntimeError("bug")
        return ConfirmationAck(msg.account, msg.sent_from, False)

    async def main():
        server = await echo_server(broken)
        peer = Peer("127.0.0.1", server.port)
        reply = await peer.request(AccountInfoRequest(b"a" * 32, 1), 5)
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.INTERNAL
        assert isinstance(await peer.request(AccountInfoRequest(b"a" * 32, 2), 5), ConfirmationAck)
        await peer.close()
        await server.close()

    run(main())


def test_timeouts_unreachable_peers_and_reconnect():
    async def main():
        server = await echo_server()
        peer = Peer("127.0.0.1", server.port)
        with pytest.raises(TransportError, match="did not answer"):
            await peer.request(AccountInfoRequest(b"a" * 32, 0, 0, 2000), 0.1)
        port = server.port
        await server.close()
        with pytest.raises(TransportError):
            await peer.request(AccountInfoRequest(b"a" * 32), 1)
        server = WireServer(server.handler, "127.0.0.1", port)
        await server.start()
        assert isinstance(await peer.request(AccountInfoRequest(b"a" * 32), 5), ConfirmationAck)
        await peer.close()
        await server.close()

    run(main())


def test_a_stalled_frame_is_dropped_with_a_logged_reason(caplog):
    async def main():
        calls = []

        async def handler(msg):
            calls.append(msg)
            return msg

        server = WireServer(handler, "127.0.0.1", 0, frame_timeout=0.3)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        frame = wire.encode_frame(1, AccountInfoRequest(b"a" * 32, 0, 0, 1))
        writer.write(frame[:-3])  # a frame begun, never finished
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # hung up on, no reply
        assert calls == []
        writer.close()
        await server.close()

    with caplog.at_level("WARNING", logger="meshpay.transport"):
        run(main())
    assert "not complete within 0.3 s" in caplog.text


def test_connections_beyond_the_limit_are_closed_at_once(caplog):
    async def main():
        server = await echo_server()
        server.max_connections = 2
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 3) == b""
        for _, w in held + [(reader, writer)]:
            w.close()
        await server.close()

    with caplog.at_level("WARNING", logger="meshpay.transport"):
        run(main())
    assert "event=connection_refused" in caplog.text


def test_a_connection_refused_is_tried_again_until_the_deadline():
    # A cold multi-hop path or a restarting peer: the listener appears a moment after the request.
    async def main():
        port = free_port("127.0.0.1")
        peer = Peer("127.0.0.1", port)
        server = WireServer(echo_handler, "127.0.0.1", port)

        async def start_later():
            await asyncio.sleep(0.6)
            await server.start()

        starter = asyncio.create_task(start_later())
        assert isinstance(await peer.request(AccountInfoRequest(b"a" * 32), 5), ConfirmationAck)
        await starter
        await peer.close()
        await server.close()

    run(main())


def test_a_peer_that_never_listens_fails_with_its_reason_after_the_deadline():
    async def main():
        peer = Peer("127.0.0.1", free_port("127.0.0.1"))
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ConnectFailed) as info:
            await peer.request(AccountInfoRequest(b"a" * 32), 1.0)
        assert info.value.reason == "connection refused"
        assert "attempts" in str(info.value)
        # It kept trying for (most of) the deadline instead of giving up at the first refusal.
        assert loop.time() - start >= 0.5

    run(main())


def test_both_ends_of_a_connection_ask_for_linear_retransmission_timeouts():
    """A request resent over a mesh path that just healed must not wait out TCP's doubled RTO."""
    import socket

    from meshpay.transport import TCP_THIN_LINEAR_TIMEOUTS

    async def main():
        server = await echo_server()
        peer = Peer("127.0.0.1", server.port)
        await peer.request(AccountInfoRequest(b"b" * 32, 0, 0, 0), 5)
        client_sock = peer._writer.get_extra_info("socket")
        (server_writer,) = server._connections
        server_sock = server_writer.get_extra_info("socket")
        options = [s.getsockopt(socket.IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS) for s in (client_sock, server_sock)]
        await peer.close()
        await server.close()
        return options

    assert run(main()) == [1, 1]


def test_a_connection_whose_syn_ack_takes_seconds_is_not_abandoned(monkeypatch):
    # Across a busy 100-node mesh under emulation a SYN-ACK can take seconds: an attempt given up
    # early for a fresh one never connects there (a SYN storm instead of a connection).
    from meshpay import transport

    real_open = asyncio.open_connection
    calls = []

    async def slow_syn_ack(host, port):
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(2.5)
        return await real_open(host, port)

    async def main():
        server = await echo_server()
        monkeypatch.setattr(transport.asyncio, "open_connection", slow_syn_ack)
        peer = Peer("127.0.0.1", server.port)
        reply = await peer.request(AccountInfoRequest(b"a" * 32), 6)
        await peer.close()
        await server.close()
        return reply

    assert isinstance(run(main()), ConfirmationAck)
    assert len(calls) == 1


def test_a_peer_whose_syns_all_go_unanswered_fails_with_connect_timeout_at_the_deadline(monkeypatch):
    from meshpay import transport

    async def never(host, port):
        await asyncio.sleep(3600)

    async def main():
        monkeypatch.setattr(transport.asyncio, "open_connection", never)
        peer = Peer("127.0.0.1", 9)
        with pytest.raises(ConnectFailed) as info:
            await peer.request(AccountInfoRequest(b"a" * 32), 2.5)
        return info.value

    error = run(main())
    assert error.reason == "connect timeout"
    assert "no SYN-ACK in 2.5 s" in str(error)
