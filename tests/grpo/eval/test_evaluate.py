"""grpo.eval.evaluate.summarize: which problems count towards accuracy, and how undecided answers count."""

from grpo.eval.evaluate import summarize


def record(pid, correct, reference_parsed=True, extracted="1"):
    return {"id": pid, "sample": 0, "completion": "", "extracted": extracted, "correct": correct, "num_tokens": 5,
            "truncated": False, "rewards": {}, "groups": {}, "reference_parsed": reference_parsed}


def test_an_undecided_answer_counts_as_not_right_and_stays_in_the_denominator():
    summary = summarize([record("a", True), record("b", False), record("c", None), record("d", True)], ())
    assert summary["judged_problems"] == 4 and summary["undecided_answers"] == 1
    assert summary["unparseable_references"] == 0
    assert summary["accuracy"] == 0.5  # 2 of 4, not 2 of 3


def test_a_problem_whose_reference_does_not_parse_is_left_out_and_counted():
    summary = summarize([record("a", True), record("b", None, reference_parsed=False), record("c", False)], ())
    assert summary["judged_problems"] == 2 and summary["unparseable_references"] == 1
    assert summary["undecided_answers"] == 0 and summary["accuracy"] == 0.5


def test_sampled_pass_at_k_and_majority_count_undecided_samples_as_wrong():
    records = [dict(record("a", verdict, extracted=answer), sample=i)
               for i, (verdict, answer) in enumerate([(None, "7"), (None, "7"), (True, "3"), (False, "5")])]
    summary = summarize(records, (), ks=(1, 4), greedy=False)
    assert summary["pass@1"] == 0.25 and summary["undecided_answers"] == 2
    assert summary["maj@4"] == 0.0  # the majority answer "7" was never judged right
    assert summary["pass@4"] == 1.0


def test_records_from_before_the_flag_read_a_none_verdict_as_an_unparseable_reference():
    old = [{key: value for key, value in record(pid, verdict).items() if key != "reference_parsed"}
           for pid, verdict in [("a", True), ("b", None), ("c", False)]]
    summary = summarize(old, ())
    assert summary["unparseable_references"] == 1 and summary["judged_problems"] == 2 and summary["accuracy"] == 0.5


def test_the_table_shows_undecided_answers_and_unparseable_references_only_when_there_are_some():
    from grpo.eval.eval_run import markdown

    clean = summarize([record("a", True), record("b", False)], ())
    messy = summarize([record("a", True), record("b", None), record("c", None, reference_parsed=False)], ())
    assert "undecided_answers" not in markdown({"clean": clean})
    table = markdown({"clean": clean, "messy": messy})
    assert "| undecided_answers | 0 | 1 |" in table and "| unparseable_references | 0 | 1 |" in table
