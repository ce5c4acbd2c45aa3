"""`grpo eval`: outputs, metrics, determinism, resume, run directories and checkpoints, comparisons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grpo.cli import main


@pytest.fixture(scope="module")
def eval_config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eval-config")
    config = folder / "eval.yaml"
    config.write_text(f"""
run: {{name: evalrun, output_dir: {folder / 'runs'}, seed: 0}}
model: {{backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}}}
data:
  system_prompt: ""
  max_prompt_tokens: 64
  synthetic: {{train_size: 16, eval_size: 6}}
rewards: [{{name: math_correctness}}, {{name: answer_line}}]
train: {{max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 6, save_steps: 1}}
""")
    return config


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_eval(tiny_model_dir, config, out, *extra) -> int:
    return main(["eval", str(tiny_model_dir), "--config", str(config), "--max-new-tokens", "6",
                 "--out", str(out), *extra])


def test_sampled_eval_writes_samples_summary_and_pass_at_k(tmp_path, tiny_model_dir, eval_config):
    out = tmp_path / "sampled"
    assert run_eval(tiny_model_dir, eval_config, out, "--samples", "3", "--temperature", "0.8", "--k", "2,3") == 0
    records = read_jsonl(out / "samples.jsonl")
    assert len(records) == 6 * 3
    assert set(records[0]) >= {"id", "sample", "completion", "extracted", "correct", "rewards", "num_tokens",
                               "truncated"}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("pass@1", "pass@2", "pass@3", "maj@2", "maj@3", "format_compliance", "truncation_rate",
                "mean_completion_tokens", "pass@1_ci95", "pass@2_ci95"):
        assert key in summary, key
    assert summary["problems"] == 6 and summary["samples_per_problem"] == 3 and summary["greedy"] is False
    assert "| pass@2 |" in (out / "summary.md").read_text()
    assert not (out / "samples.jsonl.partial").exists()


def test_seeded_sampling_is_deterministic(tmp_path, tiny_model_dir, eval_config):
    for name in ("a", "b"):
        assert run_eval(tiny_model_dir, eval_config, tmp_path / name, "--samples", "2", "--temperature", "1.0",
                        "--seed", "7") == 0
    assert (tmp_path / "a" / "samples.jsonl").read_text() == (tmp_path / "b" / "samples.jsonl").read_text()


def test_greedy_eval_reports_accuracy_with_wilson_interval(tmp_path, tiny_model_dir, eval_config):
    out = tmp_path / "greedy"
    assert run_eval(tiny_model_dir, eval_config, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    low, high = summary["accuracy_ci95"]
    assert summary["greedy"] and low <= summary["accuracy"] <= high


def test_resume_keeps_finished_problems(tmp_path, tiny_model_dir, eval_config, capsys):
    out = tmp_path / "resume"
    assert run_eval(tiny_model_dir, eval_config, out) == 0
    records = read_jsonl(out / "samples.jsonl")
    # simulate an interruption after two problems, with a torn last line
    (out / "samples.jsonl").unlink()
    kept = [dict(r, completion="FINISHED BEFORE THE INTERRUPTION") for r in records[:2]]
    (out / "samples.jsonl.partial").write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"id": "torn')
    assert run_eval(tiny_model_dir, eval_config, out, "--resume") == 0
    resumed = read_jsonl(out / "samples.jsonl")
    assert len(resumed) == 6
    assert [r["completion"] for r in resumed[:2]] == ["FINISHED BEFORE THE INTERRUPTION"] * 2
    assert [r["id"] for r in resumed] == [r["id"] for r in records]
    assert "(2 already done)" in capsys.readouterr().out


def test_resume_refuses_other_sampling_settings(tmp_path, tiny_model_dir, eval_config, capsys):
    out = tmp_path / "mixed"
    assert run_eval(tiny_model_dir, eval_config, out, "--samples", "2", "--temperature", "0.8") == 0
    before = (out / "samples.jsonl").read_bytes()
    capsys.readouterr()
    assert run_eval(tiny_model_dir, eval_config, out, "--samples", "2", "--temperature", "0.5", "--resume") == 2
    err = capsys.readouterr().err
    assert "were drawn with other settings (temperature 0.8 -> 0.5)" in err and len(err.splitlines()) == 1
    assert (out / "samples.jsonl").read_bytes() == before


def test_existing_eval_needs_resume(tmp_path, tiny_model_dir, eval_config, capsys):
    out = tmp_path / "twice"
    assert run_eval(tiny_model_dir, eval_config, out) == 0
    assert run_eval(tiny_model_dir, eval_config, out) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_run_directory_and_checkpoints(tmp_path, tiny_model_dir, eval_config, monkeypatch):
    assert main(["train", str(eval_config), f"model.name={tiny_model_dir}"]) == 0
    run_dir = eval_config.parent / "runs" / "evalrun"
    assert main(["eval", str(run_dir), "--max-new-tokens", "6"]) == 0
    summary = json.loads((run_dir / "evals" / "final" / "summary.json").read_text())
    assert summary["adapter"] == str(run_dir / "adapter") and summary["problems"] == 6

    out = tmp_path / "checkpoints"
    assert main(["eval", str(run_dir / "checkpoint-*"), "--max-new-tokens", "6", "--out", str(out)]) == 0
    assert (out / "evalrun_checkpoint-1" / "samples.jsonl").is_file()
    assert (out / "evalrun_checkpoint-2" / "summary.json").is_file()
    startups = [json.loads((out / f"evalrun_checkpoint-{n}" / "summary.json").read_text())["before_load_seconds"]
                for n in (1, 2)]
    assert startups[0] > 0 and startups[1] is None  # the command's startup is the first target's alone
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "summary.md").read_text()
    assert "evalrun/checkpoint-1" in table and "evalrun/checkpoint-2" in table

    assert main(["eval", "--compare", str(out / "evalrun_checkpoint-1"), str(out / "evalrun_checkpoint-2")]) == 0
    assert main(["eval", "--compare", str(run_dir), str(out / "evalrun_checkpoint-2")]) == 0  # a run's evals/final

    # the run directory copied elsewhere evaluates from another working directory, results beside it
    copied = tmp_path / "elsewhere" / "evalrun"
    shutil.copytree(run_dir, copied, ignore=shutil.ignore_patterns("evals"))
    monkeypatch.chdir(tmp_path)
    adapter_config = json.loads((copied / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model_dir)  # model.name, not a cache path
    assert main(["eval", str(copied), "--max-new-tokens", "4", "--limit", "2"]) == 0
    assert json.loads((copied / "evals" / "final" / "summary.json").read_text())["problems"] == 2


def test_compare_table_is_aligned_and_json_on_request(tmp_path, capsys):
    for name, marks in (("base", [1, 0, 0, 1]), ("tuned-longer-name", [1, 1, 0, 1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "samples.jsonl").write_text("".join(
            json.dumps({"id": f"p{i}", "correct": bool(m)}) + "\n" for i, m in enumerate(marks)))
    a, b = str(tmp_path / "base"), str(tmp_path / "tuned-longer-name")
    assert main(["eval", "--compare", a, b]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(" 50.0%") and lines[2].endswith(" 75.0%")
    assert len(lines[1]) == len(lines[2])  # the pass@1 column lines up
    assert lines[3].startswith("B - A: +25.0 pp") and "4 shared problems" in lines[3]
    assert main(["eval", "--compare", a, b, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pass@1_a"] == 0.5 and result["pass@1_b"] == 0.75 and result["problems"] == 4


def test_eval_does_not_import_the_trainer():
    """`grpo eval` reads run directories through grpo.rundir's layout, not through grpo.train.trainer (and TRL's trainer)."""
    import subprocess
    import sys

    code = "import sys, grpo.eval.eval_run; sys.exit('grpo.train.trainer' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=300).returncode == 0


def test_timing_reports_model_load_and_first_batch_apart(tmp_path, tiny_model_dir, eval_config, capsys):
    """Compiled decoding compiles in the first batch, once per process: the summary keeps it apart from the rate."""
    out = tmp_path / "timed"
    assert run_eval(tiny_model_dir, eval_config, out, "--batch-size", "2") == 0  # 6 problems: 3 batches
    summary = json.loads((out / "summary.json").read_text())
    assert summary["load_seconds"] > 0
    assert 0 < summary["first_batch_seconds"] < summary["decode_seconds"]
    assert summary["tokens_per_second_after_first_batch"] > 0
    # the rest of the command's wall time, apart: startup (imports, the target's config), data and prompts, the
    # summary's metrics
    assert summary["before_load_seconds"] > 0 and summary["prepare_seconds"] > 0 and summary["summary_seconds"] > 0
    printed = capsys.readouterr().out
    assert "of which the first batch" in printed and "startup" in printed and "data and prompts" in printed


def test_a_resumed_finished_eval_reports_no_first_batch(tmp_path, tiny_model_dir, eval_config):
    out = tmp_path / "done"
    assert run_eval(tiny_model_dir, eval_config, out) == 0
    (out / "samples.jsonl").rename(out / "samples.jsonl.partial")  # every problem already finished
    assert run_eval(tiny_model_dir, eval_config, out, "--resume") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["first_batch_seconds"] is None and summary["tokens_per_second_after_first_batch"] is None


def test_every_chunk_decodes_with_one_static_cache_length(tmp_path, tiny_model_dir, eval_config, monkeypatch):
    """An eval runs in chunks; each chunk sized its own static cache from its own prompts, so a chunk with a longer
    prompt than any before it compiled the decode step again in the middle of the eval. Now every chunk gets the
    length of the longest prompt of the whole eval."""
    from grpo.eval import static_decode

    lengths = []
    kept_decoder = static_decode.kept_decoder

    def recording(model, max_cache_len, *args, **kwargs):
        lengths.append(max_cache_len)
        return kept_decoder(model, max_cache_len, *args, **kwargs)

    monkeypatch.setattr(static_decode, "kept_decoder", recording)
    assert run_eval(tiny_model_dir, eval_config, tmp_path / "loop", "--batch-size", "1", "--decoder",
                    "static_loop") == 0
    prompts = [json.loads(line) for line in (tmp_path / "loop" / "samples.jsonl").read_text().splitlines()]
    assert len(lengths) == len(prompts) == 6 and len(set(lengths)) == 1
