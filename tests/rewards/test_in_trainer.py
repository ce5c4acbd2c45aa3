"""Every built-in reward inside a real GRPOTrainer step on a tiny model (TRL calls them with its own keywords)."""

from __future__ import annotations

import json

import rewards
from grpo.cli import main


def test_all_builtins_run_inside_a_grpo_step(tmp_path, tiny_model_dir):
    names = rewards.available()
    reward_yaml = "\n".join(f"  - name: {name}" for name in names)
    config = tmp_path / "all-rewards.yaml"
    config.write_text(f"""
run: {{name: all, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj]}}}}
data: {{system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 8, eval_size: 2}}}}
rewards:
{reward_yaml}
train: {{max_steps: 1, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8, save_steps: 1}}
""")
    assert main(["train", str(config)]) == 0
    record = next(json.loads(line) for line in (tmp_path / "runs" / "all" / "metrics.jsonl").read_text().splitlines()
                  if "reward" in json.loads(line))
    for name in names:
        assert f"rewards/{name}/mean" in record, name
