"""The pytest plugin (entry point `pytest11`).

- `openai_mock_config` (session scope): what the shared server serves. Override it in a
  conftest.py to return a path, YAML text or a dict; the default is the bundled scenarios.
- `openai_mock`: one server for the whole test session; every test gets a `MockSession`
  handle whose `client()` sends a session of its own, so tests never share `steps` state.
- `openai_mock_options` (session scope): more arguments of the shared server's `MockServer`, such
  as `{"workers": 4, "state": "redis://127.0.0.1:6379/0"}`; empty by default.
- `@pytest.mark.openai_mock(config=..., **options)`: this test gets a server of its own (the
  options are `MockServer`'s, as `workers=2, state=...`).

When a test that used `openai_mock` fails, its journal (what each request got) is added to the
failure report.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the server's modules load only when a test asks for the mock
    from .mockserver import MockServer, MockSession
    from .scenario import ConfigError

_HANDLE = pytest.StashKey["MockSession"]()
_JOURNAL = pytest.StashKey[list[dict[str, Any]]]()
_STARTED = pytest.StashKey[float]()  # when the test got its handle (wall clock, as the journal's `time`)
_REPORTED = pytest.StashKey[str]()  # the test whose report shows the configuration error


def _config_failed(error: ConfigError, where: str) -> BaseException:
    """The mock's configuration does not load: reported as its `FILE:LINE:COLUMN` lines alone (no
    traceback), in full once; the other tests that need it say where to look."""
    count = f"{len(error.problems)} problem{'s' if len(error.problems) != 1 else ''}"
    failure = pytest.fail.Exception(f"{error}\n({count} in the mock's configuration, from {where}: fix it, and "
                                    "the tests that use openai_mock run again)", pytrace=False)
    first = error.problems[0]
    failure.openai_mock_summary = f"{first.message} ({first.pos})"  # type: ignore[attr-defined]  # (the short summary: the fix first)
    return failure


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "openai_mock(config, **options): serve this test from a mock server of its own with "
                   "this configuration (a path, YAML text or a dict) and MockServer's options (workers=, state=)")


@pytest.fixture(scope="session")
def openai_mock_config() -> Any:
    """The shared server's configuration: override this fixture in your conftest.py."""
    from .server import bundled_scenarios

    return bundled_scenarios()


@pytest.fixture(scope="session")
def openai_mock_options() -> dict[str, Any]:
    """More arguments of the shared server's `MockServer` (`workers`, `state`, ...): override
    this fixture in your conftest.py."""
    return {}


@pytest.fixture(scope="session")
def openai_mock_server(openai_mock_config: Any, openai_mock_options: dict[str, Any]) -> Iterator[MockServer]:
    """The mock server shared by the whole test session."""
    from .mockserver import MockServer
    from .scenario import ConfigError

    try:
        server = MockServer(openai_mock_config, **openai_mock_options)
    except ConfigError as error:
        raise _config_failed(error, "the openai_mock_config fixture") from None
    with server:
        yield server


@pytest.fixture
def openai_mock(request: pytest.FixtureRequest) -> Iterator[MockSession]:
    """A handle on the mock for this test: `.client()`, `.base_url`, `.requests()`, `.reset()`."""
    from .mockserver import MockServer, MockSession
    from .scenario import ConfigError

    request.node.stash[_STARTED] = time.time()
    marker = request.node.get_closest_marker("openai_mock")
    if marker is not None:
        options = dict(marker.kwargs)
        config = options.pop("config", marker.args[0] if marker.args else None)
        try:
            own = MockServer(config, **options)
        except ConfigError as error:
            raise _config_failed(error, "this test's @pytest.mark.openai_mock") from None
        with own as server:
            handle = MockSession(server, session=_session_name(request))
            request.node.stash[_HANDLE] = handle
            yield handle
            _snapshot(request.node, handle)
        return
    server = request.getfixturevalue("openai_mock_server")
    handle = MockSession(server, session=_session_name(request))
    request.node.stash[_HANDLE] = handle
    yield handle
    _snapshot(request.node, handle)


def _session_name(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"


def _snapshot(item: pytest.Item, handle: MockSession) -> None:
    """Keep the journal at teardown: the report hook runs after the server may be gone."""
    try:
        item.stash[_JOURNAL] = handle.requests()
    except OSError:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    summary = getattr(call.excinfo.value, "openai_mock_summary", None) if call.excinfo is not None else None
    if summary is not None:  # a configuration that does not load (a session fixture's error comes again for each test)
        first = item.session.stash.setdefault(_REPORTED, item.nodeid)
        if first != item.nodeid:
            report.longrepr = f"the mock's configuration does not load: see the error of {first}"
        elif getattr(report.longrepr, "reprcrash", None) is not None:
            report.longrepr.reprcrash.message = summary
        return
    if _HANDLE not in item.stash:
        return
    handle = item.stash[_HANDLE]
    entries = item.stash.get(_JOURNAL, None)
    if entries is None:
        try:
            entries = handle.requests()
        except OSError:
            return
    text = format_journal(entries)
    elsewhere = _default_session(handle, item.stash.get(_STARTED, None))
    if elsewhere:
        text += "\n" + elsewhere
    report.sections.append((f"openai-mock journal (session {handle.session})", text))


def _default_session(handle: MockSession, started: float | None) -> str:
    """What reached the `default` session while this test ran: requests from a client that does
    not send the test's X-Mock-Session header (one built from OPENAI_BASE_URL, say)."""
    if started is None or handle.session == "default":
        return ""
    try:
        strays = [entry for entry in handle.server.requests("default") if entry["time"] >= started]
    except OSError:
        return ""
    if not strays:
        return ""
    from .http.common import SESSION_HEADER

    count = f"{len(strays)} request{'s' if len(strays) != 1 else ''}"
    return (f"but {count} reached the `default` session during this test: a client without the "
            f"{SESSION_HEADER}: {handle.session} header (one built from OPENAI_BASE_URL, say) shares the "
            "`default` session, and its `steps` counters, with every other such client, and this test's "
            "requests() does not see it. Make it with openai_mock.client(), or give it "
            "default_headers=openai_mock.headers():\n" + format_journal(strays))


def format_journal(entries: list[dict[str, Any]]) -> str:
    """One line per request, as a person scanning a failure wants it."""
    if not entries:
        return "no requests reached the mock in this test's session"
    lines = []
    for number, entry in enumerate(entries, 1):
        what = f"{entry['method']} {entry['path']}"
        status = entry["status"] if entry["status"] is not None else "---"
        rule = entry["rule_id"] or "(no rule)"
        step = f" step {entry['step']}" if entry["step"] is not None else ""
        stream = f", stream, {entry['chunks_sent']} chunks sent" if entry["stream"] else ""
        lines.append(f"{number:>3}. {what} -> {status} {entry['outcome']}: rule {rule}{step}{stream}")
        said = _last_message(entry.get("body"))
        if said:
            lines.append(f"     asked: {said}")
        if entry.get("error"):
            lines.append(f"     error: {entry['error']}")
    return "\n".join(lines)


def _last_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("messages", "input", "prompt"):
        value = body.get(key)
        if isinstance(value, list) and value:
            value = value[-1]
        if isinstance(value, dict):
            value = f"{value.get('role', '?')}: {value.get('content', value.get('output', ''))}"
        if value:
            text = value if isinstance(value, str) else json.dumps(value)
            return text if len(text) <= 200 else text[:197] + "..."
    return ""
