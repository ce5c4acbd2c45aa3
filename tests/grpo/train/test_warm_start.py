"""Rejection-sampling warm start: which sampled answers are kept, the fine-tuning on a tiny model, a run with it."""

from __future__ import annotations

import json

import pytest
import torch

from grpo import rundir
from grpo.cli import main
from grpo.config import ConfigError, load_config, to_yaml
from grpo.eval.evaluate import SampleResult
from grpo.models.loading import load
from grpo.train import distributed, warm_start

ROWS = [{"id": "a", "prompt": [{"role": "user", "content": "1 + 1?"}], "answer": "2"},
        {"id": "b", "prompt": [{"role": "user", "content": "2 + 2?"}], "answer": "4"}]


def _result(row_id: str, text: str, correct: bool | None, truncated: bool = False) -> SampleResult:
    return SampleResult(id=row_id, sample=0, completion=text, extracted=None, correct=correct, num_tokens=3,
                        truncated=truncated)


def test_only_right_finished_distinct_answers_are_kept_up_to_the_limit():
    results = [_result("a", "It is 3.", False), _result("a", "It is 2.", True), _result("a", "It is 2.", True),
               _result("a", "1 + 1 = 2.", True), _result("a", "So 2.", True),
               _result("b", "Maybe 4", None), _result("b", "4 and then", True, truncated=True)]
    examples = warm_start.verified_examples(ROWS, results, keep_per_prompt=2)
    assert [(e["id"], e["completion"][0]["content"]) for e in examples] == [("a", "It is 2."), ("a", "1 + 1 = 2.")]
    assert examples[0]["prompt"] == ROWS[0]["prompt"] and examples[0]["completion"][0]["role"] == "assistant"


def _overrides(tmp_path, tiny_model_dir, *extra):
    return [f"run.output_dir={tmp_path / 'runs'}", "run.name=warm", f"model.name={tiny_model_dir}",
            "model.backend=hf", "model.lora.r=4", "model.lora.alpha=8", "model.lora.target_modules=[q_proj,v_proj]",
            "data.system_prompt=''", "data.synthetic.train_size=16", "data.synthetic.eval_size=4",
            "train.max_steps=1", "train.per_device_train_batch_size=4", "train.num_generations=2",
            "train.max_completion_length=6", "eval.before_after=false", *extra]


def _train_with_warm_start(tmp_path, tiny_model_dir, *extra):
    """`grpo train` of a config file with the warm start on; the run directory."""
    config = load_config(None, _overrides(tmp_path, tiny_model_dir, "train.warm_start.enabled=true", *extra))
    config_file = tmp_path / "warm.yaml"
    config_file.write_text(to_yaml(config))
    assert main(["train", str(config_file)]) == 0
    return tmp_path / "runs" / "warm"


def test_fine_tuning_moves_the_adapter_towards_the_examples(tmp_path, tiny_model_dir):
    config = load_config(None, _overrides(tmp_path, tiny_model_dir, "train.warm_start.epochs=3",
                                          "train.warm_start.learning_rate=0.01", "train.warm_start.batch_size=2"))
    loaded = load(config.model, 0)
    examples = [{"id": row["id"], "prompt": row["prompt"], "completion": [{"role": "assistant", "content": answer}]}
                for row, answer in zip(ROWS, ["The answer is 2.", "The answer is 4."])]
    before = {name: p.detach().clone() for name, p in loaded.model.named_parameters() if p.requires_grad}
    record = warm_start.fine_tune(loaded.model, loaded.tokenizer, examples, config, tmp_path / "sft")
    after = dict(loaded.model.named_parameters())
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert record["examples"] == 2 and record["steps"] == 3 and record["train_loss"] > 0
    frozen = [p for p in loaded.model.parameters() if not p.requires_grad]
    assert frozen  # only the adapter trains: the base weights stay frozen


def test_a_run_with_warm_start_records_what_it_sampled(tmp_path, tiny_model_dir):
    run_dir = _train_with_warm_start(tmp_path, tiny_model_dir, "train.warm_start.prompts=3",
                                     "train.warm_start.samples_per_prompt=4")
    record = json.loads((run_dir / rundir.WARM_START_JSON).read_text())
    assert record["sampling"]["prompts"] == 3 and record["sampling"]["samples"] == 12
    kept = (run_dir / rundir.WARM_START_EXAMPLES).read_text().splitlines()
    assert len(kept) == record["kept_examples"] <= record["sampling"]["correct_samples"]
    assert (run_dir / rundir.ADAPTER_DIR).is_dir()


def test_warm_start_is_refused_across_processes(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(distributed, "launched_processes", lambda: 2)
    with pytest.raises(ConfigError, match="train.warm_start.enabled: runs in a single process only"):
        load_config(None, _overrides(tmp_path, tiny_model_dir, "train.warm_start.enabled=true",
                                     "train.dynamic_sampling.enabled=false"))


def test_grpo_trains_on_from_the_fine_tuned_adapter(tmp_path, tiny_model_dir, monkeypatch):
    # the tiny random model never answers right, so the verified answers are supplied: the fine-tuning and the GRPO
    # steps after it then run on the same model in one `grpo train`
    def supplied(rows, results, keep_per_prompt):
        return [{"id": row["id"], "prompt": row["prompt"],
                 "completion": [{"role": "assistant", "content": f"The answer is {row['answer']}."}]} for row in rows]

    monkeypatch.setattr(warm_start, "verified_examples", supplied)
    run_dir = _train_with_warm_start(tmp_path, tiny_model_dir, "train.warm_start.prompts=4",
                                     "train.warm_start.samples_per_prompt=2", "train.warm_start.epochs=1",
                                     "train.warm_start.batch_size=2")
    record = json.loads((run_dir / rundir.WARM_START_JSON).read_text())
    assert record["kept_examples"] == 4 and record["fine_tuning"]["steps"] == 2
    steps = [json.loads(line) for line in (run_dir / rundir.METRICS_FILE).read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s] == [1]  # the GRPO step, logged after the warm start
    assert not (run_dir / ".warm_start").exists()
