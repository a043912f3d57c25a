"""Long work (counting or encoding a reply of megabytes, writing embeddings at the bounds) in
worker threads, a few at a time: the event loop goes on answering other clients meanwhile, and
however many big answers are asked at once, only a few are being made (and held in memory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import trio

AT_ONCE = 2  # big answers made at the same time, at most (the others wait their turn)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("openai_mock.heavy")


async def run(work: Callable[[*Ts], T], *args: *Ts) -> T:
    """`work(*args)` in a worker thread, once one of the AT_ONCE places is free."""
    try:
        limiter = _LIMITER.get()
    except LookupError:  # (one per trio run: a MockServer runs its own)
        limiter = trio.CapacityLimiter(AT_ONCE)
        _LIMITER.set(limiter)
    return await trio.to_thread.run_sync(work, *args, limiter=limiter)
