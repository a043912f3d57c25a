"""The state store's two implementations mean the same: every test runs on both, the Redis one
against a real redis-server (each test under a key prefix of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from openai_mock.conversation import Message
from openai_mock.journal import Entry
from openai_mock.scenario.model import ToolCall
from openai_mock.store import Source, StoredResponse, StoreUnavailable
from openai_mock.store.memory import MemoryStore
from openai_mock.store.redis import RedisStore, shown_url


@pytest.fixture(params=["memory", "redis"])
def open_store(request):
    """`open_store(**options)`: an async context giving a fresh store of the parameter's kind."""
    if request.param == "memory":
        @asynccontextmanager
        async def memory(**options) -> AsyncIterator[MemoryStore]:
            yield MemoryStore(**options)
        return memory
    server = request.getfixturevalue("redis_server")

    @asynccontextmanager
    async def redis(**options) -> AsyncIterator[RedisStore]:
        store = RedisStore(server.url, prefix=f"test-{uuid.uuid4().hex[:8]}:", **options)
        async with store.open():
            yield store
            await store.reset()
    return redis


def run(test):
    """Run the async `test(store_opener)` under trio."""
    return lambda open_store: trio.run(test, open_store)


def entry(request_id: str, session: str = "default", **fields) -> Entry:
    made = Entry(id=request_id, time=0.0, method="POST", path="/v1/chat/completions", session=session)
    for name, value in fields.items():
        setattr(made, name, value)
    return made


CALL = ToolCall(id="call_1", name="lookup", arguments='{"q": 1}')
HISTORY = (Message(role="user", content="hi"), Message(role="assistant", content=None, tool_calls=(CALL,)),
           Message(role="tool", content="42", tool_call_id="call_1"))


@run
async def test_counters_count_per_session_and_name(open_store):
    async with open_store() as store:
        assert [await store.count("a", "rule-1") for _ in range(3)] == [0, 1, 2]
        assert await store.count("a", "rule-2") == 0
        assert await store.count("b", "rule-1") == 0
        await store.reset("a")
        assert await store.count("a", "rule-1") == 0
        assert await store.count("b", "rule-1") == 1


@run
async def test_stored_responses_and_their_items(open_store):
    async with open_store() as store:
        stored = StoredResponse(body={"id": "resp_1", "output": [{"type": "message"}]}, history=HISTORY)
        await store.put_response("s", "resp_1", stored, {"fc_1": HISTORY[1]})
        assert await store.response("s", "resp_1") == stored
        assert await store.item("s", "fc_1") == HISTORY[1]
        assert await store.response("other", "resp_1") is None
        assert await store.item("other", "fc_1") is None
        assert await store.delete_response("s", "resp_1")
        assert not await store.delete_response("s", "resp_1")
        assert await store.response("s", "resp_1") is None
        assert await store.item("s", "fc_1") is None  # its response is gone


@run
async def test_stored_responses_expire(open_store):
    async with open_store(response_ttl=0.3) as store:
        await store.put_response("s", "resp_1", StoredResponse(body={}, history=()), {"msg_1": HISTORY[0]})
        assert await store.response("s", "resp_1") is not None
        await trio.sleep(0.6)
        assert await store.response("s", "resp_1") is None
        assert await store.item("s", "msg_1") is None


@run
async def test_the_journal_keeps_order_updates_and_its_cap(open_store):
    async with open_store(journal_limit=3) as store:
        first, second = entry("req_1", "a"), entry("req_2", "b")
        await store.journal_put([first])
        await store.journal_put([second])
        first.status, first.outcome = 200, "completed"
        await store.journal_put([first])  # an update keeps its place
        listed = await store.journal()
        assert [(e["id"], e["status"], e["outcome"]) for e in listed] == [("req_1", 200, "completed"),
                                                                          ("req_2", None, None)]
        assert [e["id"] for e in await store.journal("b")] == ["req_2"]
        await store.journal_put([entry("req_3", "a"), entry("req_4", "a")])
        assert [e["id"] for e in await store.journal()] == ["req_2", "req_3", "req_4"]
        assert [e["id"] for e in await store.journal("a")] == ["req_3", "req_4"]
        again = entry("req_3", "a")  # a request id seen again (seeded ids after a reset): a new entry
        await store.journal_put([again])
        assert [e["id"] for e in await store.journal()] == ["req_3", "req_4", "req_3"]


@run
async def test_reset_of_one_session_or_all(open_store):
    async with open_store() as store:
        for session in ("a", "b"):
            await store.count(session, "r")
            await store.put_response(session, "resp", StoredResponse(body={}, history=()), {})
            await store.journal_put([entry(f"req-{session}", session)])
        await store.put_config([Source("x.yaml", "responses: []")])
        await store.reset("a")
        assert await store.response("a", "resp") is None and await store.response("b", "resp") is not None
        assert [e["session"] for e in await store.journal()] == ["b"]
        await store.reset()
        assert await store.response("b", "resp") is None
        assert await store.journal() == []
        assert await store.count("b", "r") == 0
        assert await store.config_version() == 1  # the configuration is not state


@run
async def test_sessions_cannot_reach_each_others_keys(open_store):
    async with open_store() as store:
        tricky = ["a:b", "a*", "a/../b", "a%3Ab", "", "ü", "a b"]
        for session in tricky:
            await store.count(session, "r")
            await store.journal_put([entry("req", session)])
        for done, session in enumerate(tricky):
            await store.reset(session)
            assert [e["session"] for e in await store.journal()] == tricky[done + 1:]
            assert await store.count(session, "r") == 0
            assert [await store.count(other, "r") for other in tricky[done + 1:]] == [1] * len(tricky[done + 1:])
            for other in tricky[done + 1:]:  # (undo the counting just done)
                await store.reset(other)
                await store.count(other, "r")
                await store.journal_put([entry("req", other)])


@run
async def test_configurations_are_versioned(open_store):
    async with open_store() as store:
        assert await store.config() is None and await store.config_version() == 0
        assert await store.put_config([Source("a.yaml", "one")]) == 1
        assert await store.put_config([Source("a.yaml", "two"), Source("b.yaml", "three")]) == 2
        shared = await store.config()
        assert shared is not None and shared.version == 2 == await store.config_version()
        assert shared.sources == (Source("a.yaml", "two"), Source("b.yaml", "three"))


def test_two_prefixes_share_one_redis_without_meeting(redis_server):
    async def main():
        one, two = RedisStore(redis_server.url, prefix="one:"), RedisStore(redis_server.url, prefix="two:")
        async with one.open(), two.open():
            await one.count("s", "r")
            await one.put_config([Source("a", "b")])
            await two.reset()
            assert await one.count("s", "r") == 1
            assert await two.config_version() == 0
            await one.reset()
    trio.run(main)


def test_a_redis_that_is_down_is_reported_not_waited_for(redis_server):
    async def main():
        store = RedisStore(f"redis://:secret@127.0.0.1:{redis_server.port}/0", prefix="down:", timeout=1.0)
        async with store.open():
            await store.count("s", "r")
            redis_server.stop()
            try:
                with trio.fail_after(5):
                    with pytest.raises(StoreUnavailable) as caught:
                        await store.count("s", "r")
                assert "secret" not in str(caught.value)
                assert f"redis://:***@127.0.0.1:{redis_server.port}/0" in str(caught.value)
            finally:
                redis_server.start()
            with trio.fail_after(5):
                assert await store.count("s", "r") >= 0  # back by itself
    trio.run(main)


def test_shown_urls_hide_passwords():
    assert shown_url("redis://user:pw@host:6379/1") == "redis://user:***@host:6379/1"
    assert shown_url("redis://host:6379/1") == "redis://host:6379/1"


@run
async def test_members_are_announced_for_a_time(open_store):
    async with open_store() as store:
        assert await store.announced() == {}
        await store.announce("host:1:a", 3, ttl=0.4)
        await store.announce("host:2:b", 4, ttl=30)
        assert await store.announced() == {"host:1:a": 3, "host:2:b": 4}
        await store.announce("host:1:a", 5, ttl=0.4)  # (renewed, with the version it now serves)
        assert await store.announced() == {"host:1:a": 5, "host:2:b": 4}
        await trio.sleep(0.6)
        assert await store.announced() == {"host:2:b": 4}  # the other one's word expired
