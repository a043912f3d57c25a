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
