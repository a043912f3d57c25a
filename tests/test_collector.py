"""The garbage collector in a serving process (`server.young_collections`): what survives half a
second is set aside, so that the collector's passes walk only what is young, and reference
loops set aside are still freed, by a full collection at the first quiet moment after a minute.
In virtual time, with automatic collection off so that only the function under test collects."""

from __future__ import annotations

import gc
import weakref

import trio
import trio.testing

from openai_mock.server import FREEZE_EVERY, FULL_COLLECTION_AFTER, young_collections


class Loop:
    """An object in a reference loop: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_survivors_are_set_aside_and_loops_freed_when_quiet():
    quiet = [False]
    seen: dict[str, bool] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(young_collections, lambda: quiet[0])
            loop = weakref.ref(Loop())  # (a loop made while serving, and dropped at once)
            await trio.sleep(FREEZE_EVERY * 1.5)
            gc.collect()
            seen["set aside"] = loop() is not None  # the collector's passes no longer see it
            await trio.sleep(FULL_COLLECTION_AFTER)
            seen["busy after a minute"] = loop() is not None  # streams in flight: not yet
            quiet[0] = True
            await trio.sleep(FREEZE_EVERY * 1.5)
            seen["freed when quiet"] = loop() is None
            nursery.cancel_scope.cancel()

    gc.disable()
    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        gc.unfreeze()
        gc.enable()
    assert seen == {"set aside": True, "busy after a minute": True, "freed when quiet": True}
