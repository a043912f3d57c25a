"""`MockServer`: the mock in a background thread, for tests.

A thread running trio starts in a few milliseconds once the modules are imported (a
subprocess would pay the interpreter and import cost every time), and it cannot outlive the
test process. The listening socket is bound in the caller's thread, so a port conflict raises
right there, and `stop()` returns only once that socket is closed.

With `workers=N` (N > 1), the mock is `openai-mock serve --workers N` in a subprocess instead,
its state in the Redis that `state` names; the same methods reach it over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio
import yaml

from .http import timers
from .http.common import SESSION_HEADER
from .http.state import Settings
from .log import RequestLog
from .scenario import Source, load, load_path_sources
from .scenario.kernel import plain
from .scenario.load import is_path
from .scenario.model import Config
from .server import Server, bundled_scenarios, listen
from .serving import open_store

DEFAULT_API_KEY = "sk-mock"


ConfigArg = str | Path | Mapping[str, Any] | Config | None


def _load(config: ConfigArg) -> Config:
    if config is None:
        return load(bundled_scenarios())
    if isinstance(config, Config):
        return config
    return load(config)


def _sources(config: ConfigArg) -> tuple[Source, ...]:
    """What other processes load `config` from (a configuration given as a `Config` has none)."""
    if config is None:
        return load_path_sources(bundled_scenarios())[1]
    if isinstance(config, Config):
        raise TypeError("a Config object cannot be shared with other processes: give its path, YAML text or a dict")
    if isinstance(config, Mapping):
        return (Source("<dict>", yaml.safe_dump(plain(config), sort_keys=False, allow_unicode=True)),)
    if isinstance(config, Path) or (isinstance(config, str) and is_path(config)):
        return load_path_sources(Path(config))[1]
    return (Source("<string>", config),)


class MockServer:
    """A running mock on a free loopback port.

    `config` is a path (file or folder), YAML text, a dict, or None for the bundled scenarios.
    A bad configuration raises `openai_mock.ConfigError` with `FILE:LINE:COLUMN` lines.
    """

    def __init__(self, config: ConfigArg = None, *, host: str = "127.0.0.1", port: int = 0,
                 session: str = "default", log: RequestLog | None = None, workers: int = 1,
                 state: str | None = None, state_prefix: str = "openai-mock:"):
        """`workers`: serve with that many processes (`serve --workers`), which needs `state`, the
        URL of a Redis (`redis://HOST:PORT/DB`) where they share their state; with one worker,
        `state` puts this server's state there too (shared with other servers)."""
        if workers > 1 and state is None:
            raise ValueError(f"workers={workers} needs a state that the workers share: give "
                             "state='redis://127.0.0.1:6379/0' (a Redis server)")
        self.config = _load(config)
        self.host = host
        self.session = session
        self.workers, self.state, self.state_prefix = workers, state, state_prefix
        self._sources = _sources(config) if state is not None else ()
        self._requested_port = port
        self._log = log or RequestLog(None)
        self._server: Server | None = None
        self._process: subprocess.Popen[str] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> MockServer:
        if self._thread is not None or self._process is not None:
            raise RuntimeError("this MockServer is already started")
        if self.workers > 1:
            return self._start_workers()
        sock = listen(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=trio.run, args=(self._main, sock), kwargs={"clock": timers.Clock()},
                                        daemon=True, name=f"openai-mock:{self.port}")
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("the mock server failed to start") from self._failure
        return self

    async def _main(self, sock: Any) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            with trio.CancelScope() as self._cancel:
                async with open_store(self.state, self.state_prefix) as store, trio.open_nursery() as nursery:
                    version = await store.put_config(self._sources) if self.state is not None else 0
                    self._server = Server(self.config, log=self._log, settings=Settings(bound_host=self.host),
                                          store=store, config_version=version, sources=self._sources)
                    await nursery.start(self._server.serve, sock)
                    self._ready.set()
        except BaseException as error:  # surface start-up failures in start()
            self._failure = error
            raise
        finally:
            self._ready.set()

    def _start_workers(self) -> MockServer:
        """`openai-mock serve --workers N` in a subprocess, with this configuration."""
        self._folder = tempfile.TemporaryDirectory(prefix="openai-mock-")
        folder = Path(self._folder.name)
        for number, source in enumerate(self._sources):
            (folder / f"{number:03}.yaml").write_text(source.text, encoding="utf-8")
        assert self.state is not None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "openai_mock", "serve", "--config", str(folder), "--host", self.host,
             "--port", str(self._requested_port), "--workers", str(self.workers), "--state", self.state,
             "--state-prefix", self.state_prefix, "--log-file", str(folder / "server.log")],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("http://"):
            log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
            self.stop()
            raise RuntimeError(f"the mock server failed to start: {line.strip()} {log}".strip())
        self.port = int(line.strip().removesuffix("/v1").rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """Stop serving; returns when the port is closed and the thread (or the processes) are gone."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if thread.is_alive() and self._token is not None and self._cancel is not None:
            try:
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        thread.join()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- addresses and clients -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root URL (health and admin endpoints live here)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the SDKs take as `base_url`."""
        return f"{self.url}/v1"

    @property
    def api_key(self) -> str:
        return self.config.api_key or DEFAULT_API_KEY

    def headers(self, session: str | None = None) -> dict[str, str]:
        return {SESSION_HEADER: session or self.session}

    def client(self, session: str | None = None, **options: Any) -> Any:
        """An `openai.OpenAI` bound to this server, sending this mock's session header."""
        import openai

        options.setdefault("base_url", self.base_url)
        options.setdefault("api_key", self.api_key)
        options["default_headers"] = {**self.headers(session), **options.get("default_headers", {})}
        return openai.OpenAI(**options)

    def async_client(self, session: str | None = None, **options: Any) -> Any:
        """An `openai.AsyncOpenAI` bound to this server (use it under trio or asyncio)."""
        import openai

        options.setdefault("base_url", self.base_url)
        options.setdefault("api_key", self.api_key)
        options["default_headers"] = {**self.headers(session), **options.get("default_headers", {})}
        return openai.AsyncOpenAI(**options)

    # --- state -----------------------------------------------------------------------------

    def requests(self, session: str | None = None) -> list[dict[str, Any]]:
        """The journal, oldest first (as GET /_mock/requests); all sessions unless one is named."""
        query = f"?session={urllib.parse.quote(session)}" if session else ""
        entries: list[dict[str, Any]] = self._admin("GET", f"/_mock/requests{query}")["data"]
        return entries

    def reset(self, session: str | None = None) -> None:
        """Clear state and journal: everything, or one session's."""
        query = f"?session={urllib.parse.quote(session)}" if session else ""
        self._admin("POST", f"/_mock/reset{query}")

    def replace(self, config: str | Path | Mapping[str, Any] | Config) -> None:
        """Serve another configuration from the next request on (state is reset)."""
        loaded = _load(config)
        sources = _sources(config) if self.state is not None else ()
        if self._process is not None:  # workers: as a user would, with PUT /_mock/scenarios
            if len(sources) != 1:
                raise ValueError("replace() sends workers one document: give one file, YAML text or a dict")
            self._admin("PUT", "/_mock/scenarios", sources[0].text.encode())
        elif self._server is None or self._token is None or self._thread is None:
            self._sources = sources  # (not started: served from the start)
        else:  # the state belongs to the server's thread: change it there, between requests
            trio.from_thread.run(self._server.state.publish, loaded, sources, trio_token=self._token)
        self.config = loaded

    def _admin(self, method: str, path: str, body: bytes = b"") -> Any:
        # plain HTTP, as a user's tooling would do it: the server's state stays in its thread
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if method != "GET":
            headers["Content-Type"] = "application/yaml" if body else "application/json"
        request = urllib.request.Request(self.url + path, method=method, headers=headers,
                                         data=body if method != "GET" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


class MockSession:
    """A view of a shared MockServer with a session of its own (the pytest plugin's handle)."""

    def __init__(self, server: MockServer, session: str | None = None):
        self.server = server
        self.session = session or f"test-{uuid.uuid4().hex[:12]}"

    base_url = property(lambda self: self.server.base_url)
    url = property(lambda self: self.server.url)
    api_key = property(lambda self: self.server.api_key)
    config = property(lambda self: self.server.config)

    def headers(self) -> dict[str, str]:
        return self.server.headers(self.session)

    def client(self, **options: Any) -> Any:
        return self.server.client(self.session, **options)

    def async_client(self, **options: Any) -> Any:
        return self.server.async_client(self.session, **options)

    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests(self.session)

    def reset(self) -> None:
        self.server.reset(self.session)

