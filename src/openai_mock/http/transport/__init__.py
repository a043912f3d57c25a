"""Serving on hypercorn's trio server, with a hand on each client's socket.

ASGI has no way to say "reset this connection". So instead of `hypercorn.trio.serve` we run
hypercorn's own trio `TCPServer` over our listening socket, giving each connection's ASGI
scope a `Connection` (in `scope["state"]`) through which a request can drop its connection
(FIN, the chunked body never terminated) or reset it (TCP RST). HTTP parsing and framing are
hypercorn's (and h11's); our subclass of its `TCPServer` changes how bytes are written, how the
keep-alive timeout is kept and how a connection is closed, and the accept loop is ours.
docs/architecture.md says why, with the figures.

A package of four modules, one idea each, because together they are the only code that knows
hypercorn's insides (its `TCPServer`'s private methods and attributes, and the h11 connection
behind them), and that boundary should be visible in one place:

- `connection.py`: the `Connection` a request uses (drop, reset, send_chunk, corked);
- `tcpserver.py`: the `TCPServer` subclass: direct writes, the idle timer, the lingering close;
- `listener.py`: the listening socket, `serve` and the accept loop;
- `descriptors.py`: the soft limit on descriptors raised at start, and the idle connections
  closed, longest idle first, when accept() finds none left.

hypercorn is pinned below its next minor release (pyproject.toml), and
tests/test_transport_contract.py checks every private part these modules use, by name and
signature, so that an upgrade fails loudly instead of silently losing the keep-alive timeout,
the lingering close or the direct write path. The rest of the project imports from here.
"""

from .connection import CONNECTION, Connection
from .listener import describe_bind_error, listen, serve

__all__ = ["CONNECTION", "Connection", "describe_bind_error", "listen", "serve"]
