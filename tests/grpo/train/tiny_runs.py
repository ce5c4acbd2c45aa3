"""A `grpo train` config for the tiny random model, written as a YAML file: the shared base of the CPU tests that
run training end to end through the command line (a few steps, LoRA on q/v, synthetic problems)."""

from __future__ import annotations

from pathlib import Path

from grpo.config import RunConfig, load_config, to_yaml


def tiny_run_config(tmp_path: Path, tiny_model_dir: Path, name: str, *overrides: str) -> tuple[Path, RunConfig]:
    """``tmp_path/<name>.yaml`` for a run named ``name`` under ``tmp_path``, with ``overrides`` applied last; the
    file's path and the config it holds."""
    config = load_config(None, [
        f"run.output_dir={tmp_path}", f"run.name={name}", f"model.name={tiny_model_dir}", "model.backend=hf",
        "model.lora.r=4", "model.lora.alpha=8", "model.lora.target_modules=[q_proj,v_proj]", "data.system_prompt=''",
        "data.synthetic.train_size=16", "data.synthetic.eval_size=4", "data.synthetic.max_digits=3",
        "data.synthetic.num_operations=2", "train.per_device_train_batch_size=4", "train.num_generations=2",
        "train.max_completion_length=8", "eval.before_after=false", "train.report_to=[none]", *overrides])
    path = tmp_path / f"{name}.yaml"
    path.write_text(to_yaml(config))
    return path, config
