"""The admin API's Quart app, imported once the server is already serving.

Importing Quart and what it brings (werkzeug, jinja2, flask's core, hypercorn's asyncio side)
takes about as long as the rest of start-up together. Nothing but the admin API needs it
(`router.py`), so `serve` answers every other path while a worker thread imports
`http/admin.py`; an admin request that comes before it is ready waits for it, a few hundred
milliseconds at most.
"""

from __future__ import annotations

import importlib
from typing import Any

import trio

from .asgi import Receive, Scope, Send
from .state import MockState

APP_MODULE = "openai_mock.http.admin"


class DeferredApp:
    """ASGI: forwards to the Quart app once `load()` has built it. It answers the lifespan
    protocol itself, so that hypercorn's start-up never waits for the import."""

    import_module = staticmethod(importlib.import_module)  # (tests hold the import back)

    def __init__(self, state: MockState):
        self._state = state
        self._app: Any = None
        self._ready = trio.Event()

    async def load(self) -> None:
        # (a server stopped meanwhile does not wait for the import: the thread finishes it alone)
        module = await trio.to_thread.run_sync(self.import_module, APP_MODULE, abandon_on_cancel=True)
        app = module.create_app(self._state)
        await app.startup()
        self._app = app
        self._ready.set()

    async def loaded(self) -> None:
        """Return once the Quart app serves."""
        await self._ready.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self._app is None:
            await self._ready.wait()
        await self._app(scope, receive, send)
