"""The GRPO step benchmark runs end to end (on a tiny shape here; the real shapes run on the GPU)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from grpo.bench import train_step as bench_train
from grpo.bench.train_step import Case, parse_case


def test_parse_case():
    assert parse_case("qwen2.5-1.5b:unsloth:static:4bit", 4) == Case("qwen2.5-1.5b", "unsloth", "static", True, 4)
    assert parse_case("smollm2-135m:trl-baseline", 3) == Case("smollm2-135m", "trl-baseline", "dynamic", False, 3)
    assert parse_case("smollm2-135m:hf:loop", 3).rollout == "loop"
    with pytest.raises(ValueError, match="expected SHAPE:BACKEND"):
        parse_case("gpt5:hf", 3)
    with pytest.raises(ValueError, match="the loop rollout runs with the hf backend only"):
        parse_case("smollm2-135m:unsloth:loop", 3)


def test_parse_case_workload_settings():
    case = parse_case("smollm2-135m:hf:loop:mb64", 3, generations=16, completion_tokens=512)
    assert (case.micro_batch, case.generations, case.completion_tokens, case.completions) == (64, 16, 512, 128)
    assert case.label == "smollm2-135m hf loop mb64 16x512"  # a workload other than 8 x 256 is named
    assert parse_case("smollm2-135m:hf:static:compile:nogc", 3).settings == ("nogc", "compile")
    assert parse_case("smollm2-135m:hf:static:compile:nogc", 3).label == "smollm2-135m hf static nogc compile"
    assert parse_case("smollm2-135m:hf:loop:merged", 3).settings == ("merged",)
    assert parse_case("smollm2-135m:hf:loop:repeatkv", 3).label == "smollm2-135m hf loop repeatkv"
    assert parse_case("smollm2-135m:hf:loop:merged:offpolicy", 3).settings == ("merged", "offpolicy")
    for text, message in [("smollm2-135m:hf:mb48", "N dividing the 64 completions"),
                          ("smollm2-135m:trl-baseline:mb64", "need a project backend"),
                          ("smollm2-135m:trl-baseline:liger", "need a project backend"),
                          ("smollm2-135m:hf:static:merged", "merged needs the loop rollout"),
                          ("smollm2-135m:hf:repeatkv", "repeatkv needs the loop rollout"),
                          ("smollm2-135m:hf:offpolicy", "offpolicy needs the loop rollout"),
                          ("smollm2-135m:hf:fast", "unknown setting 'fast'")]:
        with pytest.raises(ValueError, match=message):
            parse_case(text, 3)


def test_parse_cases_runs_every_case_at_every_workload_grouped_by_workload():
    cases = bench_train.parse_cases(["smollm2-135m:trl-baseline", "smollm2-135m:hf:loop"], 3, [8, 16], [256, 1024])
    assert [(c.generations, c.completion_tokens, c.backend) for c in cases] == [
        (8, 256, "trl-baseline"), (8, 256, "hf"), (8, 1024, "trl-baseline"), (8, 1024, "hf"),
        (16, 256, "trl-baseline"), (16, 256, "hf"), (16, 1024, "trl-baseline"), (16, 1024, "hf")]
    assert cases[3].label == "smollm2-135m hf loop 8x1024"


def test_speedups_compare_each_row_with_the_baseline_of_its_workload():
    def row(backend, seconds, tokens=256, shape="smollm2-135m"):
        return {"backend": backend, "shape": shape, "generations": 8, "completion_tokens": tokens,
                "seconds_per_64_completions": seconds}

    rows = bench_train.with_speedups([row("trl-baseline", 20.0), row("hf", 4.0), row("trl-baseline", 60.0, 1024),
                                      row("hf", 10.0, 1024), row("hf", 1.0, shape="qwen2.5-0.5b"),
                                      {**row("hf", 0.0), "error": "out of memory"}])
    assert [r["speedup_vs_baseline"] for r in rows] == [1.0, 5.0, 1.0, 6.0, None, None]


@pytest.fixture
def tiny_shape(monkeypatch):
    """A 2-layer Llama shape named "tiny" in the bench's shapes (the real shapes run on the GPU)."""
    monkeypatch.setitem(bench_train.SHAPES, "tiny", {
        "model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 400, "max_position_embeddings": 512,
        "tie_word_embeddings": True})


@pytest.mark.usefixtures("tiny_shape")
@pytest.mark.parametrize("backend", ["trl-baseline", "hf"])
def test_case_runs_and_reports(tmp_path, tiny_model_dir, backend):
    case = Case("tiny", backend, steps=2, prompts=2, generations=2, completion_tokens=6,
                micro_batch=4 if backend == "hf" else 0, settings=("nogc",) if backend == "hf" else ())
    row = bench_train.run_case(case, tmp_path, str(tiny_model_dir))
    assert row["completions_per_step"] == 4
    layout = (4, 1) if backend == "hf" else (2, 2)  # the micro-batch sets the update's passes, not the step's work
    assert (row["effective_args"]["per_device_train_batch_size"],
            row["effective_args"]["gradient_accumulation_steps"]) == layout
    assert row["effective_args"]["gradient_checkpointing"] is (backend == "trl-baseline")  # TRL's default: on
    assert row["mean_completion_tokens"] == 6  # the forced length
    assert row["seconds_per_step"] > row["generation_seconds"] > 0
    assert 0 < row["generation_share"] < 1
    assert "| tiny " in bench_train.format_row(row)
    phases = row["phase_seconds"]  # every phase's hook ran and took time; generate is a part of generation
    assert row["phases_measured"] == ["generation", "generate", "reward", "forward", "backward", "optimizer"]
    assert all(phases[name] > 0 for name in row["phases_measured"])
    assert row["generation_seconds"] > phases["generate"] and phases["other"] > 0


@pytest.mark.usefixtures("tiny_shape")
@pytest.mark.parametrize("settings", [(), ("repeatkv",), ("offpolicy",)],
                         ids=["grouped-kv", "repeatkv", "offpolicy"])
def test_loop_rollout_case_decodes_through_the_static_loop(tmp_path, tiny_model_dir, monkeypatch, settings):
    """Each step's rollout goes through the loop; ``repeatkv`` turns its grouped-query attention off; ``offpolicy``
    records the log-probabilities and weighs the tokens (grpo.train.off_policy)."""
    from grpo.train import off_policy, rollout

    calls, weighed = [], []
    weights = off_policy.importance_weights
    monkeypatch.setattr(off_policy, "importance_weights", lambda *args: weighed.append(1) or weights(*args))
    original = rollout.StaticLoopRollouts.__call__
    monkeypatch.setattr(rollout.StaticLoopRollouts, "__call__",
                        lambda self, *args, **kwargs: calls.append(self.grouped_attention) or original(self, *args,
                                                                                                        **kwargs))
    case = Case("tiny", "hf", "loop", steps=2, prompts=2, generations=2, completion_tokens=6, settings=settings)
    row = bench_train.run_case(case, tmp_path, str(tiny_model_dir))
    assert len(calls) >= 2  # one rollout per step, each through the loop
    assert set(calls) == {"repeatkv" not in settings}
    assert row["completions_per_step"] == 4 and row["seconds_per_step"] > row["generation_seconds"] > 0
    assert bool(weighed) == ("offpolicy" in settings)  # every step's batch weighed by grpo.train.off_policy


@pytest.mark.usefixtures("tiny_shape")
def test_continuous_batching_case_generates_through_generate_batch(tmp_path, tiny_model_dir):
    """`hf:continuous`: TRL's rollouts go through transformers' continuous batching (``generate_batch``), whose time
    is the row's ``generate`` phase; on a CPU its paged cache takes a small share of the RAM, not TRL's half."""
    case = parse_case("tiny:hf:continuous", 2)
    row = bench_train.run_case(replace(case, prompts=2, generations=2, completion_tokens=4), tmp_path,
                               str(tiny_model_dir))
    assert row["effective_args"]["use_transformers_continuous_batching"] is True
    assert row["effective_args"]["transformers_continuous_batching_config"] == {
        "max_memory_percent": bench_train.CPU_PAGED_CACHE_SHARE}
    assert row["mean_completion_tokens"] == 4 and row["completions_per_step"] == 4
    assert row["phase_seconds"]["generation"] > row["phase_seconds"]["generate"] > 0
    with pytest.raises(ValueError, match="the continuous rollout runs with the hf backend only"):
        parse_case("tiny:unsloth:continuous", 2)


def test_a_case_that_times_out_is_a_failed_row(monkeypatch):
    import subprocess

    def too_slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", too_slow)
    row = bench_train.run_in_subprocess(parse_case("smollm2-135m:hf:loop", 3), Path("/tmp"), "tok", timeout=5)
    assert row["error"] == "timed out after 5 s" and "failed: timed out" in bench_train.format_row(row)


def test_the_rows_file_is_written_after_every_case(tmp_path, monkeypatch, capsys):
    """A device call cut short keeps the rows it finished; each row printed as it finishes shows its speedup."""
    from grpo.cli import main

    out = tmp_path / "rows.json"
    seen_on_disk = []

    def fake_case(case, model_root, tokenizer_path):
        seen_on_disk.append(len(json.loads(out.read_text())) if out.exists() else 0)
        seconds = 20.0 if case.backend == "trl-baseline" else 4.0
        return {**asdict(case), "label": case.label, "seconds_per_step": seconds,
                "seconds_per_64_completions": seconds, "generation_tokens_per_s": 1000.0, "generation_share": 0.5,
                "peak_gpu_memory_gib": 1.0, "completions_per_step": 64}

    monkeypatch.setattr(bench_train, "run_in_subprocess", fake_case)
    assert main(["bench", "train", "smollm2-135m:trl-baseline", "smollm2-135m:hf:loop", "--tokenizer",
                 str(tmp_path), "--out", str(out)]) == 0
    assert seen_on_disk == [0, 1]
    assert [row["speedup_vs_baseline"] for row in json.loads(out.read_text())] == [1.0, 5.0]
    streamed = capsys.readouterr().out.split("\n\n")[0]
    assert "| 5.00x |" in streamed
