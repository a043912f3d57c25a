"""The journal's writes to a shared store: an answer goes out only once its entry has reached
the store, even while another write (the background one that lets every worker list requests in
flight) is still on its way, and a write taken earlier never lands over a later one."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence

import trio

from openai_mock.journal import COMPLETED, Entry, Journal
from openai_mock.store.redis import RedisStore


class FirstWriteHeld:
    """A real Redis store whose first journal write is taken (its entries as they are then) and
    held on its way until `release` is set, as a slow network holds it."""

    def __init__(self, store: RedisStore):
        self.store = store
        self.holding = trio.Event()
        self.release = trio.Event()
        self.writes = 0

    async def journal_put(self, entries: Sequence[Entry]) -> None:
        self.writes += 1
        if self.writes > 1:
            await self.store.journal_put(entries)
            return
        taken = [copy.copy(entry) for entry in entries]
        self.holding.set()
        await self.release.wait()
        await self.store.journal_put(taken)

    async def journal(self, session: str | None = None) -> list[dict]:
        return await self.store.journal(session)


def test_an_answer_waits_for_the_write_in_flight_and_writes_land_in_order(redis_server):
    async def main() -> None:
        store = RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex[:8]}:")
        async with store.open():
            held = FirstWriteHeld(store)
            journal = Journal(held)
            entry = journal.start("req_1", "POST", "/v1/chat/completions", "s")
            seen_when_settled: list[dict] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.settle)  # the background write takes the started entry
                await held.holding.wait()
                entry.status, entry.rule_id = 200, "hello"
                journal.finish(entry, COMPLETED)

                async def release_soon() -> None:
                    await trio.sleep(0.2)
                    held.release.set()
                nursery.start_soon(release_soon)
                await journal.settle()  # what the router awaits before it sends the answer
                seen_when_settled = await store.journal("s")
            after = await store.journal("s")
            await store.reset()
        assert [(e["status"], e["outcome"]) for e in seen_when_settled] == [(200, COMPLETED)]
        assert [(e["status"], e["outcome"]) for e in after] == [(200, COMPLETED)], \
            "the write taken first landed last, over the entry's end"
        assert held.release.is_set()  # the answer's settle returned only after the held write

    trio.run(main)
