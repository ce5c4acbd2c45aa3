"""Curriculum order: difficulty keys, the ramp over a planned run, and the order the trainer is handed."""

from __future__ import annotations

import pytest

from grpo.config import load_config
from grpo.data.curriculum import ramp_order, solution_steps
from grpo.data.splits import load_splits
from grpo.train.trl_args import build_grpo_args, planned_prompts


@pytest.mark.parametrize("answer, steps", [
    ("42", 1),                                               # a bare answer is one step
    ("He buys 3 packs.\n3*4=12\n#### 12", 2),                # GSM8K: one line per calculation before ####
    ("a\n\nb\nc\n#### 7", 3),                                # blank lines are not steps
])
def test_solution_steps_counts_reasoning_lines(answer, steps):
    assert solution_steps(answer)[0] == steps


def test_ramp_without_a_plan_is_a_stable_sort():
    assert ramp_order([3, 1, 2, 1], None) == [1, 3, 2, 0]


def test_ramp_spreads_a_short_run_over_every_difficulty():
    difficulties = list(range(100))[::-1]  # row 99 is the easiest
    order = ramp_order(difficulties, 10)
    first = [difficulties[i] for i in order[:10]]
    assert first == sorted(first)              # easiest first...
    assert first[0] == 0 and first[-1] >= 90   # ...reaching the hardest decile within the run
    assert sorted(order) == list(range(100))   # every row still present, once


def test_synthetic_curriculum_puts_fewer_operations_first(tiny_model_dir):
    config = load_config(None, [f"model.name={tiny_model_dir}", "data.order=curriculum", "data.system_prompt=''",
                                "data.synthetic.min_operations=1", "data.synthetic.num_operations=3",
                                "data.synthetic.train_size=60", "data.synthetic.eval_size=4"])
    from grpo.models.loading import load_tokenizer

    train = load_splits(config.data, load_tokenizer(str(tiny_model_dir)), planned_prompts=30).train
    operations = train["operations"]
    assert operations[:30] == sorted(operations[:30]) and set(operations[:30]) == {1, 2, 3}
    assert build_grpo_args(config, tiny_model_dir, [1.0]).shuffle_dataset is False


def test_planned_prompts_counts_prompts_per_step(tmp_path):
    config = load_config(None, ["train.max_steps=10", "train.per_device_train_batch_size=8",
                                "train.gradient_accumulation_steps=2", "train.num_generations=4"])
    assert planned_prompts(build_grpo_args(config, tmp_path, [1.0, 1.0])) == 40


def test_planned_prompts_counts_reused_generations_once(tmp_path):
    """Each generation of 4 prompts serves 2 micro-batches x 2 iterations: an optimizer step of 2 micro-batches
    takes half a generation."""
    config = load_config(None, ["train.max_steps=10", "train.per_device_train_batch_size=8",
                                "train.gradient_accumulation_steps=2", "train.num_generations=4",
                                "train.num_iterations=2"])
    assert planned_prompts(build_grpo_args(config, tmp_path, [1.0, 1.0])) == 20
