"""Every built-in reward on random and adversarial text: no exception, one value per completion, values in the
documented range, and a bounded time per call (a guard against catastrophic regex backtracking: a quadratic scan
of these 200 KB inputs would take minutes, the linear ones take milliseconds)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rewards
from rewards.math import answers_match, extract_answer

RANGES = {  # documented value range of each built-in
    "math_correctness": (0.0, 1.0), "answer_line": (0.0, 1.0), "think_answer_strict": (0.0, 1.0),
    "think_answer_soft": (0.0, 1.0), "tag_count": (0.0, 1.0), "integer_answer": (0.0, 1.0),
    "overlong_penalty": (-1.0, 0.0), "repetition_penalty": (-1.0, 0.0),
}
BUILT = {name: rewards.build(name, {}, {"max_completion_length": 64}) for name in RANGES}
SECONDS_PER_CALL = 2.0  # generous for a 2-core CI machine; the linear scans take well under 0.1 s

ADVERSARIAL = [
    "x" * 200_000,  # 200 KB of one letter
    "1" * 200_000,  # 200 KB of digits: one huge number
    " " * 200_000 + "x",  # a long run of spaces before a mismatch
    "{" * 10_000 + "}" * 10_000,  # 10,000 nested braces
    "\\boxed{" * 10_000,  # 10,000 unclosed boxes
    "\\boxed{" * 5_000 + "1" + "}" * 5_000,  # deeply nested box
    "the answer is " * 15_000,  # a marker repeated without an answer
    "The answer is " + " " * 100_000 + "x",  # spaces between marker and garbage
    "<answer>" * 20_000,  # repeated open tags
    "<think>" * 20_000 + "</think>",  # repeated think tags
    "<<" * 50_000 + ">>",  # calculator-annotation brackets
    "1 " * 100_000 + "/",  # mixed-number look-alikes
    "1," * 100_000,  # thousands-separator look-alikes
    "\\frac{" * 20_000,  # unclosed fractions
    "\\text{" * 20_000 + "1",  # unclosed \text
    "Answer:" + "\n" * 100_000 + "5",  # newlines after the marker
    "-" * 200_000,  # signs only
    "#### " * 40_000,  # hash markers
    "a:\n" * 60_000,  # A: look-alike lines
    "the answer is 1" + "0" * 100_000,  # a giant number after the marker
]


def check_all(completions: list[str]) -> None:
    kwargs = {"answer": ["42"] * len(completions), "completion_ids": [[0] * 70] * len(completions),
              "prompts": ["p"] * len(completions)}
    for name, reward in BUILT.items():
        started = time.perf_counter()
        scores = reward(completions, **kwargs)
        elapsed = time.perf_counter() - started
        assert elapsed < SECONDS_PER_CALL * len(completions), (name, elapsed)
        assert len(scores) == len(completions)
        low, high = RANGES[name]
        assert all(s is None or low <= s <= high for s in scores), (name, scores)


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_inputs_are_bounded(text):
    check_all([text])


# Completions assembled from pieces that the extractors react to, in random order and number.
PIECES = st.sampled_from(list("0123456789 .,-+*/=%$\\{}<>#:\nabtx") + [
    "<answer>", "</answer>", "<think>", "</think>", "\\boxed{", "####", "The answer is ", "Answer:", "\\frac",
])
TEXTS = st.lists(PIECES, max_size=120).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXTS, min_size=1, max_size=4))
def test_random_completions_keep_the_contract(completions):
    check_all(completions)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.text(max_size=50))
def test_extraction_and_comparison_never_raise(text, reference):
    found = extract_answer(text)
    assert found is None or isinstance(found, str)
    assert isinstance(answers_match(found, reference), bool)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-10**12, max_value=10**12))
def test_any_integer_stated_is_extracted_and_matched(value):
    for template in ("The answer is {}.", "<answer>{}</answer>", "\\boxed{{{}}}", "#### {}", "so {} apples"):
        formatted = f"{value:,}" if "boxed" not in template else str(value)
        assert answers_match(extract_answer(template.format(formatted)), str(value)), template
