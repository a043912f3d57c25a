"""README's quick start, then docs/pytest.md's example project, followed as a newcomer does.

The project is copied to a temporary folder as a fresh clone would lay it out (`openai-mock/`,
without .nox, .git or node_modules). One bash shell, started in the clone, runs README's
```bash quickstart block (a new virtualenv with `python -m venv`, pip from the package index),
then walks docs/pytest.md in order: its ```bash quickstart blocks as written, and each of its
`file=NAME` blocks saved where the reader is at that point. Every command has to work as
written; each `pytest` run has to report the count its block's comment promises.
Then, from that virtualenv, `openai-mock serve` answers README's first example, and
`openai-mock record` starts.

pip fetches the packages (from its cache when it has them): about 20-60 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import _readline
from test_docs import ADDRESS, ROOT, blocks

MARK = "quickstart"
SKIPPED = shutil.ignore_patterns(".nox", ".git", "node_modules", "__pycache__", ".venv", "*.egg-info",
                                 ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist")


def steps(page: Path) -> list[tuple[str, str, dict[str, str], str]]:
    """What a reader of the page does, in order: ("run", text) for a ```bash quickstart block,
    ("save", body) with its file name for a `file=NAME` block."""
    found = []
    for language, attributes, body, _ in blocks(page):
        if language == "bash" and MARK in attributes:
            found.append(("run", textwrap.dedent(body), attributes, ""))
        elif "file" in attributes:
            found.append(("save", textwrap.dedent(body), attributes, attributes["file"]))
    return found


def shell_script(state: Path) -> tuple[str, list[int]]:
    """The bash script of the walk, and the `N passed` counts its pytest runs promise."""
    readme = steps(ROOT / "README.md")
    assert [kind for kind, *_ in readme] == ["run"], "README.md has one ```bash quickstart block"
    lines = ["set -e", readme[0][1],
             # where the quick start left the reader, for the checks after the walk
             f'printf "%s\\n" "$VIRTUAL_ENV" > "{state}"']
    promised = []
    for kind, text, _, name in steps(ROOT / "docs" / "pytest.md"):
        if kind == "run":
            lines.append(text)
            promised += [int(count) for count in re.findall(r"#\s*(\d+) passed", text)]
        else:
            marker = "END_OF_THE_DOCS_FILE"
            assert marker not in text
            lines.append(f"mkdir -p \"$(dirname '{name}')\" && cat > '{name}' <<'{marker}'\n{text}{marker}")
    return "\n".join(lines) + "\n", promised


def newcomer_environment(tmp_path: Path) -> dict[str, str]:
    """This machine's environment without the test run's virtualenv: `python3` is the
    interpreter behind it (3.11 or later, as the README asks)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix) / "bin" / version
    assert base.is_file(), base
    (bin_dir / "python3").symlink_to(base)
    here = Path(sys.prefix).resolve()
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and not Path(entry).resolve().is_relative_to(here)]
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not key.startswith("PYTEST_")}
    environment["PATH"] = os.pathsep.join([str(bin_dir), *path])
    return environment


def first_line(command: list[str], environment: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    return process, _readline(process, timeout=60)


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        _, errors = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
    return errors


@pytest.mark.slow
def test_readme_then_pytest_page_word_for_word_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "openai-mock"
    shutil.copytree(ROOT, clone, ignore=SKIPPED)
    state = tmp_path / "where-the-quick-start-left-off"
    script, promised = shell_script(state)
    assert promised, "docs/pytest.md says what its pytest runs report"
    environment = newcomer_environment(tmp_path)

    walk = subprocess.run(["bash", "-c", script], cwd=clone, env=environment, capture_output=True,
                          text=True, timeout=900)
    output = walk.stdout + walk.stderr
    assert walk.returncode == 0, f"the walk stopped (exit {walk.returncode}):\n{script}\n---\n{output[-6000:]}"
    summaries = re.findall(r"^=* ?(\d+) passed\b.*$", walk.stdout, re.M)
    assert [int(count) for count in summaries] == promised, walk.stdout[-6000:]
    assert not re.search(r"\b\d+ (failed|errors?)\b", walk.stdout), walk.stdout[-6000:]

    # the virtualenv the quick start made (`. ../my-project/.venv/bin/activate`)
    venv = Path(state.read_text().strip())
    assert venv.is_relative_to(tmp_path) and (venv / "bin" / "openai-mock").is_file(), venv
    project = venv.parent

    # `openai-mock serve` answers the example the README runs next (`python3 hello.py`)
    server, url = first_line([str(venv / "bin" / "openai-mock"), "serve", "--port", "0"], environment, project)
    try:
        assert url.startswith("http://127.0.0.1:"), url + stop(server)
        hello = next(body for language, _, body, _ in blocks(ROOT / "README.md") if language == "python")
        (project / "hello.py").write_text(ADDRESS.sub(url.strip().removesuffix("/v1"), hello))
        ran = subprocess.run([str(venv / "bin" / "python3"), "hello.py"], cwd=project, env=environment,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.startswith("Once upon a time"), ran.stdout
    finally:
        stop(server)

    # `openai-mock record` (docs/record-and-replay.md) starts with what the install brought
    recorder, url = first_line([str(venv / "bin" / "openai-mock"), "record", "--upstream", "http://127.0.0.1:9/v1",
                                "--out", "recorded.yaml", "--port", "0"], environment, project)
    errors = stop(recorder)
    assert url.startswith("http://127.0.0.1:"), errors
