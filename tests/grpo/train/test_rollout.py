"""Rollout settings the pipeline applies on top of TRL's GenerationConfig, and the static decode loop as the
decoder of TRL's rollouts (``train.rollout_decoder: static_loop``), on a CPU (eager)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, GenerationConfig, GenerationMixin

from grpo.cli import main
from grpo.data.splits import load_splits, longest_prompt_tokens
from grpo.eval import static_decode
from grpo.eval.static_decode import Sampling
from grpo.train import trainer as trainer_module
from grpo.train.rollout import (StaticLoopRollouts, enable_compiled_decoding, install_static_loop, loop_settings,
                                static_loop_unsupported)
from tests.grpo.eval.static_decode_checks import PROMPTS, encode, sharpened_model, stopping_eos
from tests.grpo.train.tiny_runs import tiny_run_config


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


def test_training_rollouts_use_one_static_cache_for_the_longest_prompt(tmp_path, tiny_model_dir, capsys,
                                                                        monkeypatch):
    """The default train.rollout_decoder (generate) leaves TRL's rollouts to model.generate: the loop never runs."""
    counts = _count_decoding(monkeypatch)
    config_file, config = tiny_run_config(tmp_path, tiny_model_dir, "static", "train.max_steps=1",
                                          "train.cache_implementation=static")
    assert main(["train", str(config_file)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train = load_splits(config.data, tokenizer).train
    expected = longest_prompt_tokens(tokenizer, train["prompt"], sample=len(train)) + 8
    out = capsys.readouterr().out
    assert f"rollouts: static KV cache of {expected} tokens with compiled decoding" in out
    assert counts == {"loop": 0, "generate": 1} and "static decode loop" not in out


# ---------------------------------------------------------------------- the static decode loop in TRL's rollouts

NEW = 12


@pytest.fixture
def lora_model(tiny_model_dir):
    """The context-sensitive tiny Llama (static_decode_checks) under a LoRA adapter that changes its tokens, in train
    mode: the PeftModel TRL unwraps for generation in a LoRA run."""
    model, tokenizer = sharpened_model(tiny_model_dir)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    return lora.train(), tokenizer


def _rollout_config(tokenizer, eos_ids, **settings) -> GenerationConfig:
    """A GenerationConfig shaped like TRL's rollout config (explicit pad, eos and sampling settings)."""
    return GenerationConfig(**{"max_new_tokens": NEW, "pad_token_id": tokenizer.pad_token_id,
                               "eos_token_id": sorted(eos_ids), "do_sample": True, "temperature": 1.0,
                               "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0, **settings})


def _forbidden(**kwargs):
    raise AssertionError("model.generate called for a call the static loop should decode")


def _counting(generate, calls: list):
    def counted(*args, **kwargs):
        calls.append(kwargs.get("generation_config"))
        return generate(*args, **kwargs)
    return counted


@pytest.mark.parametrize("grouped_attention", [True, False], ids=["grouped-kv", "repeated-kv"])
@pytest.mark.parametrize("planned_cache", ["exact", "short"])
def test_greedy_rollouts_through_the_loop_equal_generate(lora_model, planned_cache, grouped_attention, caplog):
    """Left-padded prompts of different lengths, no eos, eos ids that stop some rows early and eos ids that stop
    every row early: the loop returns exactly what generate returns (prompt ids, then the new tokens, pad after eos,
    as wide as the longest row), and generate is not called. A planned cache too short for the batch grows, once,
    with a line in the log."""
    model, tokenizer = lora_model
    encoded = encode(tokenizer, PROMPTS)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    assert len(set(inputs["attention_mask"].sum(1).tolist())) == len(PROMPTS)  # really padded differently
    free = model.generate(**inputs, generation_config=_rollout_config(tokenizer, [], do_sample=False))
    some, every = stopping_eos(free[:, inputs["input_ids"].shape[1]:])
    planned = inputs["input_ids"].shape[1] + NEW - (0 if planned_cache == "exact" else 5)
    rollouts = StaticLoopRollouts(model, _forbidden, planned, grouped_attention=grouped_attention)
    widths = []
    with caplog.at_level(logging.WARNING, logger="grpo"):
        for eos in ([], some, every):
            config = _rollout_config(tokenizer, eos, do_sample=False)
            expected = model.generate(**inputs, generation_config=config)
            looped = rollouts(**inputs, generation_config=config)
            assert looped.shape == expected.shape and torch.equal(looped, expected), eos
            widths.append(looped.shape[1])
    assert widths[0] == widths[1] > widths[2]  # some rows ran to the limit; then every row stopped early
    assert rollouts.loop_calls == 3 and rollouts.generate_calls == 0
    assert rollouts.decoder.grouped_attention is grouped_attention
    grew = caplog.text.count("the cache grows")
    assert grew == (0 if planned_cache == "exact" else 1)
    assert rollouts.decoder.max_cache_len == inputs["input_ids"].shape[1] + NEW


def test_sampled_rollouts_use_the_loop_and_follow_the_global_seed(lora_model):
    """do_sample with temperature / top-p: generate is never called; the same global seed gives the same tokens,
    another seed or the next call (the global RNG advanced) other tokens."""
    model, tokenizer = lora_model
    encoded = encode(tokenizer, PROMPTS)
    rollouts = StaticLoopRollouts(model, _forbidden, encoded["input_ids"].shape[1] + NEW)
    config = _rollout_config(tokenizer, [tokenizer.eos_token_id], temperature=0.9, top_p=0.95)

    def sample(seed=None):
        if seed is not None:
            torch.manual_seed(seed)
        return rollouts(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                        generation_config=config)

    first = sample(0)
    assert torch.equal(first[:, :encoded["input_ids"].shape[1]], encoded["input_ids"])
    assert torch.equal(sample(0), first)
    assert not torch.equal(sample(1), first)
    torch.manual_seed(0)
    sample()
    assert not torch.equal(sample(), first)  # the second rollout after seeding differs from the first
    assert rollouts.loop_calls == 5 and rollouts.generate_calls == 0


def test_loop_settings_are_those_generate_resolves(lora_model):
    """Unset fields come from the model's generation config, then transformers' defaults (top_k 50), as in
    generate; explicit neutral values (repetition_penalty 1.0, as TRL passes) are accepted."""
    model, tokenizer = lora_model
    config = _rollout_config(tokenizer, [7], temperature=0.7, top_p=0.9, top_k=None)
    settings = loop_settings(model, config)
    assert settings.sampling == Sampling(True, 0.7, 0.9, 50)
    assert (settings.max_new_tokens, settings.eos_ids, settings.pad_id) == (NEW, (7,), tokenizer.pad_token_id)
    model.generation_config.top_k = 5
    assert loop_settings(model, config).sampling.top_k == 5
    assert loop_settings(model, _rollout_config(tokenizer, [7], do_sample=False)).sampling == Sampling()


@pytest.mark.parametrize("change, said", [
    ({"repetition_penalty": 1.1}, "sets repetition_penalty"),
    ({"min_p": 0.1}, "sets min_p"),
    ({"extra": {"token_type_ids": None}}, "arguments the loop does not take (token_type_ids)"),
], ids=["repetition_penalty", "min_p", "other_inputs"])
def test_what_the_loop_cannot_decode_goes_to_generate(lora_model, caplog, change, said):
    """Settings the loop does not implement (and inputs it does not take) go to the original generate, unchanged
    (same tokens for the same seed), the log says why once; a call without a generation_config (the evaluations'
    keyword form) goes there silently."""
    model, tokenizer = lora_model
    encoded = encode(tokenizer, PROMPTS)
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    extra = change.pop("extra", {})
    config = _rollout_config(tokenizer, [tokenizer.eos_token_id], **change)
    calls = []
    rollouts = StaticLoopRollouts(model, _counting(model.generate, calls), inputs["input_ids"].shape[1] + NEW)
    torch.manual_seed(3)
    expected = model.generate(**inputs, generation_config=config)
    with caplog.at_level(logging.WARNING, logger="grpo"):
        for _ in range(2):
            torch.manual_seed(3)
            assert torch.equal(rollouts(**inputs, **extra, generation_config=config), expected)
        rollouts(**inputs, max_new_tokens=2, do_sample=False)
    assert calls == [config, config, None] and rollouts.loop_calls == 0 and rollouts.decoder is None
    assert caplog.text.count(said) == 1 and caplog.text.count("rollout decoder static_loop") == 1


def test_the_hook_is_installed_only_where_trl_calls_generate(lora_model):
    model, tokenizer = lora_model
    original = model.generate
    trainer = SimpleNamespace(use_vllm=False, args=SimpleNamespace(), model=model,
                              accelerator=SimpleNamespace(unwrap_model=lambda m: m, state=SimpleNamespace()),
                              generation_config=_rollout_config(tokenizer, [tokenizer.eos_token_id]))
    assert static_loop_unsupported(SimpleNamespace(use_vllm=True)) == "TRL generates the rollouts with vLLM"
    trainer.generation_config = _rollout_config(tokenizer, [tokenizer.eos_token_id], min_p=0.05)
    assert not install_static_loop(trainer, 64) and model.generate == original
    assert "sets min_p" in static_loop_unsupported(trainer)
    trainer.generation_config = _rollout_config(tokenizer, [tokenizer.eos_token_id])
    assert install_static_loop(trainer, 64) and install_static_loop(trainer, 64)
    assert isinstance(model.generate, StaticLoopRollouts) and model.generate.generate == original  # wrapped once


def _count_decoding(monkeypatch) -> dict[str, int]:
    """Counts of the static loop's decodes and of transformers' generate (under PeftModel.generate)."""
    counts = {"loop": 0, "generate": 0}
    loop_call, generate = static_decode.StaticDecoder.__call__, GenerationMixin.generate

    def counted_loop(self, *args, **kwargs):
        counts["loop"] += 1
        return loop_call(self, *args, **kwargs)

    def counted_generate(self, *args, **kwargs):
        counts["generate"] += 1
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(static_decode.StaticDecoder, "__call__", counted_loop)
    monkeypatch.setattr(GenerationMixin, "generate", counted_generate)
    return counts


def test_grpo_train_with_the_static_loop_rollouts(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """`grpo train` with train.rollout_decoder=static_loop: every step's rollout goes through the loop (generate
    never runs), metrics are written for every step, and the console names the decoder and its one cache size."""
    counts = _count_decoding(monkeypatch)
    config_file, config = tiny_run_config(tmp_path, tiny_model_dir, "loop", "train.max_steps=2",
                                          "train.rollout_decoder=static_loop")
    assert main(["train", str(config_file)]) == 0
    assert counts == {"loop": 2, "generate": 0}
    records = [json.loads(line) for line in (tmp_path / "loop" / "metrics.jsonl").read_text().splitlines()]
    steps = [record for record in records if "reward" in record]
    assert [record["step"] for record in steps] == [1, 2]
    assert all(record["completions/mean_length"] > 0 for record in steps)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train = load_splits(config.data, tokenizer).train
    expected = longest_prompt_tokens(tokenizer, train["prompt"], sample=len(train)) + 8
    assert f"rollouts: static decode loop with a static KV cache of {expected} tokens, eager (no CUDA)" in \
        capsys.readouterr().out


def test_grpo_train_decodes_through_the_merged_copy_itself(tmp_path, tiny_model_dir, monkeypatch):
    """With train.rollout_merged_lora, the rollouts run the copy's own layers. (TRL's GRPOTrainer patches the
    policy's forward on the instance; a copy that kept that patch ran the policy instead and never read its merged
    weights, which a test outside the trainer does not see.)"""
    from grpo.train import merged_copy

    copy_layer_calls = []
    build = merged_copy.MergedCopy.__init__

    def counted_build(self, peft_model):
        build(self, peft_model)
        self.model.model.layers[0].register_forward_hook(lambda *_: copy_layer_calls.append(1))

    monkeypatch.setattr(merged_copy.MergedCopy, "__init__", counted_build)
    config_file, _ = tiny_run_config(tmp_path, tiny_model_dir, "merged", "train.max_steps=2",
                                     "train.rollout_decoder=static_loop", "train.rollout_merged_lora=true")
    assert main(["train", str(config_file)]) == 0
    assert copy_layer_calls  # before the fix: none (the copy's forward ran the policy)


def test_static_loop_with_a_backend_auto_that_picks_unsloth_is_refused(tmp_path, tiny_model_dir, monkeypatch,
                                                                          capsys):
    monkeypatch.setattr(trainer_module, "prepare_backend", lambda model: "unsloth")
    config_file, _ = tiny_run_config(tmp_path, tiny_model_dir, "auto", "train.max_steps=1", "model.backend=auto",
                                     "train.rollout_decoder=static_loop")
    assert main(["train", str(config_file)]) == 2
    assert "train.rollout_decoder: static_loop needs model.backend hf, and model.backend auto chose unsloth" in \
        capsys.readouterr().err
    assert not (tmp_path / "auto").exists()
