"""Rollout settings the pipeline applies on top of TRL's GenerationConfig."""

from __future__ import annotations

from types import SimpleNamespace

from transformers import AutoTokenizer, GenerationConfig

from grpo.cli import main
from grpo.config import load_config, to_yaml
from grpo.data.splits import load_splits, longest_prompt_tokens
from grpo.train.rollout import enable_compiled_decoding


def _trainer():
    return SimpleNamespace(generation_config=GenerationConfig(disable_compile=True, cache_implementation="static"))


def test_static_cache_compiles_with_one_cache_size():
    trainer = _trainer()
    assert enable_compiled_decoding(trainer, "static", max_cache_len=640)
    assert trainer.generation_config.disable_compile is False
    assert trainer.generation_config.max_cache_len == 640


def test_other_caches_are_left_as_trl_built_them():
    trainer = _trainer()
    assert not enable_compiled_decoding(trainer, "dynamic", max_cache_len=640)
    assert not enable_compiled_decoding(trainer, None, max_cache_len=640)
    assert trainer.generation_config.disable_compile is True
    assert trainer.generation_config.max_cache_len is None
    assert not enable_compiled_decoding(SimpleNamespace(), "static", max_cache_len=640)  # no GenerationConfig (vLLM)


def test_training_rollouts_use_one_static_cache_for_the_longest_prompt(tmp_path, tiny_model_dir, capsys):
    overrides = [f"run.output_dir={tmp_path}", "run.name=static", f"model.name={tiny_model_dir}", "model.backend=hf",
                 "model.lora.r=4", "model.lora.alpha=8", "model.lora.target_modules=[q_proj,v_proj]",
                 "data.system_prompt=''", "data.synthetic.train_size=16", "data.synthetic.eval_size=4",
                 "data.synthetic.max_digits=3", "data.synthetic.num_operations=2", "train.max_steps=1",
                 "train.per_device_train_batch_size=4", "train.num_generations=2", "train.max_completion_length=8",
                 "train.cache_implementation=static", "eval.before_after=false"]
    config = load_config(None, overrides)
    config_file = tmp_path / "static.yaml"
    config_file.write_text(to_yaml(config))
    assert main(["train", str(config_file)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train = load_splits(config.data, tokenizer).train
    expected = longest_prompt_tokens(tokenizer, train["prompt"], sample=len(train)) + 8
    assert f"rollouts: static KV cache of {expected} tokens with compiled decoding" in capsys.readouterr().out
