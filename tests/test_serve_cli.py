"""`openai-mock serve` options that tests elsewhere do not reach."""

from __future__ import annotations

import re
import time

import httpx

CONFIG = """
responses:
  - id: hello-rule
    matcher: {type: any}
    reply: hi
"""


def test_verbose_log_goes_to_the_log_file(fresh_server, tmp_path):
    log_file = tmp_path / "mock.log"
    server = fresh_server(CONFIG, "-v", "--log-file", str(log_file))
    httpx.post(f"{server.base_url}/chat/completions", timeout=10,
               json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    httpx.post(f"{server.base_url}/chat/completions", timeout=10, headers={"X-Mock-Session": "s1"},
               json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True})
    httpx.get(f"{server.base_url}/nowhere", timeout=10)
    deadline = time.monotonic() + 5
    while log_file.read_text().count("\n") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    descriptors, *lines = log_file.read_text().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d descriptors: soft limit .+", descriptors)  # (at start: docs/cli.md)
    assert re.fullmatch(r"\d\d:\d\d:\d\d POST +/v1/chat/completions +200 +[\d.]+ms  rule=hello-rule", lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d POST +/v1/chat/completions +200 +[\d.]+ms  rule=hello-rule "
                        r"session=s1 stream chunks=3", lines[1])  # role, "hi", the closing chunk
    assert "GET    /v1/nowhere" in lines[2] and " 404 " in lines[2] and "Invalid URL (GET /v1/nowhere)" in lines[2]
    # standard error: only what serve says at start
    assert server.log() == f"openai-mock: serving 1 rule from {server.config_path}\n"


def test_quiet_by_default(fresh_server):
    server = fresh_server(CONFIG)
    httpx.post(f"{server.base_url}/chat/completions", timeout=10,
               json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert server.log() == f"openai-mock: serving 1 rule from {server.config_path}\n"


def test_serve_says_which_files_and_how_many_rules_after_the_url(fresh_server, tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text(CONFIG)
    (folder / "b.yaml").write_text("".join(f"  - {{id: r{n}, matcher: {{type: any}}, reply: x}}\n" for n in range(3)))
    server = fresh_server(folder)  # (RunningServer reads the URL as the first line on standard output)
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.log() == f"openai-mock: serving 4 rules from {folder}: a.yaml (1), b.yaml (3)\n"


def test_serve_names_the_words_that_reach_the_bundled_rules(fresh_server):
    server = fresh_server(None)
    lines = server.log().splitlines()
    assert lines[0].startswith("openai-mock: serving 13 rules from the bundled scenarios (")
    assert lines[1] == "openai-mock: the bundled rules answer a last user message that:"
    said = {line.split()[-1] if ":" not in line else line.split(":")[0].split()[-1]: line for line in lines[2:]}
    assert re.fullmatch(r"  contains 'slow' +slow-stream: 200 ms between chunks", said["slow-stream"])
    assert re.fullmatch(r"  contains 'drop' +dropped-stream: stream cut after 3 chunks \(disconnect\)",
                        said["dropped-stream"])
    assert re.fullmatch(r"  contains 'flaky' +flaky: 429 then 503 then reply", said["flaky"])
    assert re.fullmatch(r"  contains 'story' +story-request", said["story-request"])
    assert re.fullmatch(r"  says anything else +hello", lines[-1])
    assert len(lines) == 2 + 13
    # and what it says is true: the words reach those rules
    client = server.client()
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a flaky one"}]
                                          ).choices[0].message.content == "Finally."
    statuses = [entry["status"] for entry in server.journal()]
    assert statuses == [429, 503, 200]


def test_a_busy_port_is_a_clear_error(fresh_server, tmp_path):
    import subprocess
    import sys

    server = fresh_server(CONFIG)
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    result = subprocess.run([sys.executable, "-m", "openai_mock", "serve", "--config", str(path),
                             "--port", str(server.port)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"cannot listen on 127.0.0.1:{server.port}: the port is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_the_server_quietly_even_mid_stream(tmp_path):
    import signal
    import subprocess
    import sys
    import threading

    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("reply: hi", "reply: one two three four five six seven eight\n"
                                                "    delay_ms: 500"))
    server = subprocess.Popen(  # SIGINT as a terminal sends it (a background shell may ignore it)
        [sys.executable, "-m", "openai_mock", "serve", "--config", str(path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        base_url = server.stdout.readline().strip()
        assert base_url.startswith("http://"), server.stderr.read()
        chunks: list[str] = []

        def stream() -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
            try:
                with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=10) as response:
                    for line in response.iter_lines():
                        chunks.append(line)
            except httpx.HTTPError:
                pass  # the server went away mid-stream: what Ctrl-C does

        reader = threading.Thread(target=stream)
        reader.start()
        deadline = time.monotonic() + 10
        while not any('"role"' in c for c in chunks) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert chunks, "the stream did not start"
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
        reader.join(timeout=10)
        assert not any("[DONE]" in c for c in chunks)  # it was cut, not finished
        assert server.stderr.read() == f"openai-mock: serving 1 rule from {path}\n"  # no traceback, nothing else
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()
