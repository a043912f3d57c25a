"""Tasks: `nox -s mock` serves the bundled scenarios, `nox -s tests` runs every test."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
NODE_TESTS = ROOT / "tests" / "node"


@nox.session
def mock(session: nox.Session) -> None:
    """Serve the bundled scenarios (`nox -s mock -- --port 0 -v` passes arguments through)."""
    session.install("-e", ".")
    session.run("openai-mock", "serve", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Every test: the real server on loopback, driven by the official Python and Node SDKs."""
    session.install("-e", ".[test]")
    session.run("npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(NODE_TESTS),
                external=True)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Figures, with ratios against baselines run in the same process: see bench/README.md."""
    session.install("-e", ".[test]")
    session.run("npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix",
                str(ROOT / "bench" / "node"), external=True)
    session.run("python", "bench/run.py", *session.posargs)
