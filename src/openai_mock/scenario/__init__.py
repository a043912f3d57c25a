"""Scenario files: YAML to a validated, frozen `Config`."""

from .load import (
    ConfigError,
    Source,
    load,
    load_bytes,
    load_path,
    load_path_sources,
    load_sources,
    load_text,
    read_source,
    stdin_source,
    watched_files,
)
from .model import Behaviour, Config, ErrorSpec, Reply, Rule, TextMatch, ToolCall, Turn
from .yamlsrc import Pos, Problem

__all__ = [
    "Behaviour", "Config", "ConfigError", "ErrorSpec", "Pos", "Problem", "Reply", "Rule", "Source",
    "TextMatch", "ToolCall", "Turn", "load", "load_bytes", "load_path", "load_path_sources", "load_sources",
    "load_text", "read_source", "stdin_source", "watched_files",
]
