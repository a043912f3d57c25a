"""`regexlint.risk`: the regex shapes `check` warns about (see test_loop_hardening.py for the
warning itself), and the common shapes it must leave alone."""

from __future__ import annotations

import pytest

from openai_mock.scenario.regexlint import ALTERNATION, NESTED, risk

NESTED_SHAPES = ["^(a+)+$", "(a*)*", r"(\w+\s?)*$", "^(x+x+)+y", "^(.*?,){11}P", r"^(\s*\w+\s*)+$"]
FINE = [r"^order #\d+$", r"\bhateful\b", "code.*python", r"^(\d+\.)*$", r"(\d+\.){3}\d+", "(a|ab)+",
        "(foo|far)+", "(a++)+", "(?>a+)+", r"^(\w+\s)*\w*$", r"[a-z]+@[a-z]+\.com", "(?-i:^CAPS only$)"]


@pytest.mark.parametrize("pattern", NESTED_SHAPES)
def test_risky_shapes_are_found(pattern):
    assert risk(pattern) == NESTED


@pytest.mark.parametrize("pattern", FINE)
def test_safe_shapes_are_left_alone(pattern):
    assert risk(pattern) is None


@pytest.mark.parametrize("pattern", ["(a|aa)+", "(a|a?)+", "^(aa|a)+$", "(ab|abab)+"])
def test_alternations_whose_branches_overlap_are_found(pattern):
    assert risk(pattern) == ALTERNATION


@pytest.mark.parametrize("pattern", ["(a|aa){2}", "^(yes|no)+$", r"(\w+ ){2,}", r"(?:[^,]*,)*x", r"(\s+\S)+",
                                     "([a-z]+[0-9])+", "(ß+)a", r"(a)\1+"])
def test_more_safe_shapes(pattern):
    assert risk(pattern) is None


def test_a_pattern_beyond_the_analysis_gets_no_warning_and_no_error():
    assert risk("(" * 50 + "a" + ")" * 50) is None
    assert risk("((a|b|c|d|e|f|g){3}){3}") is None  # too many ways to compare: says nothing
