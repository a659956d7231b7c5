"""The node's HTTP server loop (meshpay.server.tick_until): ticks until told to stop, and a
wake (a signal) makes it look at once instead of at the next tick."""

from __future__ import annotations

import asyncio

from meshpay.server import tick_until


def test_ticks_until_on_tick_says_stop() -> None:
    calls: list[int] = []

    async def on_tick(counter: int) -> bool:
        calls.append(counter)
        return len(calls) == 3

    asyncio.run(tick_until(on_tick, asyncio.Event(), 0.001))
    # counter 0 every time: uvicorn refreshes the Date header on every tick we make.
    assert calls == [0, 0, 0]


def test_a_wake_is_seen_without_waiting_for_the_tick() -> None:
    stop = False
    ticks = 0

    async def on_tick(counter: int) -> bool:
        nonlocal ticks
        ticks += 1
        return stop

    async def main() -> None:
        nonlocal stop
        wake = asyncio.Event()
        loop_task = asyncio.ensure_future(tick_until(on_tick, wake, 3600.0))
        await asyncio.sleep(0)
        stop = True
        wake.set()
        await loop_task  # with a one-hour interval this returns only because of the wake

    asyncio.run(main())
    assert ticks == 2


def test_stops_at_once_when_already_told() -> None:
    async def on_tick(counter: int) -> bool:
        return True

    asyncio.run(tick_until(on_tick, asyncio.Event(), 3600.0))


def test_leaves_no_timer_behind() -> None:
    async def main() -> None:
        n = 0

        async def on_tick(counter: int) -> bool:
            nonlocal n
            n += 1
            return n == 2

        wake = asyncio.Event()
        asyncio.get_running_loop().call_soon(wake.set)
        await tick_until(on_tick, wake, 3600.0)
        assert not wake.is_set()
        assert not asyncio.get_running_loop()._scheduled or all(h.cancelled() for h in asyncio.get_running_loop()._scheduled)

    asyncio.run(main())
