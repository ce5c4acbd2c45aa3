"""MATH-style data (issue 11, item 4, partly): a file with MATH's columns loads through `data.source=file`, keeps
its level/type columns for the rewards and the eval samples, and `math_correctness` reads the gold from the
`answer` column or from the `\\boxed{}` of the `solution` column alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from grpo.config import load_config
from grpo.data.splits import load_splits
from rewards import symbolic
from rewards.math import MathCorrectness

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "math_style" / "test.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


@pytest.mark.parametrize("answer_column", ["answer", "solution"])
def test_math_style_file_loads_with_its_columns(tiny_model_dir, answer_column):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = load_config(None, ["data.source=file", f"data.path={FIXTURE}", f"data.eval_path={FIXTURE}",
                                "data.question_column=problem", f"data.answer_column={answer_column}"])
    train = load_splits(config.data, tokenizer).train
    assert {"level", "type", "solution", "problem"} <= set(train.column_names)
    assert train["prompt"][0][-1]["content"] == ROWS[0]["problem"]


@pytest.mark.skipif(not symbolic.available(), reason="symbolic golds need the [math] extra")
@pytest.mark.parametrize("column", ["answer", "solution"])
def test_gold_from_answer_or_boxed_solution(column):
    reward = MathCorrectness(reference_column=column, symbolic_timeout_s=60.0)
    right = [f"So the result is $\\boxed{{{row['answer']}}}$." for row in ROWS]
    wrong = ["The answer is $\\boxed{7}$." for _ in ROWS]
    golds = [row[column] for row in ROWS]
    assert reward(right, **{column: golds}) == [1.0] * len(ROWS)
    assert reward(wrong, **{column: golds}) == [0.0] * len(ROWS)


def test_eval_summary_breaks_pass1_down_by_level_and_type():
    from grpo.eval.eval_run import markdown
    from grpo.eval.evaluate import summarize

    def record(pid, correct, level, kind):
        return {"id": pid, "sample": 0, "correct": correct, "extracted": "1", "rewards": {}, "truncated": False,
                "num_tokens": 5, "groups": {"level": level, "type": kind}}

    records = [record("a", True, "Level 1", "Algebra"), record("b", False, "Level 1", "Geometry"),
               record("c", True, "Level 5", "Algebra"), record("d", None, "Level 5", "Algebra"),  # d: undecided
               {**record("e", True, "x", "y"), "groups": {}}]  # a row without group columns
    summary = summarize(records, (), (1,), greedy=True)
    assert summary["pass@1[level=Level 1]"] == 0.5
    assert summary["pass@1[level=Level 5]"] == 1.0  # the undecided problem is not judged
    assert summary["pass@1[type=Algebra]"] == 1.0 and summary["pass@1[type=Geometry]"] == 0.0
    assert "| pass@1[level=Level 1] | 50.0% [" in markdown({"run": summary})
