"""Tasks: `nox -s mock` serves the bundled scenarios, `nox -s tests` runs every test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
NODE_TESTS = ROOT / "tests" / "node"


def install_project(session: nox.Session, extras: str = "") -> None:
    """`pip install -e .[extras]`, only when the environment does not have it yet or
    pyproject.toml has changed since: the install is editable, so code changes need none, and
    skipping it lets `nox -s mock` serve within a second or two of being started."""
    target = f".{extras}"
    stamp = Path(session.virtualenv.location) / ".openai-mock-install"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + target.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want:
        session.log(f"{target} is installed and pyproject.toml has not changed: not reinstalling")
        return
    session.install("-e", target)
    stamp.write_text(want)


@nox.session
def mock(session: nox.Session) -> None:
    """Serve the bundled scenarios (`nox -s mock -- --port 0 -v` passes arguments through)."""
    install_project(session)
    session.run("openai-mock", "serve", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Every test: the real server on loopback, driven by the official Python and Node SDKs."""
    install_project(session, "[test]")
    session.run("npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(NODE_TESTS),
                external=True)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, and mypy in strict mode on src/ (its configuration is in pyproject.toml)."""
    install_project(session, "[test]")  # (mypy reads the dependencies' types)
    session.install("ruff", "mypy>=1.10", "types-PyYAML", "types-regex")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Figures, with ratios against baselines run in the same process: see bench/README.md."""
    install_project(session, "[test]")
    session.run("npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix",
                str(ROOT / "bench" / "node"), external=True)
    session.run("python", "bench/run.py", *session.posargs)
