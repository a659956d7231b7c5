"""The binary wire over TCP with asyncio streams: a server for a node, a pool of kept-open
connections for talking to peers. Many requests share one connection (pipelining) and replies
are matched by request id. The server answers the requests of one connection in arrival order:
an authority's work is short and CPU-bound, so per-request tasks would only add overhead.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
from collections.abc import Awaitable, Callable

from meshpay import wire
from meshpay.messages import ErrorCode, ErrorReply, Message
from meshpay.ratelog import RefusalLog

log = logging.getLogger("meshpay.transport")

# A handler returns the reply message, or raw payload bytes: the latter exists only for the
# fault-injection switch that makes an authority answer garbage (MESHPAY_BYZANTINE=garbage).
Handler = Callable[[Message], Awaitable[Message | bytes]]


class TransportError(ConnectionError):
    """The peer could not be reached, hung up, timed out or sent bytes that are not the protocol.

    `reason` is one of REASONS: a word a script can count, where the message is for people.
    """

    def __init__(self, message: str, reason: str = "connection lost") -> None:
        super().__init__(message)
        self.reason = reason


class ConnectFailed(TransportError):
    """No connection could be made: unlike a timeout, the peer certainly did not get the request."""


# Why a request to a peer failed. "address not resolved": the kernel found no link-layer address
# for the peer (ARP gave up: EHOSTUNREACH); "no route": no IP route to it (ENETUNREACH); "connect
# timeout": SYNs went unanswered until the deadline (on a mesh: no HWMP path formed in time).
REASONS = ("connection refused", "address not resolved", "no route", "connect timeout", "no answer",
           "connection lost", "invalid frame")
_CONNECT_ERRNO_REASONS = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "address not resolved",
                          errno.ENETUNREACH: "no route"}
# Backoff between connection attempts that failed at once (refused, unreachable) within one
# request's deadline: a cold multi-hop path, or a peer restarting, is usually there a moment later.
CONNECT_RETRY_S = (0.2, 0.5, 1.0, 2.0)


# linux/tcp.h; Python's socket module does not name it. A connection whose stream is thin (fewer
# than 4 segments in flight) retransmits at a fixed RTO for its first 6 timeouts instead of
# doubling it (net/ipv4/tcp_timer.c, tcp_retransmit_timer; Documentation/networking/tcp-thin.rst).
# FastPay's requests are thin streams, and on a mesh a lost segment usually means a next hop just
# died: with doubling, a request sent over a relay that died resends 0.3, 0.9, 2.1, 4.5 s later,
# so after HWMP has found the other relay it still waits for the next retransmission.
TCP_THIN_LINEAR_TIMEOUTS = 16


def thin_stream(writer: asyncio.StreamWriter) -> None:
    """Ask the kernel for linear retransmission timeouts on this connection (best effort)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, 1)
        except OSError:
            pass  # a kernel without it: exponential backoff, slower healing, nothing else


# Once a frame has begun, the rest must follow promptly: a peer that trickles bytes (or stops
# mid-frame) would otherwise hold a connection and its buffer forever. Idle time between frames
# is not limited, because connections are kept open on purpose.
FRAME_TIMEOUT_S = 10.0
# More simultaneous connections than a lab has nodes, many times over; beyond it, someone is
# exhausting file descriptors, and new connections are closed at once.
MAX_CONNECTIONS = 512


async def read_payload(reader: asyncio.StreamReader, frame_timeout: float | None = None) -> bytes:
    head = await reader.readexactly(wire.LENGTH.size)
    (length,) = wire.LENGTH.unpack(head)
    if length > wire.MAX_FRAME:
        raise wire.WireError(f"frame of {length} bytes exceeds {wire.MAX_FRAME}")
    if frame_timeout is None:
        return await reader.readexactly(length)
    try:
        # asyncio.timeout sets one timer; wait_for would wrap the read in a task of its own, a
        # large share of an order's cost on the authority's wire path.
        async with asyncio.timeout(frame_timeout):
            return await reader.readexactly(length)
    except TimeoutError:
        raise wire.WireError(f"frame of {length} bytes not complete within {frame_timeout:g} s") from None


class WireServer:
    """Serves the wire: each connection's requests handled in arrival order.

    With `durable` (an authority's Store.flush), replies are held and released together once
    per turn of the event loop, after one call to `durable`: no reply (a vote above all) ever
    leaves before the state change it reports is committed, and the changes of every request
    handled in that turn share one commit (group commit)."""

    def __init__(self, handler: Handler, host: str, port: int, frame_timeout: float = FRAME_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, refusals: RefusalLog | None = None,
                 durable: Callable[[], None] | None = None) -> None:
        self.handler = handler
        self.durable = durable
        self._held: dict[asyncio.StreamWriter, list[bytes]] = {}
        # Counted always, logged at a bounded rate: hostile peers must not fill the disk.
        self.refusals = refusals or RefusalLog(log)
        self.host = host
        self.port = port
        self.frame_timeout = frame_timeout
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.refusals.flush()
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def _hold(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self._release)
        self._held.setdefault(writer, []).append(frame)

    def _release(self) -> None:
        held, self._held = self._held, {}
        try:
            assert self.durable is not None
            self.durable()
        except Exception as exc:  # nothing was committed: no reply may claim it was
            self.refusals.refused("commit_failed", "-", repr(exc), exc_info=True)
            for writer in held:
                writer.close()
            return
        for writer, frames in held.items():
            if not writer.is_closing():
                writer.write(b"".join(frames))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self.max_connections:
            self.refusals.refused("connection_refused", peer, f"already {len(self._connections)} connections")
            writer.close()
            return
        self._connections.add(writer)
        thin_stream(writer)
        try:
            while True:
                try:
                    payload = await read_payload(reader, self.frame_timeout)
                except asyncio.IncompleteReadError:
                    return
                try:
                    request_id, msg = wire.decode_payload(payload)
                except wire.WireError as exc:
                    # After a bad frame the stream can no longer be trusted to be in step: say why, hang up.
                    self.refusals.refused("bad_frame", peer, str(exc))
                    writer.write(wire.encode_frame(0, ErrorReply(ErrorCode.MALFORMED, str(exc))))
                    await writer.drain()
                    return
                try:
                    reply = await self.handler(msg)
                except Exception as exc:  # a handler bug must cost one reply, not the node
                    self.refusals.refused("handler_error", peer, repr(exc), exc_info=True)
                    reply = ErrorReply(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")
                if isinstance(reply, bytes):
                    frame = wire.LENGTH.pack(len(reply)) + reply
                else:
                    try:
                        frame = wire.encode_frame(request_id, reply)
                    except wire.WireError as exc:
                        self.refusals.refused("unencodable_reply", peer, str(exc))
                        frame = wire.encode_frame(request_id, ErrorReply(ErrorCode.INTERNAL, "reply too large to encode"))
                if self.durable is None:
                    writer.write(frame)
                else:
                    self._hold(writer, frame)
                await writer.drain()
        except wire.WireError as exc:  # oversized or stalled: nothing was decoded, nothing ran
            self.refusals.refused("bad_frame", peer, str(exc))
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()


class Peer:
    """One kept-open connection to a node, reconnected on demand, with pipelined requests.

    A request's timeout covers connecting too: a connection that is refused or unreachable is
    tried again (CONNECT_RETRY_S) until the deadline, and a SYN unanswered is left to the kernel's
    own retransmissions (1, 3, 7, 15 s) until then, never abandoned for a fresh one: across a
    busy 100-node mesh under emulation a SYN-ACK can take seconds to come back, and an attempt
    given up after 1 s (as tried in session 4) never connected there; 7% of transfers confirmed
    on random100, against 100% with the kernel's pace (bench/bench_scale.py).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._connect_lock = asyncio.Lock()

    async def _connect(self, deadline: float) -> asyncio.StreamWriter:
        """The open connection, or a new one made before `deadline` (event loop time)."""
        loop = asyncio.get_running_loop()
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            for attempt in itertools.count():
                left = max(0.01, deadline - loop.time())
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), left)
                    break
                except asyncio.TimeoutError:
                    raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: connect timeout "
                                        f"(no SYN-ACK in {left:.1f} s)", "connect timeout") from None
                except OSError as exc:
                    reason = _CONNECT_ERRNO_REASONS.get(exc.errno or 0, "connection refused")
                    pause = CONNECT_RETRY_S[min(attempt, len(CONNECT_RETRY_S) - 1)]
                    if loop.time() + pause >= deadline:
                        raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {reason} "
                                            f"({exc.strerror or exc}; {attempt + 1} attempts)", reason) from None
                    await asyncio.sleep(pause)
            thin_stream(writer)
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_replies(reader, writer))
            return writer

    async def _read_replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        error: Exception = TransportError(f"{self.host}:{self.port} closed the connection", "connection lost")
        try:
            while True:
                request_id, msg = wire.decode_payload(await read_payload(reader))
                future = self._pending.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(msg)
        except wire.WireError as exc:
            error = TransportError(f"{self.host}:{self.port} sent an invalid frame: {exc}", "invalid frame")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()

    async def request(self, msg: Message, timeout: float) -> Message:
        """Send `msg` and wait for its reply; `timeout` (seconds) covers connecting and answering."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        writer = await self._connect(deadline)
        request_id = next(self._ids) & 0xFFFFFFFF
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            writer.write(wire.encode_frame(request_id, msg))
            await writer.drain()
            return await asyncio.wait_for(future, max(0.01, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise TransportError(f"{self.host}:{self.port} did not answer within {timeout:g}s", "no answer") from None
        except TransportError:
            raise
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"{self.host}:{self.port}: {exc}", "connection lost") from None
        finally:
            self._pending.pop(request_id, None)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)


class PeerPool:
    def __init__(self) -> None:
        self._peers: dict[tuple[str, int], Peer] = {}

    def get(self, host: str, port: int) -> Peer:
        peer = self._peers.get((host, port))
        if peer is None:
            peer = self._peers[(host, port)] = Peer(host, port)
        return peer

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self._peers.values()), return_exceptions=True)
