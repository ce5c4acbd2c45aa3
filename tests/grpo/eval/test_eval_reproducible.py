"""Greedy evaluation is reproducible: the same weights give the same per-problem outputs at any batch size, and the
step-0 eval inside training equals a standalone eval of the base model (CPU, float32, tiny model)."""

from __future__ import annotations

import json

import pytest

from grpo.cli import main
from grpo.config import load_config
from grpo.data.splits import load_splits
from grpo.eval import static_decode
from grpo.eval.evaluate import Scorer, greedy_eval
from grpo.eval.generation import SamplingParams, generate, static_cache_len
from grpo.models.loading import load


def _config(tmp_path, tiny_model_dir, *overrides):
    return load_config(None, [
        f"run.output_dir={tmp_path / 'runs'}", "run.name=repro", f"model.name={tiny_model_dir}", "model.backend=hf",
        "model.lora.r=4", "model.lora.alpha=8", "model.lora.target_modules=[q_proj,v_proj]", "data.system_prompt=''",
        "data.synthetic.train_size=16", "data.synthetic.eval_size=6", "data.synthetic.min_digits=1",
        "data.synthetic.max_digits=3", "data.synthetic.num_operations=2", *overrides])


def test_greedy_outputs_do_not_depend_on_batch_size(tmp_path, tiny_model_dir):
    config = _config(tmp_path, tiny_model_dir)
    loaded = load(config.model, 0)
    prompts = [row["prompt"] for row in load_splits(config.data, loaded.tokenizer).held_out]
    lengths = {len(str(p)) for p in prompts}
    assert len(lengths) > 1  # prompts of different lengths, so batches really are padded differently
    params = SamplingParams(max_new_tokens=12)
    by_batch = {size: generate(loaded.model, loaded.tokenizer, prompts, params, size, progress=False)
                for size in (1, 4, 6)}
    assert by_batch[1] == by_batch[4] == by_batch[6]


def test_static_cache_pads_the_last_batch_and_keeps_the_outputs(tmp_path, tiny_model_dir):
    """The compiled (static-cache) path decodes every batch at the full batch size, so a short last batch does not
    compile again; the spare rows are dropped and the real rows' greedy outputs are unchanged."""
    config = _config(tmp_path, tiny_model_dir)
    loaded = load(config.model, 0)
    prompts = [row["prompt"] for row in load_splits(config.data, loaded.tokenizer).held_out]
    shapes = []
    original = loaded.model.generate

    def recording_generate(**kwargs):
        shapes.append(kwargs["input_ids"].shape[0])
        return original(**kwargs)

    loaded.model.generate = recording_generate
    static = SamplingParams(max_new_tokens=12, cache_implementation="static")
    padded = generate(loaded.model, loaded.tokenizer, prompts, static, 4, progress=False)
    assert shapes == [4, 4] and len(padded) == len(prompts) == 6
    shapes.clear()
    unpadded = generate(loaded.model, loaded.tokenizer, prompts, SamplingParams(max_new_tokens=12), 4, progress=False)
    assert shapes == [4, 2]  # the dynamic cache compiles nothing: no filler
    assert padded == unpadded


def test_static_cache_has_one_size_for_every_batch(tmp_path, tiny_model_dir):
    """Sized per batch, the cache grows with the longest prompt seen so far and each size recompiles the decode step;
    sized once for the longest prompt, the first batch already has the size the last one needs."""
    config = _config(tmp_path, tiny_model_dir)
    loaded = load(config.model, 0)
    prompts = sorted((row["prompt"] for row in load_splits(config.data, loaded.tokenizer).held_out),
                     key=lambda prompt: len(str(prompt)))  # shortest first: a per-batch size would have to grow
    sizes = []
    original = loaded.model.generate

    def recording_generate(**kwargs):
        output = original(**kwargs)
        sizes.append(loaded.model._previous_max_cache_length)  # transformers' record of the static cache it made
        return output

    loaded.model.generate = recording_generate
    static = SamplingParams(max_new_tokens=12, cache_implementation="static")
    generate(loaded.model, loaded.tokenizer, prompts, static, 2, progress=False)
    assert sizes == [static_cache_len(loaded.tokenizer, prompts, 12)] * 3


@pytest.mark.parametrize("decoder", ["generate", "static_loop"])
def test_step_zero_eval_in_training_equals_standalone_eval(tmp_path, tiny_model_dir, monkeypatch, decoder):
    """Also with ``eval.decoder: static_loop``: the setting reaches the in-training eval (the loop is built, on
    the LoRA-wrapped policy) and its completions equal a standalone ``model.generate`` eval of the base model."""
    overrides = ["train.max_steps=1", "train.per_device_train_batch_size=4", "train.num_generations=2",
                 "train.max_completion_length=4", "train.report_to=[none]", "eval.every_n_steps=1",
                 "eval.num_problems=6", "eval.max_new_tokens=10", "eval.batch_size=4", f"eval.decoder={decoder}"]
    config = _config(tmp_path, tiny_model_dir, *overrides)
    config_file = tmp_path / "repro.yaml"
    from grpo.config import to_yaml

    config_file.write_text(to_yaml(config))
    built = []
    original = static_decode.StaticDecoder

    def recording_decoder(model, *args, **kwargs):
        built.append(type(model).__name__)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(static_decode, "StaticDecoder", recording_decoder)
    assert main(["train", str(config_file)]) == 0
    assert set(built) == ({"PeftModelForCausalLM"} if decoder == "static_loop" else set())
    in_training = [json.loads(line) for line in
                   (tmp_path / "runs" / "repro" / "eval_samples" / "step-000000.jsonl").read_text().splitlines()]

    standalone_config = _config(tmp_path, tiny_model_dir, "model.lora.enabled=false")
    loaded = load(standalone_config.model, 0)
    rows = load_splits(standalone_config.data, loaded.tokenizer).held_out.to_list()
    _, samples = greedy_eval(loaded.model, loaded.tokenizer, rows, Scorer.from_specs(config.rewards), 10, 3,
                             progress=False)
    assert [s["completion"] for s in in_training] == [s.completion for s in samples]
    assert [s["id"] for s in in_training] == [s.id for s in samples]
