"""Reading a configuration: files, folders, standard input, text, bytes or a dict, each within a
size limit, to the YAML documents that `document.configuration` checks into a `Config`.

Every problem found is reported as `FILE:LINE:COLUMN: message`; loading goes on after a
problem so that one run names all of them.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from .document import configuration
from .kernel import ConfigError, plain
from .model import Config
from .yamlsrc import Pos, Problem, decode

__all__ = ["ConfigError", "Source", "load", "load_bytes", "load_path", "load_path_sources", "load_sources",
           "load_text", "read_source", "stdin_source", "watched_files"]

SCENARIO_SUFFIXES = (".yaml", ".yml")
# A scenario file (or standard input) larger than this is refused before it is read: the
# biggest real configurations are a few megabytes, and `/dev/zero` never ends.
MAX_FILE_SIZE = 64 * 1024 * 1024


@attrs.frozen
class Source:
    """One document of a configuration as it was read: its name (a path, `<stdin>`, `<PUT ...>`)
    and its text. A configuration travels between processes as its sources (`serve --workers`,
    `--state`): each process loads them itself."""

    name: str
    text: str


def load(source: str | bytes | Path | Mapping[str, Any]) -> Config:
    """A configuration from a file or folder path, `-` (standard input), YAML text (or its
    bytes) or a dict.

    A string is taken as YAML text when it spans several lines or looks like YAML (`{`, `[`,
    or `key: value`); otherwise it is a path, so that a missing file is reported as missing."""
    if isinstance(source, Mapping):
        try:
            text = yaml.safe_dump(plain(source), sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as error:
            raise ConfigError([Problem(Pos("<dict>", 1, 1), f"cannot be read as a configuration: {error}")]) from None
        return load_text(text, "<dict>")
    if isinstance(source, Path):
        return load_path(source)
    if isinstance(source, (bytes, bytearray)):
        return load_bytes(bytes(source))
    if not isinstance(source, str):
        raise TypeError(f"load() takes a path, YAML text or a dict, not {type(source).__name__}")
    if source == "-":
        return load_sources([stdin_source()])
    if is_path(source):
        return load_path(Path(source))
    return load_text(source, "<string>")


def is_path(source: str) -> bool:
    """Whether `load(source)` takes the string `source` as a path (else as YAML text)."""
    if "\n" in source:
        return False
    if Path(source).exists() or source.endswith(SCENARIO_SUFFIXES):
        return True
    text = source.strip()
    return bool(text) and not text.startswith(("{", "[", "#", "-")) and ": " not in text and not text.endswith(":")


def stdin_source() -> Source:
    """Standard input, up to `MAX_FILE_SIZE` bytes: more is refused without reading on."""
    if hasattr(sys.stdin, "buffer"):
        data = sys.stdin.buffer.read(MAX_FILE_SIZE + 1)
    else:  # (a text stream put in its place, as tests do)
        data = sys.stdin.read(MAX_FILE_SIZE + 1).encode()
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError([Problem(Pos("<stdin>", 1, 1), f"standard input is larger than {_size(MAX_FILE_SIZE)}, "
                                                         "the limit for a configuration")])
    text, problems = decode(data, "<stdin>")
    if problems:
        raise ConfigError(problems)
    return Source("<stdin>", text or "")


def load_path(path: Path) -> Config:
    """A configuration from a file or a folder of files. Only regular files are read (not a
    device like /dev/zero, a FIFO or a socket), each of at most `MAX_FILE_SIZE` bytes."""
    return load_path_sources(path)[0]


def load_path_sources(path: Path) -> tuple[Config, tuple[Source, ...]]:
    """`load_path`, and the sources the configuration was loaded from."""
    sources, problems, names = _read_path(path)
    return configuration([(s.text, s.name) for s in sources], problems, names), tuple(sources)


def load_sources(sources: Sequence[Source]) -> Config:
    """A configuration from its sources (as `load_path_sources` or `read_source` gave them)."""
    return configuration([(s.text, s.name) for s in sources], [], [s.name for s in sources])


def read_source(data: bytes, name: str) -> Source:
    """The bytes of a file (or an HTTP body) as a source: UTF-8, or UTF-16 with a BOM; bytes that
    are not text are reported at their line and column."""
    text, problems = decode(data, name)
    if text is None:
        raise ConfigError(problems)
    return Source(name, text)


def _read_path(path: Path) -> tuple[list[Source], list[Problem], list[str]]:
    """The sources of a file or folder, the problems of reading them, and the files' names."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError([Problem(Pos(str(path), 1, 1), "no such file or folder")]) from None
    except OSError as error:
        raise ConfigError([Problem(Pos(str(path), 1, 1), f"cannot read: {error.strerror or error}")]) from None
    problems: list[Problem] = []
    if stat.S_ISDIR(info.st_mode):
        try:
            files, problems = _folder_entries(path)
        except OSError as error:
            raise ConfigError([Problem(Pos(str(path), 1, 1), f"cannot read: {error.strerror or error}")]) from None
        if not files and not problems:
            raise ConfigError([Problem(Pos(str(path), 1, 1), "no *.yaml or *.yml files in this folder")])
    elif stat.S_ISREG(info.st_mode):
        files = [path]
    else:
        raise ConfigError([Problem(Pos(str(path), 1, 1), _not_regular(info.st_mode))])
    sources = []
    for file in files:
        data, problem = _read_file(file)
        if problem is not None:
            problems.append(problem)
            continue
        assert data is not None
        text, decode_problems = decode(data, str(file))
        problems += decode_problems
        if text is not None:
            sources.append(Source(str(file), text))
    return sources, problems, [str(f) for f in files]


def _read_file(file: Path) -> tuple[bytes | None, Problem | None]:
    """The bytes of a regular file of at most `MAX_FILE_SIZE` bytes, or why not. The file is
    opened without blocking and checked once open, so that a FIFO put in its place between a
    look and the read never hangs the loader."""
    where = Pos(str(file), 1, 1)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return None, Problem(where, f"cannot read: {error.strerror or error}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, Problem(where, _not_regular(info.st_mode))
        if info.st_size > MAX_FILE_SIZE:
            return None, Problem(where, _too_big(info.st_size))
        chunks, size = [], 0
        while size <= MAX_FILE_SIZE:  # (a file that grows meanwhile stops at the limit too)
            chunk = os.read(fd, min(1 << 20, MAX_FILE_SIZE + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_SIZE:
            return None, Problem(where, _too_big(size))
        return b"".join(chunks), None
    except OSError as error:
        return None, Problem(where, f"cannot read: {error.strerror or error}")
    finally:
        os.close(fd)


def _not_regular(mode: int) -> str:
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    return f"{kind}, not a scenario file: give a regular *.yaml file or a folder of them"


def _too_big(size: int) -> str:
    return f"the file is larger than {_size(MAX_FILE_SIZE)}, the limit for a scenario file ({size:,} bytes)"


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MB" if count % (1024 * 1024) == 0 else f"{count:,} bytes"


def load_text(text: str, name: str = "<string>") -> Config:
    return configuration([(text, name)])


def load_bytes(data: bytes, name: str = "<bytes>") -> Config:
    """A configuration from the bytes of a file (or an HTTP body): see `read_source`."""
    source = read_source(data, name)
    return load_text(source.text, name)


def watched_files(path: Path) -> list[Path]:
    """The files a configuration at `path` is read from (for --watch)."""
    if path.is_dir():
        files, problems = _folder_entries(path)
        return sorted(files + [Path(p.pos.file) for p in problems])  # (a FIFO that appears counts too)
    return [path]


def _folder_entries(path: Path) -> tuple[list[Path], list[Problem]]:
    """A folder's scenario files in name order, and a problem for each `*.yaml` entry that is
    neither a regular file nor a folder (a FIFO, a device, a broken link). Hidden files (editor
    droppings), other names and sub-folders are skipped."""
    files, problems = [], []
    for entry in sorted(path.iterdir()):
        if entry.suffix not in SCENARIO_SUFFIXES or entry.name.startswith("."):
            continue
        try:
            mode = entry.stat().st_mode
        except OSError as error:
            problems.append(Problem(Pos(str(entry), 1, 1), f"cannot read: {error.strerror or error}"))
            continue
        if stat.S_ISREG(mode):
            files.append(entry)
        elif not stat.S_ISDIR(mode):
            problems.append(Problem(Pos(str(entry), 1, 1), _not_regular(mode)))
    return files, problems
