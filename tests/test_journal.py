"""The journal's writes to a shared store: an answer goes out only once its entry has reached
the store, even while another write (the background one that lets every worker list requests in
flight) is still on its way, and a write taken earlier never lands over a later one."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence

import trio
import trio.testing

from openai_mock.journal import COMPLETED, Entry, Journal
from openai_mock.store.memory import MemoryStore
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


class SlowWrites:
    """A store whose journal writes each take WRITE seconds on their way (a busy network), in
    trio's virtual time; it counts the writes."""

    WRITE = 1.0

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.writes = 0

    async def journal_put(self, entries: Sequence[Entry]) -> None:
        self.writes += 1
        await trio.sleep(self.WRITE)
        await self.store.journal_put(entries)

    async def journal(self, session: str | None = None) -> list[dict]:
        return await self.store.journal(session)


def test_answers_waiting_on_one_write_go_out_together_while_requests_keep_arriving():
    """A write carries every entry pending when it is taken, and every answer waiting on it goes
    out when it lands. New requests arriving meanwhile (their started entries pending) wait for
    the next write; they never hold back the answers already waiting."""
    waited: dict[str, float] = {}

    async def main() -> None:
        slow = SlowWrites()
        journal = Journal(slow)

        async def answer(n: int) -> None:
            entry = journal.start(f"req_{n}", "POST", "/v1/chat/completions", "s")
            await trio.sleep(0.05 * n)
            journal.finish(entry, COMPLETED)
            began = trio.current_time()
            await journal.settle()  # what the executor awaits before a stream's last frame
            waited[entry.id] = trio.current_time() - began
            stored = {e["id"]: e["outcome"] for e in await slow.store.journal("s")}
            assert stored[entry.id] == COMPLETED, "an answer went out before its entry landed"

        async def arrivals() -> None:  # a busy server: a request starts every 10 ms
            for n in range(1000):
                journal.start(f"new_{n}", "POST", "/v1/chat/completions", "s")
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(arrivals)
            for n in range(20):
                nursery.start_soon(answer, n)
        assert len(waited) == 20
        # each waits for the write on its way (if any) and then for the one that takes its entry
        assert max(waited.values()) <= 2 * SlowWrites.WRITE + 1e-6, waited
        assert slow.writes <= 12, slow.writes  # (20 answers and 1,000 starts in about 10 writes)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
