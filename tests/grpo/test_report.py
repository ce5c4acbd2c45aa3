from grpo.report import before_after_table


def test_accuracy_row_carries_wilson_intervals():
    before = {"samples": 200, "accuracy": 0.315, "truncation_rate": 0.025, "mean_completion_tokens": 15.5}
    after = {"samples": 200, "accuracy": 0.57, "truncation_rate": 0.0, "mean_completion_tokens": 12.2}
    table = before_after_table(before, after)
    assert "| greedy accuracy | 31.5% [25.5, 38.2] | 57.0% [50.1, 63.7] | +25.5 pp |" in table
    assert "| truncated at the token limit | 2.5% | 0.0% | -2.5 pp |" in table
    assert "format compliance" not in table  # absent in both: no row


def test_missing_accuracy_reads_not_available():
    table = before_after_table({"samples": 10, "accuracy": None}, {"samples": 10, "accuracy": 0.5})
    assert "| greedy accuracy | n/a | 50.0% [23.7, 76.3] | n/a |" in table
