from grpo.eval.evaluate import summarize
from grpo.eval.report import before_after_table


def _records(correct: int, total: int, truncated: int = 0) -> list[dict]:
    return [{"id": f"p{i}", "sample": 0, "correct": i < correct, "extracted": "1", "num_tokens": 10,
             "truncated": i < truncated, "rewards": {}} for i in range(total)]


def test_before_after_rows_carry_wilson_intervals():
    before, after = summarize(_records(63, 200, truncated=5), ()), summarize(_records(114, 200), ())
    table = before_after_table(before, after)
    assert "| greedy accuracy | 31.5% [25.5, 38.2] | 57.0% [50.1, 63.7] | +25.5 pp |" in table
    assert "| truncated at the token limit | 2.5% [" in table and "| -2.5 pp |" in table
    assert "format compliance" not in table  # no format reward in either: no row
