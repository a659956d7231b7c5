"""The one fan-out to the authorities: ask every member at once, stop at a quorum by weight.

FastPay's client talks to the committee in one way (Baudet, Sonnino, Danezis 2020, "FastPay:
High-Performance Byzantine Fault Tolerant Settlement", section 3, and the client algorithms of
section 4; `communicate_with_quorum` in the reference client): send the same request to every
authority concurrently, count the weight of the good replies as they come, and go on as soon as
they reach the quorum 2f+1 (or as soon as the others can no longer make it up). The slow
authorities are not waited for, but their requests are not dropped either: a confirmation that
reaches them later is one fewer authority to bring up to date. This module is that pattern and
nothing else: it knows no sockets and no messages, only a coroutine function per member.

Used by the client for votes, confirmations, its account sync and quorum reads
(client_service.py), and by an authority's catch-up rounds (catchup.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger("meshpay.quorum")

M = TypeVar("M")
T = TypeVar("T")

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]

# Member tasks the helper started itself (no `spawn` given): the event loop holds tasks only
# weakly, so a straggler left running past the return needs a strong reference somewhere.
_OWN_TASKS: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What one member's call came to: its return value, or the exception it raised (never
    both), and how long it took in milliseconds, rounded to the microsecond."""

    value: T | None
    error: Exception | None
    ms: float


class Gathered(Generic[M, T]):
    """The fan-out as it stood when `communicate_with_quorum` returned, and as it goes on.

    `outcomes` maps each member that has finished to its Outcome, in the order they finished;
    members still running when the call returned (the stragglers) add theirs when they finish.
    `tasks` maps every member to the task running its call.
    """

    def __init__(self, members: tuple[M, ...], weight: Callable[[M], int], counts: Callable[[T], bool],
                 quorum: int | None) -> None:
        self.members = members
        self.quorum = quorum
        self.outcomes: dict[M, Outcome[T]] = {}
        self.tasks: dict[M, asyncio.Task[None]] = {}
        self._weight = weight
        self._counts = counts
        self._total = sum(weight(m) for m in members)

    def _good(self, member: M) -> bool:
        outcome = self.outcomes.get(member)
        return outcome is not None and outcome.error is None and self._counts(outcome.value)  # type: ignore[arg-type]

    @property
    def weight(self) -> int:
        """Weight of the members whose reply counts (returned a value `counts` accepts), so far."""
        return sum(self._weight(m) for m in self.members if self._good(m))

    @property
    def reached(self) -> bool:
        """The replies that count weigh at least `quorum` (with `quorum` None: every member's counts)."""
        return self.weight >= (self._total if self.quorum is None else self.quorum)

    @property
    def impossible(self) -> bool:
        """The members that finished without a reply that counts weigh so much that the rest can
        no longer make up the quorum (total weight - their weight < quorum). Never with `quorum`
        None: every member is to be heard out, whatever the others said."""
        if self.quorum is None:
            return False
        against = sum(self._weight(m) for m in self.outcomes if not self._good(m))
        return self._total - against < self.quorum

    @property
    def done(self) -> bool:
        """Every member's call has finished."""
        return all(t.done() for t in self.tasks.values())

    def values(self) -> dict[M, T]:
        """The members that returned a value, and the value, in the order they finished."""
        return {m: o.value for m, o in self.outcomes.items() if o.error is None}  # type: ignore[misc]

    def raise_first_error(self) -> None:
        """Raise the first exception a member raised, in the order they finished (what
        asyncio.gather would have raised), if any did."""
        for outcome in self.outcomes.values():
            if outcome.error is not None:
                raise outcome.error

    async def wait_rest(self, timeout: float | None) -> None:
        """Wait until every member has finished, or `timeout` seconds (None: no limit); members
        still running then keep running."""
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)


async def communicate_with_quorum(
    members: Iterable[M],
    call: Callable[[M], Awaitable[T]],
    *,
    quorum: int | None = None,
    weight: Callable[[M], int] = lambda _member: 1,
    counts: Callable[[T], bool] = lambda _value: True,
    timeout: float | None = None,
    stop_when_impossible: bool = True,
    spawn: Spawn | None = None,
) -> Gathered[M, T]:
    """Run `call(member)` for every member at once; return once a quorum by weight has answered.

    Shapes: `members` are hashable (AuthorityInfo, LogSource); `call(member)` returns a value
    of type T or raises; `weight(member)` is the member's voting weight (an int, 1 each by
    default); a reply counts toward the quorum when the call returned a value and
    `counts(value)` is true (by default any value does). `quorum` is the weight to reach, the
    committee's 2f+1 (Committee.quorum_threshold); None means every member's weight, i.e. hear
    every member out, as a read of every authority's view or a catch-up round from every peer does.

    Returns the Gathered fan-out as soon as the first of these holds:
      - the replies that count weigh at least `quorum` (the paper's quorum, section 3);
      - `stop_when_impossible` and the members that finished without such a reply weigh more
        than the total minus `quorum`, so the quorum cannot be reached (FastPay returns here);
      - every member has finished;
      - `timeout` seconds (None: no limit) have passed since the call.

    Members still running at the return keep running in the background (a confirmation goes on
    being delivered), and record their Outcome when they finish; the caller may wait for them
    with `Gathered.wait_rest`. An exception raised by a member's call is recorded in its
    Outcome (and logged at INFO), never raised here: the caller judges (`Gathered.raise_first_error`
    gives asyncio.gather's behaviour). Raises nothing itself but CancelledError.

    `spawn` starts each member's task; pass the owner's tracked spawn (a service whose close()
    cancels what it started) so the stragglers belong to it: they then outlive a cancellation of
    this call too. Without it the helper owns the tasks, and cancels those still running if
    this call is cancelled, as asyncio.gather does.
    """
    gathered: Gathered[M, T] = Gathered(tuple(members), weight, counts, quorum)

    async def one(member: M) -> None:
        start = time.perf_counter()
        try:
            value = await call(member)
        except Exception as exc:  # recorded for the caller to judge: one member's fault is not ours
            # One line, no traceback: an unreachable authority is routine on a mesh, and the
            # caller decides whether the exception matters (raise_first_error).
            log.info("event=quorum_member_failed member=%s error=%r", getattr(member, "name", member), exc)
            gathered.outcomes[member] = Outcome(None, exc, round((time.perf_counter() - start) * 1000, 3))
            return
        gathered.outcomes[member] = Outcome(value, None, round((time.perf_counter() - start) * 1000, 3))

    for member in gathered.members:
        if spawn is None:
            task = asyncio.create_task(one(member))
            _OWN_TASKS.add(task)
            task.add_done_callback(_OWN_TASKS.discard)
        else:
            task = spawn(one(member))
        gathered.tasks[member] = task

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        while not (gathered.reached or gathered.done or (stop_when_impossible and gathered.impossible)):
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            pending = [t for t in gathered.tasks.values() if not t.done()]
            await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        if spawn is None:
            running = [t for t in gathered.tasks.values() if not t.done()]
            for task in running:
                task.cancel()
            if running:  # like gather: the cancelled call returns only once its members have stopped
                await asyncio.wait(running)
        raise
    return gathered
