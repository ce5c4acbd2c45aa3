"""Format rewards: table-driven, one comment per case."""

from __future__ import annotations

import pytest

from rewards.format import answer_line, tag_count, think_answer_soft, think_answer_strict

STRICT_OK = "<think>\nadd 3 and 4\n</think>\n<answer>\n7\n</answer>"


@pytest.mark.parametrize(
    ("completion", "strict", "soft"),
    [
        (STRICT_OK, 1.0, 1.0),  # the exact layout
        ("  \n" + STRICT_OK + "\n\n", 1.0, 1.0),  # outer whitespace is ignored
        ("<think>\nline one\nline two\n</think>\n<answer>\n7\n</answer>", 1.0, 1.0),  # multi-line reasoning (DOTALL)
        ("<think>add</think><answer>7</answer>", 0.0, 1.0),  # no newlines: soft only
        ("<think>add</think>\n\n  <answer>7</answer> trailing", 0.0, 1.0),  # spacing and trailing text: soft only
        ("Sure! <think>add</think><answer>7</answer>", 0.0, 1.0),  # leading text: soft only
        ("<think>\n\n</think>\n<answer>\n7\n</answer>", 0.0, 1.0),  # empty reasoning fails strict
        ("<think>\nadd\n</think>\n<answer>\n\n</answer>", 0.0, 1.0),  # empty answer fails strict
        ("<think>\nadd <answer>\n</think>\n<answer>\n7\n</answer>", 0.0, 1.0),  # a stray tag inside fails strict
        ("<answer>7</answer><think>add</think>", 0.0, 0.0),  # wrong order
        ("<think>add</think> so 7", 0.0, 0.0),  # no answer tags
        ("<think>add</think><answer>7", 0.0, 0.0),  # unclosed answer
        ("", 0.0, 0.0),  # empty
    ],
)
def test_think_answer_layouts(completion, strict, soft):
    assert think_answer_strict([completion]) == [strict]
    assert think_answer_soft([completion]) == [soft]


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        (STRICT_OK, 1.0),  # all four tags once
        ("<think>a</think>", 0.5),  # two tags
        ("<think><think>a</think><answer>1</answer>", 0.75),  # a repeated tag earns nothing
        ("plain text", 0.0),  # none
    ],
)
def test_tag_count(completion, score):
    assert tag_count([completion]) == [score]


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("12 + 7 = 19\n\nThe answer is 19.", 1.0),  # the asked-for final line
        ("The answer is 19", 1.0),  # no period
        ("the final answer is: 1,234", 1.0),  # "final", colon, separators
        ("**The answer is 19.**", 1.0),  # markdown bold
        ("So, the answer is -3.5.", 1.0),  # lead-in word and a negative decimal
        ("The answer is $19.", 1.0),  # currency
        ("The answer is 19.\n\n", 1.0),  # trailing blank lines ignored
        ("The answer is 19. I think.", 0.0),  # more text on the line
        ("The answer is 19.\nBut maybe 20.", 0.0),  # not the last line
        ("The answer is nineteen.", 0.0),  # N must be a number
        ("19", 0.0),  # bare number
        ("", 0.0),  # empty
    ],
)
def test_answer_line(completion, score):
    assert answer_line([completion]) == [score]


def test_conversational_completions_and_extra_kwargs():
    completion = [{"role": "assistant", "content": STRICT_OK}]
    assert think_answer_strict([completion], answer=["7"], trainer_state=None) == [1.0]
    assert answer_line([[{"role": "assistant", "content": "The answer is 7"}]], prompts=["x"]) == [1.0]
