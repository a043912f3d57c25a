"""`--help`: every command says what it does, with an example, and where the documentation is."""

from __future__ import annotations

import subprocess
import sys

import pytest


def help_of(*command: str) -> str:
    result = subprocess.run([sys.executable, "-m", "openai_mock", *command, "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", [(), ("serve",), ("check",), ("schema",), ("record",)],
                         ids=lambda command: " ".join(command) or "openai-mock")
def test_each_help_has_a_description_an_example_and_the_docs(command: tuple[str, ...]) -> None:
    text = help_of(*command)
    usage, _, rest = text.partition("\n\n")
    description = rest.partition("\n\n")[0]
    assert not description.startswith(("options:", "positional arguments:")), text  # a description comes first
    assert "\nexample" in text  # "examples:" or "example:"
    assert f"openai-mock {command[0] if command else 'serve'}" in text.partition("\nexample")[2]
    assert "Documentation: docs/" in text


def test_check_says_what_a_path_may_be() -> None:
    text = " ".join(help_of("check").split())
    assert "PATH a scenario file (.yaml/.yml), a folder of them (one configuration), or - for standard input" in text


def test_the_top_level_help_shows_how_to_point_the_sdk_at_the_mock() -> None:
    text = help_of()
    assert 'OpenAI(base_url="http://127.0.0.1:3000/v1", api_key="any-key")' in text
    assert "openai-mock check scenarios.yaml" in text
