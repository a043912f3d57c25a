"""How a response can fail: one frozen `Failure` value per kind a scenario may name (`failure:`).

Each kind is one row of `KINDS`, made of three answers that the rest of the code reads instead of
the kind's name:

- `tail`: what the response sends after the chunks it lets through (`fail_after_chunks`), in
  place of its normal end. A response that is not streamed is one frame sent whole or not at
  all, so it fails as a stream with nothing let through: `truncate` leaves it empty,
  `malformed` cuts it in half, and an `error_event` becomes the HTTP error it carries.
- `cut`: what then happens to the connection: the body ends cleanly (the terminating chunk, or
  the whole short body), or the connection is closed (FIN) or reset (RST) where it stands.
- `before_headers`: whether, with nothing to let through first (no `fail_after_chunks`, or no
  stream), it strikes before the response's headers, so the client gets no response at all.
  `hangs`: whether it first waits (`hang_ms`, or until the client leaves).

The journal names a failed response's outcome `failed:<name>` (`Failure.outcome`). The encoders
build the tail (`wire/sse.py`); the executor (`http/executor.py`) waits, sends and cuts. A new
kind that combines these answers differently is one row here; a new tail is one more `Tail`
and its branch in `wire/sse.py`; a new cut, one more `Cut` and the executor's connection action.
"""

from __future__ import annotations

import enum

import attrs


class Tail(enum.Enum):
    """What is sent after the chunks a failure lets through (never the stream's normal end)."""

    NOTHING = "nothing"
    MALFORMED = "the next frame with its JSON cut in half (not streamed: the body cut in half)"
    ERROR = "the endpoint's error frames, with the `error:` given (not streamed: that HTTP error)"


class Cut(enum.Enum):
    """What happens to the connection once the tail is sent."""

    END = "the body ends cleanly: the terminating chunk, or the (short) body of its length"
    FIN = "the connection is closed where it stands (FIN): a chunked body is left unterminated"
    RST = "the connection is reset (TCP RST) once what was sent has left"


@attrs.frozen
class Failure:
    name: str  # what a scenario's `failure:` says
    tail: Tail
    cut: Cut
    before_headers: bool = False  # with nothing to let through first: no response at all
    hangs: bool = False  # waits first: `hang_ms`, or until the client leaves
    outcome: str = attrs.field(init=False)  # the journal's name for it

    @outcome.default
    def _outcome(self) -> str:
        return f"failed:{self.name}"

    @property
    def carries_error(self) -> bool:
        """Whether the behaviour's `error:` is this failure's payload (rather than an HTTP error
        sent instead of the reply)."""
        return self.tail is Tail.ERROR


DISCONNECT = Failure("disconnect", Tail.NOTHING, Cut.FIN, before_headers=True)
RESET = Failure("reset", Tail.NOTHING, Cut.RST, before_headers=True)
TRUNCATE = Failure("truncate", Tail.NOTHING, Cut.END)
HANG = Failure("hang", Tail.NOTHING, Cut.FIN, before_headers=True, hangs=True)
MALFORMED = Failure("malformed", Tail.MALFORMED, Cut.END)
ERROR_EVENT = Failure("error_event", Tail.ERROR, Cut.END)

# every kind by name, in the order the documentation lists them
KINDS: dict[str, Failure] = {kind.name: kind for kind in (DISCONNECT, RESET, TRUNCATE, HANG, MALFORMED, ERROR_EVENT)}
FAILURES = tuple(KINDS)  # the names a scenario may give
DEFAULT = DISCONNECT  # `fail_after_chunks` without a `failure:`
