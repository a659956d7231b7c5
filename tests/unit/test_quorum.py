"""The quorum fan-out (meshpay/quorum.py) on fake members: no sockets, the order of events set by
asyncio Events the tests release, never by how long something takes."""

import asyncio

import pytest

from meshpay.quorum import communicate_with_quorum


class Fake:
    """Members whose calls answer `value` (or raise `error`) once their gate is opened; a member
    without a gate answers at once."""

    def __init__(self, answers: dict[str, object], gated: tuple[str, ...] = ()) -> None:
        self.answers = answers
        self.gates = {name: asyncio.Event() for name in gated}
        self.started: list[str] = []
        self.finished: list[str] = []

    def open_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    async def until_finished(self, count: int) -> None:
        """Until `count` calls have finished, then a few more loop turns so the fan-out has
        seen them."""
        while len(self.finished) < count:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)

    async def call(self, name: str) -> object:
        self.started.append(name)
        if name in self.gates:
            await self.gates[name].wait()
        answer = self.answers[name]
        self.finished.append(name)
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(main) -> None:
    # A helper that fails to return hangs its test: the bound turns that into a failure.
    asyncio.run(asyncio.wait_for(main(), HANG_GUARD_S))


HANG_GUARD_S = 10.0


def test_returns_at_a_quorum_without_waiting_for_the_slow_member_which_keeps_running():
    async def main():
        fake = Fake({"a": True, "b": True, "c": True, "d": True}, gated=("d",))
        gathered = await communicate_with_quorum("abcd", fake.call, quorum=3)
        assert gathered.reached and gathered.weight == 3
        assert set(gathered.outcomes) == {"a", "b", "c"}
        assert not gathered.tasks["d"].done()
        # The straggler goes on and records its outcome when it finishes.
        fake.gates["d"].set()
        await gathered.wait_rest(None)
        assert fake.finished[-1] == "d" and gathered.outcomes["d"].value is True
        assert gathered.weight == 4

    run(main)


def test_weights_decide_the_quorum_not_the_number_of_replies():
    async def main():
        weights = {"heavy": 5, "x": 1, "y": 1, "z": 1}
        # Three light replies (weight 3) fall short of 6; the heavy one alone (5) does too.
        fake = Fake(dict.fromkeys(weights, "ok"), gated=("heavy",))
        pending = asyncio.ensure_future(communicate_with_quorum(weights, fake.call, quorum=6, weight=weights.get))
        await fake.until_finished(3)
        assert not pending.done()
        fake.gates["heavy"].set()
        gathered = await pending
        assert gathered.reached and gathered.weight == 8

    run(main)


def test_heavy_member_and_one_light_reply_make_the_quorum_without_the_others():
    async def main():
        weights = {"heavy": 5, "x": 1, "y": 1, "z": 1}
        fake = Fake(dict.fromkeys(weights, "ok"), gated=("y", "z"))
        gathered = await communicate_with_quorum(weights, fake.call, quorum=6, weight=weights.get)
        assert gathered.reached and set(gathered.values()) == {"heavy", "x"}
        assert not gathered.tasks["y"].done() and not gathered.tasks["z"].done()
        fake.open_all()
        await gathered.wait_rest(None)

    run(main)


def test_quorum_impossible_returns_early_unless_told_to_hear_everyone():
    async def main():
        answers = {"a": False, "b": False, "c": True, "d": True}
        # counts=bool: two refusals (False) of four leave at most 2 < 3 for the quorum.
        fake = Fake(answers, gated=("c", "d"))
        gathered = await communicate_with_quorum("abcd", fake.call, quorum=3, counts=bool)
        assert gathered.impossible and not gathered.reached
        assert set(gathered.outcomes) == {"a", "b"}
        assert not gathered.tasks["c"].done()
        fake.open_all()
        await gathered.wait_rest(None)
        assert gathered.weight == 2 and not gathered.reached

        fake = Fake(answers, gated=("c", "d"))
        pending = asyncio.ensure_future(
            communicate_with_quorum("abcd", fake.call, quorum=3, counts=bool, stop_when_impossible=False))
        await fake.until_finished(2)
        assert not pending.done(), "with stop_when_impossible=False it waits for every member"
        fake.open_all()
        gathered = await pending
        assert gathered.done and set(gathered.outcomes) == set("abcd")

    run(main)


def test_timeout_returns_with_members_still_running():
    async def main():
        fake = Fake({"a": True, "b": True, "c": True}, gated=("b", "c"))
        gathered = await communicate_with_quorum("abc", fake.call, quorum=2, timeout=0.05)
        assert not gathered.reached and not gathered.impossible
        assert set(gathered.outcomes) == {"a"}
        assert not gathered.tasks["b"].done() and not gathered.tasks["c"].done()
        # wait_rest's own timeout leaves them running too.
        await gathered.wait_rest(0.01)
        assert not gathered.tasks["b"].done()
        fake.open_all()
        await gathered.wait_rest(None)
        assert gathered.reached

    run(main)


def test_an_exception_in_a_member_is_recorded_not_raised_and_counts_against_the_quorum():
    async def main():
        boom = RuntimeError("unreachable")
        fake = Fake({"a": True, "b": boom, "c": True, "d": True})
        gathered = await communicate_with_quorum("abcd", fake.call, quorum=3)
        await gathered.wait_rest(None)
        assert gathered.outcomes["b"].error is boom and gathered.outcomes["b"].value is None
        assert "b" not in gathered.values() and gathered.weight == 3
        with pytest.raises(RuntimeError, match="unreachable"):
            gathered.raise_first_error()

        # Two failures of four: a quorum of 3 is impossible, and the call says so, not raises.
        fake = Fake({"a": boom, "b": ValueError("bad"), "c": True, "d": True}, gated=("c", "d"))
        gathered = await communicate_with_quorum("abcd", fake.call, quorum=3)
        assert gathered.impossible and set(gathered.outcomes) == {"a", "b"}
        fake.open_all()
        await gathered.wait_rest(None)

    run(main)


def test_without_a_quorum_every_member_is_heard_out_even_after_failures():
    async def main():
        fake = Fake({"a": RuntimeError("down"), "b": 2, "c": 3}, gated=("c",))
        pending = asyncio.ensure_future(communicate_with_quorum("abc", fake.call))
        await fake.until_finished(2)
        assert not pending.done()
        fake.gates["c"].set()
        gathered = await pending
        assert gathered.done and gathered.values() == {"b": 2, "c": 3}
        assert list(gathered.outcomes) == ["a", "b", "c"]  # in the order they finished
        assert gathered.outcomes["a"].ms >= 0

    run(main)


def test_no_members_returns_at_once():
    async def main():
        gathered = await communicate_with_quorum([], Fake({}).call)
        assert gathered.done and gathered.values() == {}

    run(main)


def test_members_run_under_the_given_spawn_and_outlive_a_cancelled_call():
    async def main():
        owned: set[asyncio.Task] = set()

        def spawn(coro):
            task = asyncio.create_task(coro)
            owned.add(task)
            return task

        fake = Fake({"a": True, "b": True}, gated=("a", "b"))
        pending = asyncio.ensure_future(communicate_with_quorum("ab", fake.call, quorum=2, spawn=spawn))
        while len(fake.started) < 2:
            await asyncio.sleep(0)
        assert len(owned) == 2
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert not any(t.done() for t in owned), "the owner's tasks are the owner's to cancel"
        fake.open_all()
        await asyncio.wait(owned)
        assert sorted(fake.finished) == ["a", "b"]

    run(main)


def test_own_members_are_cancelled_with_the_call_like_gather():
    async def main():
        fake = Fake({"a": True, "b": True}, gated=("a", "b"))
        pending = asyncio.ensure_future(communicate_with_quorum("ab", fake.call))
        while len(fake.started) < 2:
            await asyncio.sleep(0)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        fake.open_all()
        await asyncio.sleep(0)
        assert fake.finished == []

    run(main)
