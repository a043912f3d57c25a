"""Waits between the chunks of streams, on one shared timer.

`trio.sleep` gives each wait a cancel scope with its own deadline and ends it by raising and
catching `trio.Cancelled` in the sleeping task: about 50 us of CPU per wait here. A stream with
`delay_ms` waits before every chunk, so a thousand streams at 20 ms wait 50,000 times a second,
more than a core's worth of sleeping alone. Here a sleeping task parks itself (no scope, no
exception) in one heap, and one system task per trio run wakes every task that is due.

The timer wakes on a 1 ms grid (each wait ends on the first millisecond boundary at or after its
deadline): waits that end in the same millisecond end together, in one wake-up of the timer,
however spread out the streams began. A wait is therefore never shorter than asked, and at most
a millisecond longer.

A stream's chunks can also be paced by the timer itself (`pace`): its task parks once, and at
each chunk's time the timer's own task sends the chunk (`send_now`, a non-blocking write) and
counts the next wait from then. Waking the stream's task for each chunk (a task switch, and its
whole chain of coroutines resumed and suspended again) cost more than the write; the task wakes
only when the chunks it gave are sent, when the next wait is zero, or when a write could not go
out at once.
"""

from __future__ import annotations

import heapq
import itertools
import math
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

    async def sleep(self, seconds: float) -> None:
        """Like `trio.sleep`: a checkpoint, cancellable, never shorter than `seconds`."""
        entry: list[Target] = [trio.lowlevel.current_task()]
        self._push(trio.current_time() + seconds, entry)
        await trio.lowlevel.wait_task_rescheduled(self._aborter(entry))

    async def pace(self, wait: float, waits: Iterator[float], frames: Iterator[bytes],
                   send_now: Callable[[bytes], bool]) -> Paced:
        """After `wait` (positive), make the next frame (`next(frames)`) and send it with
        `send_now(frame)`, called from the timer's task: it sends the frame without waiting and
        says whether it went out whole. Then the same after each next wait of `waits` (counted
        from the moment the frame before was sent), until `waits` ends, a wait is zero, or a
        frame is not taken at once. Returns `(None, None)` when `waits` has ended,
        `(None, 0.0)` at a zero wait (its frame not made yet), and `(frame, None)` for a frame
        `send_now` could not send (its wait is over: it is due now; the wait after it not taken).
        Cancellable like `sleep`: a stream cancelled while paced sends nothing more."""
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
        """Make due what is due: send paced streams' frames, wake sleepers. Called by the
        timer's task, and first of all after each wait of the event loop for I/O (`_FireFirst`)."""
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
    runs any task: trio runs the tasks made runnable meanwhile in a random order (half the time
    reversed), so the timer's own task ran after all of them half the time, and a paced frame
    that was due waited for every new request's steps of the pass (figure 3 of the bench:
    1,000 streams started at 5,000/s). The timer's task stays: it makes the loop wake when the
    next wait ends."""

    def __init__(self, timers: Timers):
        self.timers = timers

    def after_io_wait(self, timeout: float) -> None:
        self.timers.fire()


_TIMERS: trio.lowlevel.RunVar[Timers] = trio.lowlevel.RunVar("openai_mock.timers")


def shared() -> Timers:
    """The shared timer of the current trio run (started on first use)."""
    try:
        return _TIMERS.get()
    except LookupError:
        timers = Timers()
        _TIMERS.set(timers)
        trio.lowlevel.add_instrument(_FireFirst(timers))
        trio.lowlevel.spawn_system_task(timers.run, name="openai_mock.timers")
        return timers


async def sleep(seconds: float) -> None:
    """Sleep on the shared timer of the current trio run."""
    await shared().sleep(seconds)
