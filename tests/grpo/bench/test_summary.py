"""grpo.bench.summary and `grpo bench summary`: the headline figures and the rows they come from."""

from __future__ import annotations

import json

import pytest

from grpo.bench.summary import SummaryError, perf_summary
from grpo.cli import main


def train_row(backend, rollout, seconds, tokens_per_s, shape="smollm2-135m", completion_tokens=256):
    return {"shape": shape, "backend": backend, "rollout": rollout, "label": f"{shape} {backend} {rollout}",
            "generations": 8, "completion_tokens": completion_tokens,
            "seconds_per_64_completions": seconds, "generation_tokens_per_s": tokens_per_s}


def kv_row(batch, ms, loop_ms=None, new_tokens=256):
    return {"batch": batch, "new_tokens": new_tokens, "ms_per_decode_step": ms, "loop_ms_per_decode_step": loop_ms}


TRAIN = [train_row("trl-baseline", "dynamic", 18.0, 1000.0), train_row("hf", "static", 5.0, 7500.0),
         train_row("hf", "loop", 3.0, 9000.0), train_row("hf", "static", 1.0, 50000.0, shape="qwen2.5-0.5b"),
         train_row("hf", "loop", 2.0, 40000.0, completion_tokens=1024),
         {"shape": "smollm2-135m", "backend": "unsloth", "error": "out of memory"}]


def test_each_figure_comes_from_the_fastest_row_of_the_baselines_shape():
    summary = perf_summary(TRAIN, [kv_row(8, 4.0, 1.0), kv_row(64, 6.0, 2.5), kv_row(64, 5.5)], batch=64)
    assert summary["rollout_tokens_per_s"] == 9000.0  # not the other shape's 50,000 nor the longer rows' 40,000
    assert summary["step_speedup_vs_trl"] == 6.0  # 18 / 3
    assert summary["eval_decode_ms_per_step"] == 2.5  # the loop at batch 64, not batch 8's 1.0
    assert summary["sources"]["step_speedup_vs_trl"] == "smollm2-135m trl-baseline dynamic / smollm2-135m hf loop"
    assert summary["sources"]["eval_decode_ms_per_step"] == "static_loop, batch 64, 256 new tokens"


def test_generate_wins_when_no_loop_was_timed():
    summary = perf_summary(TRAIN, [kv_row(64, 6.0), kv_row(64, 5.5, None)], batch=64)
    assert summary["eval_decode_ms_per_step"] == 5.5 and summary["sources"]["eval_decode_ms_per_step"].startswith(
        "generate")


@pytest.mark.parametrize(("train", "kv", "message"), [
    (TRAIN[1:], [kv_row(64, 6.0)], "no trl-baseline row"),
    (TRAIN[:1], [kv_row(64, 6.0)],
     "no project row for the baseline's workload \\(smollm2-135m, 8 generations, 256 tokens\\)"),
    (TRAIN, [kv_row(8, 6.0)], "no row at batch 64"),
])
def test_missing_rows_are_named(train, kv, message):
    with pytest.raises(SummaryError, match=message):
        perf_summary(train, kv)


def test_command_writes_perf_summary_json(tmp_path, capsys):
    (tmp_path / "train.json").write_text(json.dumps(TRAIN))
    (tmp_path / "kv.json").write_text(json.dumps([kv_row(64, 6.0, 2.5)]))
    out = tmp_path / "perf_summary.json"
    assert main(["bench", "summary", "--train", str(tmp_path / "train.json"), "--kv", str(tmp_path / "kv.json"),
                 "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert (written["rollout_tokens_per_s"], written["step_speedup_vs_trl"], written["eval_decode_ms_per_step"]) == (
        9000.0, 6.0, 2.5)
    assert "| step speedup vs TRL | 6.00x |" in capsys.readouterr().out


def test_command_without_a_baseline_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "train.json").write_text(json.dumps(TRAIN[1:]))
    (tmp_path / "kv.json").write_text(json.dumps([kv_row(64, 6.0)]))
    assert main(["bench", "summary", "--train", str(tmp_path / "train.json"), "--kv", str(tmp_path / "kv.json"),
                 "--out", str(tmp_path / "p.json")]) == 2
    assert "no trl-baseline row" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
