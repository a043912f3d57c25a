"""The pytest plugin, used the way users use it: a project of their own, run by pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = '''
import pytest

@pytest.fixture(scope="session")
def openai_mock_config():
    return """
responses:
  - id: flaky
    matcher: {type: contains, messages: [{role: user, content: flaky}]}
    reply: Finally.
    steps:
      - error: {status: 500, message: first try fails}
      - {}
  - id: weather
    matcher: {type: contains, messages: [{role: user, content: weather}]}
    reply: Sunny.
"""
'''

TESTS = '''
import openai
import pytest


def ask(client, text):
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}]).choices[0].message.content


@pytest.mark.parametrize("n", [1, 2])
def test_each_test_has_its_own_steps(openai_mock, n):
    client = openai_mock.client(max_retries=0)
    with pytest.raises(openai.InternalServerError, match="first try fails"):
        ask(client, "flaky")
    assert ask(client, "flaky") == "Finally."
    assert [e["status"] for e in openai_mock.requests()] == [500, 200]


def test_the_default_retries_get_through(openai_mock):
    assert ask(openai_mock.client(), "flaky") == "Finally."


@pytest.mark.openai_mock(config={"responses": [
    {"id": "own", "matcher": {"type": "any"}, "reply": "a server of my own"}]})
def test_marker_gives_a_server_of_its_own(openai_mock):
    assert ask(openai_mock.client(), "anything") == "a server of my own"


def test_fails_on_purpose(openai_mock):
    assert ask(openai_mock.client(), "what's the weather?") == "Rainy."
'''


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=120)


def test_plugin_in_a_users_project(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_client.py").write_text(textwrap.dedent(TESTS))
    result = run_pytest(tmp_path, "-q", "-rN")
    out = result.stdout
    assert "1 failed, 4 passed" in out, out + result.stderr
    assert "FAILED test_client.py::test_fails_on_purpose" not in out  # -rN: no summary; the report follows
    report = out[out.index("test_fails_on_purpose"):]
    assert "openai-mock journal (session test_fails_on_purpose-" in report
    assert "POST /v1/chat/completions -> 200 completed: rule weather" in report
    assert "asked: user: what's the weather?" in report


def test_a_no_match_shows_why_in_the_report(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_miss.py").write_text(textwrap.dedent('''
        def test_miss(openai_mock):
            client = openai_mock.client(max_retries=0)
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
    '''))
    out = run_pytest(tmp_path, "-q").stdout
    assert "1 failed" in out
    assert "-> 400 error: rule (no rule)" in out
    assert "error: No rule matched this request. Nearest: rule 'flaky'" in out
    assert "message 1 content does not contain 'flaky'" in out


def test_default_config_is_the_bundled_scenarios(tmp_path):
    (tmp_path / "test_default.py").write_text(textwrap.dedent('''
        def test_story(openai_mock):
            reply = openai_mock.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Tell me a story"}])
            assert reply.choices[0].message.content.startswith("Once upon a time")
    '''))
    result = run_pytest(tmp_path, "-q")
    assert "1 passed" in result.stdout, result.stdout + result.stderr


TYPO_CONFTEST = '''
import pytest

@pytest.fixture(scope="session")
def openai_mock_config():
    return """
responses:
  - id: slow
    matcher: {type: any}
    reply: Hello.
    dealy_ms: 20
"""
'''


def test_a_bad_configuration_is_reported_once_as_its_lines(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(TYPO_CONFTEST))
    (tmp_path / "test_many.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.parametrize("n", range(7))
        def test_uses_the_mock(openai_mock, n):
            pass

        def test_without_the_mock():
            pass
    '''))
    result = run_pytest(tmp_path, "-q")
    out = result.stdout
    assert "1 passed, 7 errors" in out, out + result.stderr
    problem = "<string>:6:5: unknown key `dealy_ms` in a rule; did you mean `delay_ms`?"
    assert out.count(problem) == 1, out  # in full once
    assert "(1 problem in the mock's configuration, from the openai_mock_config fixture" in out
    summary = out[out.index("short test summary info"):]
    assert "ERROR test_many.py::test_uses_the_mock[0] - unknown key `dealy_ms` in a rule;" in summary  # the fix first
    # the other six point at the first (in full in the summary too when pytest runs under CI)
    errors = out[:out.index("short test summary info")]
    assert errors.count("the mock's configuration does not load: see the error of test_many.py::test_uses_the_mock[0]") == 6
    for n in range(1, 7):
        assert f"ERROR test_many.py::test_uses_the_mock[{n}] - the mock's configuration" in summary
    # no frames of the plugin, the server or the loader, nothing chained
    for frame in ("pytest_plugin.py", "mockserver.py", "scenario/", "ConfigError", "Traceback", "During handling"):
        assert frame not in out, frame
    assert len(out.splitlines()) < 50, out


def test_a_bad_marker_configuration_is_its_lines(tmp_path):
    (tmp_path / "test_marked.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.openai_mock(config={"responses": [{"id": "a", "matcher": {"type": "any"}}]})
        def test_marked(openai_mock):
            pass
    '''))
    out = run_pytest(tmp_path, "-q").stdout
    assert out.rstrip().splitlines()[-1].startswith("1 error in"), out  # (and no warning: the marker is registered)
    assert "<dict>:3:3: rule 'a' has a `matcher` but no `response` or `reply`" in out
    assert "from this test's @pytest.mark.openai_mock" in out
    assert "mockserver.py" not in out and "Traceback" not in out


def test_a_client_without_the_session_header_is_named_in_the_report(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_env.py").write_text(textwrap.dedent('''
        import openai

        def test_app_builds_its_own_client(openai_mock, monkeypatch):
            monkeypatch.setenv("OPENAI_BASE_URL", openai_mock.base_url)
            monkeypatch.setenv("OPENAI_API_KEY", openai_mock.api_key)
            client = openai.OpenAI()  # as the app does: no X-Mock-Session
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "weather?"}])
            assert openai_mock.requests(), "the test's session saw nothing"
    '''))
    out = run_pytest(tmp_path, "-q").stdout
    assert "1 failed" in out, out
    report = out[out.index("openai-mock journal (session test_app_builds_its_own_client-"):]
    assert "no requests reached the mock in this test's session\n" in report
    assert ("but 1 request reached the `default` session during this test: a client without the "
            "X-Mock-Session: test_app_builds_its_own_client-") in report
    assert "default_headers=openai_mock.headers()" in report
    assert "POST /v1/chat/completions -> 200 completed: rule weather" in report


def test_the_shared_servers_port_is_set_with_openai_mock_options(tmp_path):
    import socket

    with socket.socket() as probe:  # a free port, for the project to ask for
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f'''
        import pytest

        @pytest.fixture(scope="session")
        def openai_mock_options():
            return {{"port": {port}}}
    '''))
    (tmp_path / "test_port.py").write_text(textwrap.dedent(f'''
        def test_port(openai_mock):
            assert openai_mock.base_url == "http://127.0.0.1:{port}/v1"
            reply = openai_mock.client().chat.completions.create(
                model="m", messages=[{{"role": "user", "content": "Tell me a story"}}])
            assert reply.choices[0].message.content.startswith("Once upon a time")
    '''))
    result = run_pytest(tmp_path, "-q")
    assert "1 passed" in result.stdout, result.stdout + result.stderr
