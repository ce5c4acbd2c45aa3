"""A loss, grad norm or weight that stops being finite ends training non-zero, keeping the last good checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import TrainerControl, TrainerState

from grpo.cli import main
from grpo.train.nonfinite_guard import NonFiniteGuard


def _step(guard: NonFiniteGuard, model=None, logs=None) -> TrainerControl:
    control, state = TrainerControl(should_save=True), TrainerState(global_step=3)
    guard.on_step_end(None, state, control, model=model)
    if logs is not None:
        guard.on_log(None, state, control, logs=logs)
    return control


def test_finite_steps_pass():
    guard = NonFiniteGuard()
    control = _step(guard, torch.nn.Linear(2, 2), {"loss": 0.5, "grad_norm": 1.0})
    assert guard.problem is None and control.should_save and not control.should_training_stop


def test_nan_loss_or_inf_grad_norm_stops_without_saving():
    for logs, expected in (({"loss": math.nan}, "loss is nan at step 3"),
                           ({"loss": 0.1, "grad_norm": math.inf}, "grad_norm is inf at step 3")):
        guard = NonFiniteGuard()
        control = _step(guard, logs=logs)
        assert guard.problem == expected and control.should_training_stop and not control.should_save


def test_nan_weight_stops_before_the_save():
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight[0, 0] = math.nan
    guard = NonFiniteGuard()
    control = _step(guard, layer)
    assert "trainable weight is NaN or inf after step 3" in guard.problem and not control.should_save


def test_reward_overflowing_the_weighted_total_stops_training(tmp_path, tiny_model_dir, capsys):
    """Each value 1e308 is finite (the reward contract holds), but weight 2 makes the total inf: the loss turns
    NaN at step 2, training stops, checkpoint-1 stays the newest and no adapter is written."""
    plugin = tmp_path / "huge.py"
    plugin.write_text("def huge(completions, trainer_state=None, **kwargs):\n"
                      "    return [1e308 if trainer_state.global_step >= 1 else 0.0 for _ in completions]\n")
    config = tmp_path / "nan.yaml"
    config.write_text(f"""
run: {{name: nan, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}}}
data: {{source: synthetic, system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 16, eval_size: 4}}}}
rewards: [{{name: math_correctness}}, {{name: "{plugin}:huge", weight: 2.0}}]
train: {{max_steps: 3, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8,
         learning_rate: 0.01, save_steps: 1, report_to: [none]}}
""")
    assert main(["train", str(config)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("grpo: error:")]
    assert len(errors) == 1 and "training stopped: reward is inf at step 2; reward means: " in errors[0], errors
    assert "huge inf" in errors[0] and "the last good checkpoint is checkpoint-1" in errors[0]
    run_dir = Path(tmp_path / "runs" / "nan")
    assert (run_dir / "checkpoint-1").is_dir() and not (run_dir / "checkpoint-2").exists()
    assert not (run_dir / "adapter").exists()
