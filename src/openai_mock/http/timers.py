"""Waits between the chunks of streams, on one shared timer.

`trio.sleep` gives each wait a cancel scope with its own deadline and ends it by raising and
catching `trio.Cancelled` in the sleeping task: about 50 us of CPU per wait here. A stream with
`delay_ms` waits before every chunk, so a thousand streams at 20 ms wait 50,000 times a second,
more than a core's worth of sleeping alone. Here a sleeping task parks itself (no scope, no
exception) in one heap, and the timer wakes every task that is due.

The timer fires after each wait of the event loop for I/O (`_FireFirst`, a trio instrument).
What makes the loop stop waiting when the next tick is due: under openai-mock's own `Clock`
(what `serve`, its workers and `MockServer` run trio with), the clock itself, which trio asks
how long it may wait; no task runs for a tick. Under any other clock (trio's, or a test's
`MockClock`), a system task sleeping in a cancel scope until the next tick (`Timers.run`): its
scope, its `trio.Cancelled` and its task switch cost about as much as the tick's own work
again, paid on each of up to a thousand ticks a second (bench/wakeup.py measures both ways).

The timer wakes on a 1 ms grid (each wait ends on the first millisecond boundary at or after its
deadline): waits that end in the same millisecond end together, in one wake-up of the timer,
however spread out the streams began. A wait is therefore never shorter than asked, and at most
a millisecond longer.

A stream's chunks can also be paced by the timer itself (`pace`): its task parks once, and at
each chunk's time the timer sends the chunk (`send_now`, a non-blocking write, called as the
timer fires) and counts the next wait from then. Waking the stream's task for each chunk (a task
switch, and its whole chain of coroutines resumed and suspended again) cost more than the
write; the task wakes only when the chunks it gave are sent, when the next wait is zero, or
when a write could not go out at once.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator

import outcome
import trio

GRID = 0.001  # seconds


class _Pace:
    """A stream paced by the timer: its waits and frames still to come (iterators: the frames
    are made as they are reached), and how to send a frame without waiting."""

    __slots__ = ("frames", "send_now", "task", "waits")

    def __init__(self, task: trio.lowlevel.Task, waits: Iterator[float], frames: Iterator[bytes],
                 send_now: Callable[[bytes], bool]):
        self.task = task
        self.waits = waits
        self.frames = frames
        self.send_now = send_now


Paced = tuple[bytes | None, float | None]  # what `pace` returns: (a frame not sent, the next wait)


Target = trio.lowlevel.Task | _Pace | None  # what a heap entry wakes: a sleeping task, a paced stream, or nothing


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, list[Target]]] = []
        self._order = itertools.count()
        self._wait: trio.CancelScope | None = None  # the timer's own wait, until the next tick due
        self._cancelled = 0  # entries left in the heap by cancelled waits

    def __len__(self) -> int:
        return len(self._heap)

    def next_due(self) -> float:
        """When the next tick is due (math.inf with nothing to wait for)."""
        heap = self._heap
        return heap[0][0] if heap else math.inf

    async def sleep(self, seconds: float) -> None:
        """Like `trio.sleep`: a checkpoint, cancellable, never shorter than `seconds`."""
        entry: list[Target] = [trio.lowlevel.current_task()]
        self._push(trio.current_time() + seconds, entry)
        await trio.lowlevel.wait_task_rescheduled(self._aborter(entry))

    async def pace(self, wait: float, waits: Iterator[float], frames: Iterator[bytes],
                   send_now: Callable[[bytes], bool]) -> Paced:
        """After `wait` (positive), make the next frame (`next(frames)`) and send it with
        `send_now(frame)`, called as the timer fires (not from the stream's task): it sends the
        frame without waiting and says whether it went out whole. Then the same after each next
        wait of `waits` (counted from the moment the frame before was sent), until `waits` ends,
        a wait is zero, or a frame is not taken at once. Returns `(None, None)` when `waits` has
        ended, `(None, 0.0)` at a zero wait (its frame not made yet), and `(frame, None)` for a
        frame `send_now` could not send (its wait is over: it is due now; the wait after it not
        taken). Cancellable like `sleep`: a stream cancelled while paced sends nothing more."""
        entry: list[Target] = [_Pace(trio.lowlevel.current_task(), waits, frames, send_now)]
        self._push(trio.current_time() + wait, entry)
        paced: Paced = await trio.lowlevel.wait_task_rescheduled(self._aborter(entry))
        return paced

    def _push(self, deadline: float, entry: list[Target]) -> None:
        due = math.ceil(deadline / GRID) * GRID
        heapq.heappush(self._heap, (due, next(self._order), entry))
        wait = self._wait
        if wait is not None and due < wait.deadline:
            wait.deadline = due

    def _aborter(self, entry: list[Target]) -> Callable[[object], trio.lowlevel.Abort]:
        def abort(_: object) -> trio.lowlevel.Abort:
            entry[0] = None  # cancelled: its heap entry stays behind, and is dropped when due...
            self._cancelled += 1
            if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
                self._compact()  # ...or sooner, when clients that left have piled up long waits
            return trio.lowlevel.Abort.SUCCEEDED

        return abort

    def _step(self, entry: list[Target], pace: _Pace) -> None:
        """A paced stream's frame is due: make and send it, and wait for the next one, or give
        the stream back to its task."""
        paced: Paced
        try:
            frame = next(pace.frames)
            if pace.send_now(frame):
                wait = next(pace.waits, None)
                if wait:
                    self._push(trio.current_time() + wait, entry)  # (the same entry: still abortable)
                    return
                paced = (None, wait)
            else:
                paced = (frame, None)
        except BaseException as error:  # (a bug: the stream's task raises it, not the timer's)
            entry[0] = None
            trio.lowlevel.reschedule(pace.task, outcome.Error(error))
            return
        entry[0] = None
        trio.lowlevel.reschedule(pace.task, outcome.Value(paced))

    def _compact(self) -> None:
        self._heap[:] = [item for item in self._heap if item[2][0] is not None]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def fire(self) -> None:
        """Make due what is due: send paced streams' frames, wake sleepers. Called after each
        wait of the event loop for I/O (`_FireFirst`), and by the timer's task when it has one."""
        heap = self._heap
        now = trio.current_time()
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            target = entry[0]
            if isinstance(target, _Pace):
                self._step(entry, target)
            elif target is not None:
                entry[0] = None
                trio.lowlevel.reschedule(target)
            elif self._cancelled:
                self._cancelled -= 1

    async def run(self) -> None:
        heap = self._heap
        while True:
            self.fire()
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._wait:
                await trio.sleep_forever()
            self._wait = None


class _FireFirst(trio.abc.Instrument):
    """Fire the shared timer as soon as the event loop is back from waiting for I/O, before it
    runs any task, and after any task's step when a tick has come due meanwhile. trio runs the
    tasks made runnable during a wait in a random order (half the time reversed): the timer's
    own task ran after all of them half the time, and a paced frame that was due waited for
    every new request's steps of the pass (figure 3 of the bench: 1,000 streams started at
    5,000/s). And a pass of many such steps takes milliseconds: a frame that comes due during it
    goes out after the step it came due in, not after the pass. What makes the loop wake when
    the next wait ends is the `Clock`, or else the timer's task."""

    def __init__(self, timers: Timers):
        self.timers = timers
        self._heap = timers._heap  # (the same list for the timer's life: compacted in place)
        self._now = trio.lowlevel.current_clock().current_time
        self._fire = timers.fire

    def after_io_wait(self, timeout: float) -> None:
        self._fire()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        heap = self._heap
        if heap and heap[0][0] <= self._now():
            self._fire()


class Clock(trio.abc.Clock):
    """trio's system clock (`time.perf_counter`, with a random offset as trio's has), which also
    ends the event loop's wait for I/O when the shared timer's next tick is due: pass it to
    `trio.run(..., clock=Clock())`, and the timer needs no task of its own (see above)."""

    def __init__(self) -> None:
        self._offset = random.uniform(10_000, 200_000)
        self.timers: Timers | None = None  # the run's shared timer, once started

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._offset + time.perf_counter()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """How long the loop may wait for I/O: until trio's next deadline (`deadline`: its cancel
        scopes') or the timer's next tick, whichever comes first."""
        timers = self.timers
        if timers is not None:
            deadline = min(deadline, timers.next_due())
        return deadline - (self._offset + time.perf_counter())


_TIMERS: trio.lowlevel.RunVar[Timers] = trio.lowlevel.RunVar("openai_mock.timers")


def shared() -> Timers:
    """The shared timer of the current trio run (started on first use)."""
    try:
        return _TIMERS.get()
    except LookupError:
        timers = Timers()
        _TIMERS.set(timers)
        trio.lowlevel.add_instrument(_FireFirst(timers))
        clock = trio.lowlevel.current_clock()
        if isinstance(clock, Clock):
            clock.timers = timers  # (it ends the loop's waits at the ticks: a clock serves one run)
        else:
            trio.lowlevel.spawn_system_task(timers.run, name="openai_mock.timers")
        return timers


async def sleep(seconds: float) -> None:
    """Sleep on the shared timer of the current trio run."""
    await shared().sleep(seconds)
