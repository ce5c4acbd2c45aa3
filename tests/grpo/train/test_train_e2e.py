"""End to end: a tiny random model through `grpo train` for a few steps; run directory, adapter, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo.cli import main
from grpo.config import load_config

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_rewards.py"


def write_config(tmp_path: Path, model_dir: Path) -> Path:
    config = tmp_path / "e2e.yaml"
    config.write_text(f"""
run: {{name: e2e, output_dir: {tmp_path / 'runs'}, seed: 0}}
model:
  name: {model_dir}
  backend: hf
  lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}
data:
  source: synthetic
  system_prompt: ""
  max_prompt_tokens: 64
  synthetic: {{train_size: 16, eval_size: 4}}
rewards:
  - name: math_correctness
  - name: "{PLUGIN}:length_reward"
    weight: 1.0
  - name: answer_line
    weight: 0.5
train:
  max_steps: 2
  per_device_train_batch_size: 4
  num_generations: 2
  max_completion_length: 8
  learning_rate: 0.01
  save_steps: 1
eval: {{before_after: true, num_problems: 4, max_new_tokens: 8, batch_size: 4, every_n_steps: 1}}
""")
    return config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir):
    tmp_path = tmp_path_factory.mktemp("e2e")
    config = write_config(tmp_path, tiny_model_dir)
    assert main(["train", str(config)]) == 0
    return tmp_path / "runs" / "e2e", config


def test_run_directory_contents(trained_run):
    run_dir, _ = trained_run
    for name in ("config.yaml", "environment.json", "grpo_args.json", "metrics.jsonl", "train.log",
                 "before_after.md", "before_after.json", "eval_after_samples.jsonl",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "checkpoint-2"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["versions"]["trl"] and environment["backend"] == "hf"


def test_metrics_have_every_step_and_reward(trained_run):
    run_dir, _ = trained_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("rewards/math_correctness/mean", "rewards/length_reward/std", "rewards/answer_line/mean",
                "completions/mean_length", "completions/clipped_ratio", "step_time", "entropy"):
        assert key in steps[0], key
    for step in steps:  # grpo.train.step_phases: the rollouts' part of the step, and torch.compile's counters
        assert 0 < step["time/rollouts_s"] < step["step_time"]
        assert {"compile/graphs", "compile/graph_breaks", "compile/cudagraph_skips"} <= step.keys()
    assert 0 <= steps[0]["compile/graphs"] <= steps[1]["compile/graphs"]


def test_held_out_eval_logged_at_step_0_and_every_step(trained_run):
    run_dir, _ = trained_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/accuracy" in r]
    assert [r["step"] for r in evals][:3] == [0, 1, 2]
    assert all(0.0 <= r["eval/format_compliance"] <= 1.0 for r in evals)


def test_kv_preflight_refuses_a_rollout_that_cannot_fit(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from grpo.eval import kvcache

    monkeypatch.setattr(kvcache, "free_memory_bytes", lambda device: 1000)
    config = write_config(tmp_path, tiny_model_dir)
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "grpo: error: train: the rollout's KV cache for 4 sequences" in err and "does not fit" in err
    assert not (tmp_path / "runs").exists()


def test_lora_weights_changed_and_adapter_loads(trained_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir, _ = trained_run
    saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [tensor for name, tensor in saved.items() if "lora_B" in name]
    assert lora_b, list(saved)
    # PEFT initialises B to zero: any non-zero B means the optimizer changed the adapter.
    assert any(tensor.abs().sum() > 0 for tensor in lora_b)

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, run_dir / "adapter")
    loaded = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert len(loaded) == len(lora_b)
    assert any(torch.equal(p.detach(), tensor) for p in loaded.values() for tensor in lora_b)


def test_before_after_table(trained_run):
    run_dir, _ = trained_run
    table = (run_dir / "before_after.md").read_text()
    assert "| greedy accuracy |" in table and "| format compliance |" in table
    summary = json.loads((run_dir / "before_after.json").read_text())
    assert summary["before"]["samples"] == summary["after"]["samples"] == 4



def test_model_card_names_base_model_data_rewards_and_results(trained_run):
    run_dir, _ = trained_run
    card = (run_dir / "README.md").read_text()
    config = load_config(run_dir / "config.yaml")
    assert f"base_model: {config.model.name}" in card and "[None]" not in card
    assert config.data.source in card and all(f"`{spec.name}`" in card for spec in config.rewards)
    assert (run_dir / "before_after.md").read_text().strip() in card


def test_resume_continues_from_last_checkpoint(trained_run, capsys):
    run_dir, config = trained_run
    assert main(["train", str(config), "train.max_steps=3", "--resume"]) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reward" in r] == [1, 2, 3]
    assert (run_dir / "checkpoint-3").exists()
    out = capsys.readouterr().out
    assert "resuming from checkpoint-2 (step 2 of 3)" in out
    assert "eval before: reusing eval_before.json" in out  # the baseline is reported, not silently skipped
    assert load_config(run_dir / "config.yaml").train.max_steps == 3  # config.yaml describes the continued run
    history = [json.loads(line) for line in (run_dir / "config_history.jsonl").read_text().splitlines()]
    assert history[-1]["changes"] == {"train.max_steps": {"from": 2, "to": 3}}


def test_resuming_a_finished_run_reports_and_changes_nothing(trained_run, capsys):
    run_dir, config = trained_run
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert main(["train", str(config), "train.max_steps=1", "--resume"]) == 0
    assert "finished at step" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before


def test_overwrite_replaces_a_grpo_run_and_keeps_it_when_the_new_run_fails(trained_run, monkeypatch, capsys):
    from grpo.train import trainer as train_module

    run_dir, config = trained_run
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}

    def fail(*args, **kwargs):
        raise RuntimeError("model failed to load")

    monkeypatch.setattr(train_module, "load", fail)
    assert main(["train", str(config), "--overwrite"]) == 1
    assert "model failed to load" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before
    assert not list(run_dir.parent.glob(".*replaced*"))


def test_resume_refuses_a_changed_config(trained_run, capsys):
    _, config = trained_run
    assert main(["train", str(config), "train.learning_rate=0.5", "--resume"]) == 2
    assert "differs from" in capsys.readouterr().err


def test_overwrite_replaces_a_grpo_run_once_the_new_one_is_written(trained_run):
    run_dir, config = trained_run
    (run_dir / "stale.txt").write_text("from the old run")
    assert main(["train", str(config), "--overwrite"]) == 0
    assert not (run_dir / "stale.txt").exists() and not (run_dir / "config_history.jsonl").exists()
    assert (run_dir / ".grpo-run").is_file() and (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(run_dir.parent.glob(".*replaced*"))


def test_out_of_memory_in_a_step_is_one_line_with_settings_that_fit(tmp_path, tiny_model_dir, monkeypatch, capsys):
    import trl

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trl.GRPOTrainer, "train", out_of_memory)
    config = write_config(tmp_path, tiny_model_dir)
    assert main(["train", str(config), "eval.before_after=false"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "out of memory at step 1; the rollout's KV cache for 4 sequences" in errors[0]
    assert "lower train.per_device_train_batch_size x gradient_accumulation_steps to" in errors[0], errors


def test_resume_with_allow_changes_records_a_changed_learning_rate(trained_run, capsys):
    run_dir, config = trained_run
    assert main(["train", str(config), "--resume", "train.max_steps=3", "train.learning_rate=0.02",
                 "--allow-changes"]) == 0
    history = [json.loads(line) for line in (run_dir / "config_history.jsonl").read_text().splitlines()]
    assert history[-1]["changes"]["train.learning_rate"] == {"from": 0.01, "to": 0.02}
    assert load_config(run_dir / "config.yaml").train.learning_rate == 0.02


def test_a_run_can_start_from_another_runs_adapter(trained_run, tmp_path):
    run_dir, config = trained_run
    # a learning rate so small that one step leaves the adapter where it began, to the precision compared below
    assert main(["train", str(config), "run.name=continued", f"run.output_dir={tmp_path}",
                 f"model.lora.init_from={run_dir}", "train.max_steps=1", "train.learning_rate=1e-12",
                 "eval.before_after=false", "eval.every_n_steps=null"]) == 0
    first = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    continued = load_file(tmp_path / "continued" / "adapter" / "adapter_model.safetensors")
    assert continued.keys() == first.keys()
    assert any(tensor.abs().sum() > 0 for name, tensor in first.items() if "lora_B" in name)  # not a fresh adapter
    assert all(torch.allclose(continued[name], first[name], atol=1e-7) for name in first)
    assert load_config(tmp_path / "continued" / "config.yaml").model.lora.init_from == str(run_dir)


def test_a_run_started_from_an_adapter_resumes_without_it(trained_run, tmp_path):
    import shutil

    run_dir, config = trained_run
    source = tmp_path / "source"
    shutil.copytree(run_dir / "adapter", source / "adapter")
    first = load_file(source / "adapter" / "adapter_model.safetensors")
    # a learning rate so small that the adapter stays where it began: the resumed run must still hold it
    options = ["run.name=continued", f"run.output_dir={tmp_path}", f"model.lora.init_from={source}",
               "eval.before_after=false", "eval.every_n_steps=null", "train.save_steps=1", "train.learning_rate=1e-12"]
    assert main(["train", str(config), *options, "train.max_steps=1"]) == 0
    shutil.rmtree(source)  # a fresh machine: the checkpoint holds the weights, the source adapter is not carried
    assert main(["train", str(config), *options, "train.max_steps=2", "--resume"]) == 0
    steps = [json.loads(line).get("step") for line in (tmp_path / "continued" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2]
    resumed = load_file(tmp_path / "continued" / "adapter" / "adapter_model.safetensors")
    assert any(tensor.abs().sum() > 0 for name, tensor in first.items() if "lora_B" in name)  # not a fresh adapter
    assert all(torch.allclose(resumed[name], first[name], atol=1e-7) for name in first)


def test_a_training_that_fails_stops_the_stall_watch_too(tmp_path, tiny_model_dir, monkeypatch):
    """An exception inside trainer.train skips on_train_end; grpo train still stops the stall report's watcher, so a
    notebook that caught the error gets no stack dumps every few minutes afterwards."""
    import threading

    from grpo.train import trainer as trainer_module

    build = trainer_module._build_trainer

    def build_failing(*args, **kwargs):
        trainer, scorer = build(*args, **kwargs)

        def compute_loss(*args, **kwargs):
            watching.extend(t for t in threading.enumerate() if t.name == "grpo-stall-report")
            raise RuntimeError("a reward server went away")

        trainer.compute_loss = compute_loss
        return trainer, scorer

    watching = []  # the watcher threads alive when the step failed
    monkeypatch.setattr(trainer_module, "_build_trainer", build_failing)
    config = load_config(write_config(tmp_path, tiny_model_dir), ["eval.before_after=false", "eval.every_n_steps=null"])
    with pytest.raises(RuntimeError, match="a reward server went away"):
        trainer_module.train(config)
    assert len(watching) == 1 and not watching[0].is_alive()
