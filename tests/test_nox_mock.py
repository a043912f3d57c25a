"""`nox -s mock`, as README's Development section runs it: once its environment exists, it serves
without installing the project again (it used to reinstall at every start, 13-14 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, _readline


def start_mock(envdir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "nox", "--envdir", str(envdir), "-s", "mock", "--", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    while True:
        line = _readline(process, timeout=180)
        lines.append(line)
        if not line or line.startswith("http://"):
            return process, "".join(lines)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, to nox and the server it started
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_nox_mock_installs_once_then_just_serves(tmp_path):
    outputs = []
    for _ in range(2):
        process, output = start_mock(tmp_path / "envs")
        try:
            base_url = output.splitlines()[-1].strip()
            assert base_url.startswith("http://127.0.0.1:"), output
            assert httpx.get(base_url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
        finally:
            stop(process)
        outputs.append(output)
    first, second = outputs
    assert "pip install -e ." in first
    assert "pip install" not in second and "not reinstalling" in second
