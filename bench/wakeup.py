"""What waking up costs on this machine: CPU time per wake-up of a trio event loop.

`python bench/wakeup.py` prints, as JSON, the CPU time (user + system, of this process) per
wake-up of:
- `idle_us`: a trio task that sleeps 1 ms at a time (the process goes idle between wake-ups);
- `busy_us`: the same task with `trio.sleep(0)` (a pass of the event loop that never sleeps);
- `timer_us`: openai-mock's shared timer pacing 3 streams a frame every millisecond (to a
  connection that takes it at once), per tick, under openai-mock's `Clock` (as it serves);
- `timer_task_us`: the same under trio's own clock, where the timer needs a task of its own
  that wakes for each tick (see openai_mock/http/timers.py).

A process below saturation wakes up to about a thousand times a second, and on a virtual
machine waking from idle costs several times a busy pass (cold caches, the hypervisor): that
part of a server's CPU per stream is the machine's, and shows here.
"""

from __future__ import annotations

import itertools
import json
import time

import trio

from openai_mock.http import timers

WAKES = 600


def cpu() -> float:
    return time.process_time()


async def sleeping(seconds: float) -> float:
    start = cpu()
    for _ in range(WAKES):
        await trio.sleep(seconds)
    return (cpu() - start) / WAKES


async def paced() -> float:
    """CPU per tick of the shared timer with 3 streams paced every millisecond."""
    ticks: set[float] = set()

    def send_now(frame: bytes) -> bool:
        ticks.add(round(trio.current_time(), 4))
        return True

    async def stream() -> None:
        await timers.shared().pace(0.001, iter([0.001] * WAKES), itertools.repeat(b"x"), send_now)

    start = cpu()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(stream)
    return (cpu() - start) / max(len(ticks), 1)


def main() -> None:
    figures = {
        "idle_us": trio.run(sleeping, 0.001) * 1e6,
        "busy_us": trio.run(sleeping, 0) * 1e6,
        "timer_us": trio.run(paced, clock=timers.Clock()) * 1e6,
        "timer_task_us": trio.run(paced) * 1e6,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
