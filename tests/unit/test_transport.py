import asyncio
import struct

import pytest

from meshpay import wire
from meshpay.messages import AccountInfoRequest, ConfirmationAck, ErrorCode, ErrorReply
from meshpay.transport import Peer, TransportError, WireServer


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def echo_server(handler=None) -> WireServer:
    async def default(msg):
        if isinstance(msg, AccountInfoRequest) and msg.limit:
            await asyncio.sleep(msg.limit / 1000)
        return ConfirmationAck(msg.account, msg.sent_from, True)

    server = WireServer(handler or default, "127.0.0.1", 0)
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
