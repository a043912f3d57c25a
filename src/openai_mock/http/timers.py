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
"""

from __future__ import annotations

import heapq
import itertools
import math

import trio

GRID = 0.001  # seconds


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, list[trio.lowlevel.Task | None]]] = []
        self._order = itertools.count()
        self._wait: trio.CancelScope | None = None  # the timer's own wait, until the next tick due
        self._cancelled = 0  # entries left in the heap by cancelled waits

    def __len__(self) -> int:
        return len(self._heap)

    async def sleep(self, seconds: float) -> None:
        """Like `trio.sleep`: a checkpoint, cancellable, never shorter than `seconds`."""
        due = math.ceil((trio.current_time() + seconds) / GRID) * GRID
        entry: list[trio.lowlevel.Task | None] = [trio.lowlevel.current_task()]
        heapq.heappush(self._heap, (due, next(self._order), entry))
        wait = self._wait
        if wait is not None and due < wait.deadline:
            wait.deadline = due

        def abort(_: object) -> trio.lowlevel.Abort:
            entry[0] = None  # cancelled: its heap entry stays behind, and is dropped when due...
            self._cancelled += 1
            if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
                self._compact()  # ...or sooner, when clients that left have piled up long waits
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _compact(self) -> None:
        self._heap[:] = [item for item in self._heap if item[2][0] is not None]
        heapq.heapify(self._heap)
        self._cancelled = 0

    async def run(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                entry = heapq.heappop(heap)[2]
                task = entry[0]
                if task is not None:
                    entry[0] = None
                    trio.lowlevel.reschedule(task)
                elif self._cancelled:
                    self._cancelled -= 1
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._wait:
                await trio.sleep_forever()
            self._wait = None


_TIMERS: trio.lowlevel.RunVar[Timers] = trio.lowlevel.RunVar("openai_mock.timers")


async def sleep(seconds: float) -> None:
    """Sleep on the shared timer of the current trio run (started on first use)."""
    try:
        timers = _TIMERS.get()
    except LookupError:
        timers = Timers()
        _TIMERS.set(timers)
        trio.lowlevel.spawn_system_task(timers.run, name="openai_mock.timers")
    await timers.sleep(seconds)
