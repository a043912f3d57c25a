"""The examples in README.md and docs/*.md run, exactly as written.

Conventions for the pages (see docs/README.md):
- A ```yaml block is a complete scenario configuration: it must load. (```yaml invalid must not.)
- A ```python block runs against a mock started with the page's latest yaml block before it
  (or the bundled scenarios when there is none), its address written as the docs show it,
  http://127.0.0.1:3000; the examples share that mock until the next yaml block.
  README's run twice in a row: a newcomer runs them again against the server they started.
- Blocks with `file=NAME` (```python file=test_retry.py, ```yaml file=scenarios/x.yaml) form a
  small project per page, which pytest runs in a subprocess: every test in it must pass.
- Other languages (bash, js, text) are not run here; the Node examples are covered by tests/test_node*.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from openai_mock import ConfigError, MockServer
from openai_mock.scenario import load_text

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
ADDRESS = re.compile(r"http://(?:127\.0\.0\.1|localhost):3000")


def blocks(page: Path) -> list[tuple[str, dict[str, str], str, int]]:
    """(language, attributes, body, line) of every fenced block of a page."""
    found = []
    text = page.read_text()
    for match in FENCE.finditer(text):
        info = match["info"].strip().split()
        language = info[0] if info else ""
        attributes = dict(part.split("=", 1) if "=" in part else (part, "") for part in info[1:])
        found.append((language, attributes, match["body"], text.count("\n", 0, match.start()) + 1))
    return found


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def run_examples(page: Path, times: int = 1) -> None:
    """Run the page's python blocks, each `times` times in a row, against the mock of its yaml."""
    config = None
    mock: MockServer | None = None
    ran = 0
    try:
        for language, attributes, body, line in blocks(page):
            where = f"{page_id(page)}:{line}"
            if "file" in attributes:
                continue
            if language == "yaml":
                if "invalid" in attributes:
                    with pytest.raises(ConfigError):
                        load_text(body, where)
                    continue
                try:
                    config = load_text(body, where)
                except ConfigError as error:
                    pytest.fail(f"the yaml example at {where} does not load:\n{error}")
                if mock is not None:
                    mock.stop()
                    mock = None
            elif language == "python":
                if mock is None:
                    mock = MockServer(config).start()
                code = ADDRESS.sub(mock.url, textwrap.dedent(body))
                for run in range(1, times + 1):
                    namespace = {"__name__": f"docs_example_{line}"}
                    try:
                        exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the docs' own examples
                    except Exception as error:  # noqa: BLE001
                        again = f" on run {run} against the same server" if run > 1 else ""
                        pytest.fail(f"the python example at {where} failed{again}: {error!r}")
                ran += 1
    finally:
        if mock is not None:
            mock.stop()
    # a page may have no runnable example; one that has them must have run them all
    expected = sum(1 for language, attributes, _, _ in blocks(page) if language == "python" and "file" not in attributes)
    assert ran == expected


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page_examples_run(page):
    run_examples(page)


def test_readme_examples_pass_every_time_they_are_run():
    """A newcomer runs README's examples again and again against the one server they started:
    each passes every time (one that counted on a fresh server's `steps` passed only once)."""
    assert sum(1 for block in blocks(ROOT / "README.md") if block[0] == "python") >= 4
    run_examples(ROOT / "README.md", times=2)


@pytest.mark.parametrize("page", [p for p in PAGES if any("file" in b[1] for b in blocks(p))], ids=page_id)
def test_page_projects_pass_under_pytest(page, tmp_path):
    tests = 0
    for language, attributes, body, _ in blocks(page):
        if "file" not in attributes:
            continue
        target = tmp_path / attributes["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(body))
        if language == "python" and target.name.startswith("test_"):
            tests += len(re.findall(r"^(?:async )?def test_", body, re.M))
    assert tests > 0, "a page with project files has tests to run"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert f"{tests} passed" in result.stdout and "failed" not in result.stdout, result.stdout + result.stderr
