"""Scenario files: YAML to a validated, frozen `Config`."""

from .load import ConfigError, load, load_bytes, load_path, load_text, watched_files
from .model import Behaviour, Config, ErrorSpec, Reply, Rule, TextMatch, ToolCall, Turn
from .yamlsrc import Pos, Problem

__all__ = [
    "Behaviour", "Config", "ConfigError", "ErrorSpec", "Pos", "Problem", "Reply", "Rule",
    "TextMatch", "ToolCall", "Turn", "load", "load_bytes", "load_path", "load_text", "watched_files",
]
