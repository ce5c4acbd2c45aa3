"""Dynamic sampling: which groups count as informative, how a refilled batch is assembled, and a real trainer run."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from grpo.cli import main
from grpo.train.dynamic_sampling import assemble, choose, informative_groups

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_rewards.py"


def test_informative_groups_are_those_with_any_nonzero_advantage():
    advantages = torch.tensor([0.0, 0.0, 0.5, -0.5, 0.0, 0.0, 0.0, 1e-6])
    assert informative_groups(advantages, 2).tolist() == [False, True, False, True]


def test_choose_takes_informative_groups_in_order_then_tops_up_with_first_round_flat_groups():
    first, second = torch.tensor([True, False, False]), torch.tensor([False, True, False])
    assert choose([first, second], 3) == [(0, 0), (1, 1), (0, 1)]
    # enough informative groups: no flat group is used
    assert choose([first, torch.tensor([True, True, True])], 3) == [(0, 0), (1, 0), (1, 1)]


def _part(prompt_width: int, completion_width: int, advantages: list[float], fill: int) -> dict:
    rows = len(advantages)
    return {
        "prompt_ids": torch.full((rows, prompt_width), fill), "prompt_mask": torch.ones(rows, prompt_width, dtype=torch.long),
        "completion_ids": torch.full((rows, completion_width), fill),
        "completion_mask": torch.ones(rows, completion_width, dtype=torch.long),
        "advantages": torch.tensor(advantages), "num_items_in_batch": torch.tensor(rows * completion_width),
        "old_per_token_logps": None,
    }


def test_assemble_repads_prompts_on_the_left_and_completions_on_the_right():
    parts = [_part(3, 2, [1.0, -1.0, 0.0, 0.0], fill=7), _part(5, 4, [0.0, 0.0, 2.0, -2.0], fill=8)]
    batch = assemble(parts, [(0, 0), (1, 1)], group_size=2, pad_token_id=0)
    assert batch["prompt_ids"].shape == (4, 5) and batch["completion_ids"].shape == (4, 4)
    assert batch["prompt_ids"][0].tolist() == [0, 0, 7, 7, 7]  # left padding keeps prompts flush with completions
    assert batch["prompt_mask"][0].tolist() == [0, 0, 1, 1, 1]
    assert batch["completion_ids"][0].tolist() == [7, 7, 0, 0]
    assert batch["completion_mask"][0].tolist() == [1, 1, 0, 0]
    assert batch["advantages"].tolist() == [1.0, -1.0, 2.0, -2.0]
    assert int(batch["num_items_in_batch"]) == 2 * 2 + 2 * 4  # the loss normaliser counts only real tokens
    assert "old_per_token_logps" not in batch


def test_assemble_carries_the_samplers_logprobs_and_drops_a_field_a_round_lacks():
    parts = [_part(3, 2, [1.0, -1.0], fill=7) | {"sampling_per_token_logps": torch.full((2, 2), -0.5)},
             _part(3, 4, [2.0, -2.0], fill=8) | {"sampling_per_token_logps": torch.full((2, 4), -0.25)}]
    batch = assemble(parts, [(0, 0), (1, 0)], group_size=2, pad_token_id=0)
    assert batch["sampling_per_token_logps"].tolist() == [[-0.5, -0.5, 0.0, 0.0]] * 2 + [[-0.25] * 4] * 2
    without = assemble([parts[0], _part(3, 4, [2.0, -2.0], fill=8)], [(0, 0), (1, 0)], group_size=2, pad_token_id=0)
    assert "sampling_per_token_logps" not in without


def test_assemble_refuses_fields_it_cannot_repad():
    part = _part(2, 2, [1.0, 0.0], fill=1) | {"pixel_values": torch.zeros(2, 3)}
    try:
        assemble([part], [(0, 0)], 2, 0)
    except ValueError as err:
        assert "pixel_values" in str(err)
    else:
        raise AssertionError("an image batch must not be silently mangled")


def test_trainer_refills_flat_groups(tmp_path, tiny_model_dir):
    # even_rows_reward gives a signal only on even-numbered problems: about half of the first round is flat,
    # and one refill round should replace most of it.
    config = tmp_path / "ds.yaml"
    config.write_text(f"""
run: {{name: ds, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}}}
data: {{source: synthetic, system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 32, eval_size: 4}}}}
rewards:
  - name: "{PLUGIN}:even_rows_reward"
train:
  max_steps: 3
  per_device_train_batch_size: 8
  num_generations: 2
  max_completion_length: 6
  save_steps: 10
  report_to: [none]
  dynamic_sampling: {{enabled: true, max_rounds: 2}}
""")
    assert main(["train", str(config)]) == 0
    records = [json.loads(line) for line in (tmp_path / "runs" / "ds" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "dynamic_sampling/kept_fraction" in r]
    assert len(steps) == 3
    kept = sum(r["dynamic_sampling/kept_fraction"] for r in steps) / 3
    filled = sum(r["dynamic_sampling/filled_fraction"] for r in steps) / 3
    assert 0.0 < kept < 1.0
    assert filled > kept
    assert all(r["dynamic_sampling/rounds"] >= 1 for r in steps if r["dynamic_sampling/kept_fraction"] < 1.0)
