"""The store in Redis, shared by every worker process and every machine that names the same
Redis and key prefix. The client is coredis, which runs under trio natively (through anyio);
it reconnects by itself when Redis comes back.

Keys, under the prefix (`openai-mock:` by default; several mocks may share one Redis):
- `config`: a hash of the configuration's `version` and its `sources` (JSON);
- `s:<session>:counts`: a hash of the session's counters (steps per rule, requests);
- `s:<session>:r:<response id>` and `s:<session>:i:<item id>`: stored Responses and their
  output items (JSON), each with the responses' time to live;
- `journal:order` (a sorted set: the order requests started in, by their start times),
  `journal:entries` (a hash of entries as JSON) and `journal:s:<session>` (one session's order);
- `members` (a sorted set of the serving processes, by when their word expires) and
  `members:version` (a hash): the configuration version each serving process serves, kept for a
  second and renewed ten times a second;
- `flush:<member>` and `flushed:<token>`: a reader of the journal asks every member to write
  what its journal holds, and waits for their answers (lists, kept for ten seconds).
Sessions are percent-encoded in key names, so no session can reach another's keys.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from ..conversation import Message
from ..journal import Entry
from ..scenario.model import ToolCall
from . import (
    DEFAULT_RESPONSE_TTL,
    JOURNAL_LIMIT,
    SharedConfig,
    Source,
    StoredResponse,
    StoreUnavailable,
)

DEFAULT_PREFIX = "openai-mock:"
TIMEOUT = 2.0  # seconds a command may take before the store counts as unavailable
FLUSH_KEPT_MS = 10_000  # how long an unanswered request to write the journal, or its answers, are kept
T = TypeVar("T")

# Add or update journal entries, and drop the oldest beyond the cap, in one round trip.
# KEYS: order, entries. ARGV: limit, the prefix of per-session orders, then (member, order, json)
# triples, a member being "<session>/<key>". Entries are ordered by the time their requests
# started (`Entry.order`: as the clock of the machine that served each one tells it), not by when
# they are written: a process writes its entries in batches, behind its answers.
_JOURNAL_PUT = """
local limit = tonumber(ARGV[1])
local per_session = ARGV[2]
for i = 3, #ARGV, 3 do
  local member, started, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HEXISTS', KEYS[2], member) == 0 then
    redis.call('ZADD', KEYS[1], started, member)
    redis.call('ZADD', per_session .. string.match(member, '^[^/]*'), started, member)
  end
  redis.call('HSET', KEYS[2], member, json)
end
local over = redis.call('ZCARD', KEYS[1]) - limit
if over > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[1], over)
  for j = 1, #gone, 2 do
    redis.call('HDEL', KEYS[2], gone[j])
    redis.call('ZREM', per_session .. string.match(gone[j], '^[^/]*'), gone[j])
  end
end
return 0
"""

# Forget one session's journal. KEYS: order, entries, the session's order.
_JOURNAL_FORGET = """
local members = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, member in ipairs(members) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
redis.call('DEL', KEYS[3])
return #members
"""

# Publish a configuration. KEYS: config. ARGV: its sources as JSON.
_CONFIG_PUT = """
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'sources', ARGV[1])
return version
"""


# Say that a process serves a configuration version, for a time: one sorted set of the members by
# when they expire (Redis's clock), and a hash of their versions; the expired ones are dropped
# here. (One round trip to read them all, however many other keys the Redis holds: a SCAN would
# walk its whole keyspace.) KEYS: members, versions. ARGV: member, ttl (seconds), version.
_ANNOUNCE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 0
"""

# The members whose announcement has not expired, and their versions: member, version, ...
# KEYS: members, versions.
_ANNOUNCED = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local version = redis.call('HGET', KEYS[2], member)
  if version then
    table.insert(out, member)
    table.insert(out, version)
  end
end
return out
"""


def shown_url(url: str) -> str:
    """The URL without its password, as messages and logs show it."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username or ''}:***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))


def _session(session: str) -> str:
    return urllib.parse.quote(session, safe="")


def _pattern(text: str) -> str:
    """`text` for a SCAN MATCH pattern, its glob characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def message_json(message: Message) -> dict[str, Any]:
    return {"role": message.role, "content": message.content, "tool_call_id": message.tool_call_id,
            "tool_calls": [[c.id, c.name, c.arguments, c.type] for c in message.tool_calls]}


def message_from(value: Mapping[str, Any]) -> Message:
    return Message(role=value["role"], content=value["content"], tool_call_id=value["tool_call_id"],
                   tool_calls=tuple(ToolCall(id=i, name=n, arguments=a, type=t) for i, n, a, t in value["tool_calls"]))


class RedisStore:
    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, response_ttl: float = DEFAULT_RESPONSE_TTL,
                 journal_limit: int = JOURNAL_LIMIT, timeout: float = TIMEOUT):
        self.url = url
        self.where = shown_url(url)
        self.prefix = prefix
        self.response_ttl = response_ttl
        self.journal_limit = journal_limit
        self.timeout = timeout
        self._client: Any = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[RedisStore]:
        """Connect for as long as the block runs (coredis clients live in a context). Connecting
        does not wait for Redis: a store that is down is reported by the first command."""
        import coredis  # only `--state redis://...` needs it: `pip install openai-mock[redis]`
        from coredis.retry import NoRetryPolicy

        client = coredis.Redis.from_url(self.url, decode_responses=True, verify_version=False,
                                        connect_timeout=self.timeout, stream_timeout=self.timeout,
                                        retry_policy=NoRetryPolicy())
        async with client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    async def _run(self, command: Callable[[Any], Awaitable[T]], within: float | None = None) -> T:
        """`command(client)`, or StoreUnavailable when Redis does not answer in time."""
        import coredis.exceptions

        if self._client is None:
            raise StoreUnavailable(self.where, "not connected")
        limit = within or self.timeout
        try:
            with trio.fail_after(limit):
                return await command(self._client)
        except trio.TooSlowError:
            raise StoreUnavailable(self.where, f"no answer within {limit:g} s") from None
        except (coredis.exceptions.ConnectionError, coredis.exceptions.BusyLoadingError, OSError) as error:
            raise StoreUnavailable(self.where, str(error) or type(error).__name__) from None

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # --- counters -------------------------------------------------------------------------------

    async def count(self, session: str, name: str) -> int:
        key = self._key("s", _session(session), "counts")
        after: int = await self._run(lambda r: r.hincrby(key, name, 1))
        return after - 1

    # --- stored responses -----------------------------------------------------------------------

    async def put_response(self, session: str, response_id: str, stored: StoredResponse,
                           items: Mapping[str, Message]) -> None:
        s, ttl = _session(session), int(self.response_ttl * 1000)
        blob = json.dumps({"body": stored.body, "history": [message_json(m) for m in stored.history]})

        async def put(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(self._key("s", s, "r", response_id), blob, px=ttl)
                for item_id, message in items.items():
                    pipe.set(self._key("s", s, "i", item_id),
                             json.dumps({"response": response_id, "message": message_json(message)}), px=ttl)

        await self._run(put)

    async def response(self, session: str, response_id: str) -> StoredResponse | None:
        key = self._key("s", _session(session), "r", response_id)
        blob: str | None = await self._run(lambda r: r.get(key))
        if blob is None:
            return None
        value = json.loads(blob)
        return StoredResponse(body=value["body"], history=tuple(message_from(m) for m in value["history"]))

    async def delete_response(self, session: str, response_id: str) -> bool:
        key = self._key("s", _session(session), "r", response_id)
        deleted: int = await self._run(lambda r: r.delete([key]))
        return deleted > 0

    async def item(self, session: str, item_id: str) -> Message | None:
        s = _session(session)
        blob: str | None = await self._run(lambda r: r.get(self._key("s", s, "i", item_id)))
        if blob is None:
            return None
        value = json.loads(blob)
        response = self._key("s", s, "r", value["response"])
        if not await self._run(lambda r: r.exists([response])):
            return None  # (its response was deleted)
        return message_from(value["message"])

    # --- the journal ----------------------------------------------------------------------------

    async def journal_put(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        args: list[str | int] = [self.journal_limit, self._key("journal", "s", "")]
        for entry in entries:
            args += [f"{_session(entry.session)}/{entry.key}", repr(entry.order), json.dumps(entry.as_json())]
        keys = [self._key("journal", "order"), self._key("journal", "entries")]
        await self._run(lambda r: r.eval(_JOURNAL_PUT, keys=keys, args=args))

    async def journal(self, session: str | None = None) -> list[dict[str, Any]]:
        order = self._key("journal", "order") if session is None else self._key("journal", "s", _session(session))
        entries = self._key("journal", "entries")

        async def read(r: Any) -> list[str | None]:
            members = await r.zrange(order, 0, -1)
            return list(await r.hmget(entries, members)) if members else []

        return [json.loads(blob) for blob in await self._run(read) if blob is not None]

    # --- reset and the configuration ------------------------------------------------------------

    async def reset(self, session: str | None = None, journal: bool = True) -> None:
        if session is None:
            if journal:
                keys = [self._key("journal", name) for name in ("order", "entries")]
                await self._delete_starting(self._key("journal", "s", ""))
                await self._run(lambda r: r.delete(keys))
            await self._delete_starting(self._key("s", ""))
            return
        s = _session(session)
        if journal:
            keys = [self._key("journal", "order"), self._key("journal", "entries"), self._key("journal", "s", s)]
            await self._run(lambda r: r.eval(_JOURNAL_FORGET, keys=keys, args=[]))
        await self._delete_starting(self._key("s", s, ""))

    async def _delete_starting(self, start: str) -> None:
        """Delete every key whose name starts with `start`."""
        match = _pattern(start) + "*"

        async def delete(r: Any) -> None:
            batch = []
            async for key in r.scan_iter(match=match, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await r.delete(batch)
                    batch = []
            if batch:
                await r.delete(batch)

        await self._run(delete, within=max(self.timeout, 30.0))  # (a big reset scans many keys)

    async def put_config(self, sources: Sequence[Source]) -> int:
        blob = json.dumps([[source.name, source.text] for source in sources])
        version: int = await self._run(lambda r: r.eval(_CONFIG_PUT, keys=[self._key("config")], args=[blob]))
        return int(version)

    async def config(self) -> SharedConfig | None:
        found: dict[str, str] = await self._run(lambda r: r.hgetall(self._key("config")))
        if "sources" not in found:
            return None
        sources = tuple(Source(name, text) for name, text in json.loads(found["sources"]))
        return SharedConfig(int(found["version"]), sources)

    async def config_version(self) -> int:
        version: str | None = await self._run(lambda r: r.hget(self._key("config"), "version"))
        return int(version) if version is not None else 0

    async def announce(self, member: str, version: int, ttl: float) -> None:
        keys = [self._key("members"), self._key("members", "version")]
        await self._run(lambda r: r.eval(_ANNOUNCE, keys=keys, args=[member, ttl, version]))

    async def announced(self) -> dict[str, int]:
        keys = [self._key("members"), self._key("members", "version")]
        found: list[str] = await self._run(lambda r: r.eval(_ANNOUNCED, keys=keys, args=[]))
        return {member: int(version) for member, version in zip(found[::2], found[1::2])}

    # --- asking every process to write its journal (see `Journal`: readers wait on writers) ----

    async def ask_to_flush(self, members: Sequence[str], token: str) -> None:
        """Ask each of `members` to write what its journal holds, and to answer `token`."""
        async def ask(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for member in members:
                    key = self._key("flush", member)
                    pipe.rpush(key, [token])
                    pipe.pexpire(key, FLUSH_KEPT_MS)  # (a process that is gone never pops it)

        await self._run(ask)

    async def flush_asked(self, member: str, within: float) -> list[str]:
        """Wait up to `within` seconds until `member` is asked to write its journal; the tokens
        to answer (none if it was not asked)."""
        key = self._key("flush", member)
        popped: list[str] | None = await self._run(lambda r: r.blpop([key], timeout=within),
                                                   within=self.timeout + within)
        if popped is None:
            return []
        more: list[str] | None = await self._run(lambda r: r.lpop(key, 1000))
        return [popped[1], *(more or [])]

    async def say_flushed(self, member: str, tokens: Sequence[str]) -> None:
        async def say(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for token in tokens:
                    key = self._key("flushed", token)
                    pipe.rpush(key, [member])
                    pipe.pexpire(key, FLUSH_KEPT_MS)

        await self._run(say)

    async def flushed(self, token: str, count: int, within: float) -> int:
        """Wait up to `within` seconds for `count` answers to `token`; how many came."""
        key = self._key("flushed", token)
        came = 0
        deadline = trio.current_time() + within
        while came < count and (left := deadline - trio.current_time()) > 0:
            popped = await self._run(lambda r: r.blpop([key], timeout=max(left, 0.001)),
                                     within=self.timeout + left)
            came += popped is not None
        return came
