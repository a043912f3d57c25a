"""The shared timer that streams wait on between chunks (http/timers.py), in virtual time."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from openai_mock.http import timers


def run(main) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def sleepers(run_with, waits: tuple[float, ...]) -> list[tuple[float, float]]:
    """Tasks that each wait one of `waits` on the shared timer, all started together, in the
    order they woke: (asked, slept)."""
    woke: list[tuple[float, float]] = []

    async def sleeper(seconds: float) -> None:
        start = trio.current_time()
        await timers.sleep(seconds)
        woke.append((seconds, trio.current_time() - start))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for seconds in waits:
                nursery.start_soon(sleeper, seconds)

    run_with(main)
    return woke


def test_waits_end_in_order_never_early_and_at_most_a_tick_late():
    woke = sleepers(run, (0.5, 0.0205, 0.3, 0.02, 0.0001, 1.25, 0.02))
    assert [asked for asked, _ in woke] == [0.0001, 0.02, 0.02, 0.0205, 0.3, 0.5, 1.25]
    for asked, slept in woke:
        assert asked <= slept + 1e-9 <= asked + timers.GRID + 1e-9, (asked, slept)


def test_a_shorter_wait_that_comes_later_is_not_held_up_by_a_longer_one():
    slept: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(timers.sleep, 10.0)  # the timer now waits ten seconds
            await trio.sleep(0.1)
            start = trio.current_time()
            await timers.sleep(0.05)
            slept.append(trio.current_time() - start)
            nursery.cancel_scope.cancel()

    run(main)
    assert slept and 0.05 <= slept[0] <= 0.05 + timers.GRID + 1e-9


def test_a_cancelled_wait_raises_and_leaves_the_others_alone():
    events: list[str] = []

    async def sleeper(name: str, seconds: float, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                await timers.sleep(seconds)
            except trio.Cancelled:
                events.append(f"{name} cancelled at {trio.current_time():.3f}")
                raise
            events.append(f"{name} woke at {trio.current_time():.3f}")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            first = await nursery.start(sleeper, "a", 0.2)
            await nursery.start(sleeper, "b", 0.3)
            await trio.sleep(0.1)
            first.cancel()

    run(main)
    assert events == ["a cancelled at 0.100", "b woke at 0.300"]


def test_a_wait_in_a_cancelled_scope_is_a_checkpoint():
    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await timers.sleep(1.0)
            pytest.fail("the wait should have raised Cancelled")
        assert scope.cancelled_caught
        assert trio.current_time() == 0  # nothing waited

    run(main)


def test_many_waits_spread_out_end_on_few_ticks():
    """A thousand streams that began at different moments still wake together, a tick at a
    time: the point of the shared timer."""
    ends: set[float] = set()

    async def stream(offset: float) -> None:
        await trio.sleep(offset)
        for _ in range(5):
            await timers.sleep(0.02)
            ends.add(round(trio.current_time(), 6))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for n in range(1000):
                nursery.start_soon(stream, n * 0.0001)  # 1,000 starts over 0.1 s

    run(main)
    # 5,000 waits, but they end only on ticks between the first possible end and the last
    first, last = 0.02, 0.1 + 5 * (0.02 + timers.GRID)
    assert len(ends) <= math.ceil((last - first) / timers.GRID) + 1
    assert all(abs(end / timers.GRID - round(end / timers.GRID)) < 1e-6 for end in ends)


def test_waits_of_clients_that_left_do_not_pile_up():
    """Cancelled waits leave their heap entries behind until they are due; when they pile up
    (clients that left streams with long delays), the heap is compacted, and the waits still
    running are kept."""
    sizes: list[int] = []
    woke: list[float] = []

    async def live() -> None:
        await timers.sleep(1.0)
        woke.append(trio.current_time())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live)
            await trio.sleep(0.01)
            shared = timers._TIMERS.get()
            for _ in range(5):
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as waits:
                        for _ in range(1000):
                            waits.start_soon(timers.sleep, 3600.0)
                        await trio.sleep(0.01)
                        scope.cancel()
                sizes.append(len(shared))

    run(main)
    assert max(sizes) <= 2001, sizes  # without compaction: 5,001 entries by the end
    assert woke == [pytest.approx(1.0, abs=timers.GRID)]  # the live wait was kept, and woke on time


def test_pace_sends_each_frame_after_its_wait_from_the_timers_task():
    """A paced stream's task parks once; the timer's own task makes and sends each frame when it
    is due, and counts the next wait from then."""
    sent: list[tuple[float, bytes, bool]] = []  # (time, frame, sent from the stream's own task)
    made: list[float] = []  # when each frame was made
    returned: list[object] = []

    async def main() -> None:
        stream_task = trio.lowlevel.current_task()

        def send_now(frame: bytes) -> bool:
            try:
                task = trio.lowlevel.current_task()
            except RuntimeError:  # (from the event loop itself, fired before any task: `_FireFirst`)
                task = None
            sent.append((trio.current_time(), frame, task is stream_task))
            return True

        def frames() -> Iterator[bytes]:
            for frame in (b"a", b"b", b"c", b"d", b"e"):
                made.append(round(trio.current_time(), 6))
                yield frame

        made_frames = frames()
        waits = iter([0.02, 0.05, 0.0, 0.3])
        returned.append(await timers.shared().pace(0.1, waits, made_frames, send_now))
        assert next(made_frames) == b"d"  # (the zero wait's frame: the stream's task sends it)
        returned.append(await timers.shared().pace(next(waits), waits, made_frames, send_now))

    run(main)
    assert returned == [(None, 0.0), (None, None)]  # stopped at the zero wait; then went to the end
    assert [(round(time, 6), frame) for time, frame, _ in sent] == [
        (0.1, b"a"), (0.12, b"b"), (0.17, b"c"), (0.47, b"e")]
    assert made == [0.1, 0.12, 0.17, 0.17, 0.47]  # each frame made when due, not before
    assert not any(own for _, _, own in sent)


def test_pace_stops_at_a_frame_the_connection_does_not_take_at_once():
    attempts: list[tuple[float, bytes]] = []
    returned: list[tuple[float, object]] = []

    async def main() -> None:
        def send_now(frame: bytes) -> bool:
            attempts.append((round(trio.current_time(), 6), frame))
            return frame != b"c"  # (a client that does not read: the socket is full)

        waits = iter([0.01] * 3)
        paced = await timers.shared().pace(0.01, waits, iter([b"a", b"b", b"c", b"d"]), send_now)
        returned.append((round(trio.current_time(), 6), paced))
        assert list(waits) == [0.01]  # the wait after the frame not sent is the task's to take

    run(main)
    assert attempts == [(0.01, b"a"), (0.02, b"b"), (0.03, b"c")]
    assert returned == [(0.03, (b"c", None))]  # frame "c" is due now: its wait is over


def test_a_cancelled_pace_sends_nothing_more():
    sent: list[float] = []

    async def main() -> None:
        def send_now(frame: bytes) -> bool:
            sent.append(round(trio.current_time(), 6))
            return True

        with trio.move_on_after(0.25) as scope:
            await timers.shared().pace(0.1, iter([0.1] * 9), iter([b"x"] * 10), send_now)
        assert scope.cancelled_caught
        await trio.sleep(1)

    run(main)
    assert sent == [0.1, 0.2]


def test_a_frame_that_fails_to_be_made_raises_in_the_streams_task():
    async def main() -> None:
        def frames() -> Iterator[bytes]:
            yield b"a"
            raise ValueError("an encoder's bug")

        with pytest.raises(ValueError, match="an encoder's bug"):
            await timers.shared().pace(0.1, iter([0.1] * 3), frames(), lambda frame: True)
        await timers.sleep(0.5)  # (the timer still runs)

    run(main)


async def _how_late(wake: float, due: float, steps: list[float]) -> float:
    """How late a paced frame due at `due` goes out, while tasks woken at `wake` each take one
    step of the given length (busy: as a burst of new requests' steps takes). Real time."""
    sent: list[float] = []

    def send_now(frame: bytes) -> bool:
        sent.append(trio.current_time())
        return True

    async def busy(length: float) -> None:
        await trio.sleep_until(wake)
        until = trio.current_time() + length
        while trio.current_time() < until:
            pass

    async def paced() -> None:  # (its wait ends just before `due`: the timer rounds it up to `due`)
        await timers.shared().pace(due - timers.GRID / 2 - trio.current_time(), iter(()), iter([b"x"]), send_now)

    async with trio.open_nursery() as nursery:
        for length in steps:
            nursery.start_soon(busy, length)
        nursery.start_soon(paced)
    return sent[0] - due


def _tick_after(seconds: float) -> float:
    return math.ceil((trio.current_time() + seconds) / timers.GRID) * timers.GRID


def test_a_due_frame_goes_out_before_the_tasks_woken_with_it_run():
    """A paced frame due at the moment another task wakes goes out before that task's step,
    however long the step: trio runs the tasks of a pass in a random order (half the time
    reversed), and the timer's task used to come after the others half the time. Real time,
    ten times: the old order lets all ten through about once in a thousand runs."""
    late: list[float] = []

    async def main() -> None:
        for _ in range(10):
            due = _tick_after(0.02)
            late.append(await _how_late(due, due, [0.05]))

    trio.run(main)
    assert max(late) < 0.04, [round(x, 4) for x in late]


# --- under openai-mock's own clock (what serve, its workers and MockServer run trio with), in real time


def run_on_our_clock(main) -> None:
    trio.run(main, clock=timers.Clock())


class _Steps(trio.abc.Instrument):
    """Counts the task steps trio runs."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1


def test_under_our_clock_the_ticks_of_paced_streams_run_no_task():
    """The clock ends the event loop's waits at the timer's ticks, and the timer fires right
    after them (`_FireFirst`): no task runs for a tick. (The timer's own task, which trio's
    clock needs, ran once or more per tick: its cancel scope, its `Cancelled` and its task
    switch cost as much again as the tick's work.)"""
    ticks = 40
    sent: list[list[float]] = [[], [], []]
    counted = _Steps()
    during: list[int] = []

    async def paced(index: int) -> None:
        def send_now(frame: bytes) -> bool:
            sent[index].append(trio.current_time())
            if index == 0 and len(sent[0]) == 1:
                trio.lowlevel.add_instrument(counted)  # from the first frame on
            return True

        await timers.shared().pace(0.002, iter([0.002] * (ticks - 1)), iter([b"x"] * ticks), send_now)
        if index == 0:
            during.append(counted.steps)  # (this step: the first counted after the last frame)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for index in range(3):
                nursery.start_soon(paced, index)

    run_on_our_clock(main)
    assert [len(times) for times in sent] == [ticks] * 3
    for times in sent:
        assert all(later - earlier >= 0.002 - 1e-9 for earlier, later in zip(times, times[1:]))
    assert during and during[0] <= 3, f"{during[0]} task steps while {ticks} ticks were paced"


def test_under_our_clock_waits_end_in_order_and_never_early():
    woke = sleepers(run_on_our_clock, (0.4, 0.05, 0.25, 0.001, 0.15))
    assert [asked for asked, _ in woke] == [0.001, 0.05, 0.15, 0.25, 0.4]
    for asked, slept in woke:
        assert asked <= slept + 1e-9 <= asked + 0.2, (asked, slept)  # (real time on a loaded machine)


def test_under_our_clock_trio_deadlines_and_timer_ticks_both_end_the_loops_wait():
    """The clock asks trio's own deadlines (cancel scopes) and the timer's next tick, whichever
    comes first: a short wait of either kind is not held up by a long one of the other."""
    slept: dict[str, float] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(timers.sleep, 30.0)  # the timer's next tick: in 30 s
            start = trio.current_time()
            with trio.move_on_after(0.03):
                await trio.sleep_forever()
            slept["trio"] = trio.current_time() - start
            nursery.cancel_scope.cancel()
        with trio.move_on_after(30.0):  # trio's next deadline: in 30 s
            start = trio.current_time()
            await timers.sleep(0.03)
            slept["timer"] = trio.current_time() - start

    run_on_our_clock(main)
    assert 0.03 <= slept["trio"] < 1.0 and 0.03 <= slept["timer"] < 1.0, slept


def test_our_clock_is_trios_system_clock():
    clock = timers.Clock()
    first = clock.current_time()
    assert 10_000 <= first <= 200_000 + time.perf_counter() + 1
    assert clock.current_time() >= first
    assert clock.deadline_to_sleep_time(clock.current_time() + 5) == pytest.approx(5, abs=0.1)
    assert clock.deadline_to_sleep_time(math.inf) == math.inf  # (no timer yet: trio's deadline alone)


def test_a_frame_due_during_a_long_pass_goes_out_after_the_step_it_came_due_in():
    """Two tasks wake together and each takes 30 ms (as a burst of new requests does); a paced
    frame comes due 10 ms into the first one. It goes out as that step ends, not after the whole
    pass: the timer fires after any task's step once a tick is due (`_FireFirst`). Real time,
    five times; without that the frame waited for both steps (50 ms late)."""
    late: list[float] = []

    async def main() -> None:
        for _ in range(5):
            wake = _tick_after(0.02)
            late.append(await _how_late(wake, wake + 0.01, [0.03, 0.03]))

    run_on_our_clock(main)
    assert max(late) < 0.04, [round(x, 4) for x in late]
