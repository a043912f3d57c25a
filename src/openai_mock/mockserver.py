"""`MockServer`: the mock in a background thread, for tests.

A thread running trio starts in a few milliseconds once the modules are imported (a
subprocess would pay the interpreter and import cost every time), and it cannot outlive the
test process. The listening socket is bound in the caller's thread, so a port conflict raises
right there, and `stop()` returns only once that socket is closed.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from .http.common import SESSION_HEADER
from .http.state import Settings
from .log import RequestLog
from .scenario import load
from .scenario.model import Config
from .server import Server, bundled_scenarios, listen

DEFAULT_API_KEY = "sk-mock"


def _load(config: str | Path | Mapping[str, Any] | Config | None) -> Config:
    if config is None:
        return load(bundled_scenarios())
    if isinstance(config, Config):
        return config
    return load(config)


class MockServer:
    """A running mock on a free loopback port.

    `config` is a path (file or folder), YAML text, a dict, or None for the bundled scenarios.
    A bad configuration raises `openai_mock.ConfigError` with `FILE:LINE:COLUMN` lines.
    """

    def __init__(self, config: str | Path | Mapping[str, Any] | Config | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, session: str = "default",
                 log: RequestLog | None = None):
        self.config = _load(config)
        self.host = host
        self.session = session
        self._requested_port = port
        self._server = Server(self.config, log=log or RequestLog(None), settings=Settings(bound_host=host))
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> MockServer:
        if self._thread is not None:
            raise RuntimeError("this MockServer is already started")
        sock = listen(self.host, self._requested_port)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=trio.run, args=(self._main, sock), daemon=True,
                                        name=f"openai-mock:{self.port}")
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("the mock server failed to start") from self._failure
        return self

    async def _main(self, sock: Any) -> None:
        self._token = trio.lowlevel.current_trio_token()
        try:
            with trio.CancelScope() as self._cancel:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self._server.serve, sock)
                    self._ready.set()
        except BaseException as error:  # surface start-up failures in start()
            self._failure = error
            raise
        finally:
            self._ready.set()

    def stop(self) -> None:
        """Stop serving; returns when the port is closed and the thread is gone."""
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
        self.config = _load(config)
        if self._token is None or self._thread is None:
            self._server.state.replace(self.config)  # (nothing has happened yet: no state to reset)
        else:  # the state belongs to the server's thread: change it there, between requests
            trio.from_thread.run(self._server.state.publish, self.config, (), trio_token=self._token)

    def _admin(self, method: str, path: str) -> Any:
        # plain HTTP, as a user's tooling would do it: the server's state stays in its thread
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if method != "GET":
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, method=method, headers=headers,
                                         data=b"" if method != "GET" else None)
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

