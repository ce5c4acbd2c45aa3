"""The static decode loop on CUDA (marked `gpu`; skipped without CUDA), mostly its ``compiled`` runner: torch.compile
with mode="reduce-overhead" replays the step as a CUDA graph. Greedy tokens equal eager ``model.generate``'s, a
second batch of the same shape reuses the compiled step, and sampling compiles at a real vocabulary size. For both
runners that replay a CUDA graph (``compiled`` and the hand-captured ``graph``): the steps never sync with the host,
sampling keeps the model's distribution, ``generate(decoder="static_loop")`` pads a short last batch instead of
compiling or capturing again, and the rollout hook reads weights updated in place without either.

Run on the device machine: `python3 -m pytest -m gpu tests/gpu -q`.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GenerationConfig

from grpo.eval import generation
from grpo.eval.generation import SamplingParams
from grpo.eval.static_decode import Sampling, StaticDecoder, next_tokens
from grpo.train.rollout import StaticLoopRollouts
from tests.grpo.eval.static_decode_checks import (PROMPTS, check_lagged_stop, encode, greedy_generate,
                                                  sampled_pair_p_values, sharpened_model, stopping_eos,
                                                  teacher_forced_logprobs)

pytestmark = pytest.mark.gpu
NEW = 16


@pytest.fixture
def cuda_model(tiny_model_dir):
    torch._dynamo.reset()  # each test counts its own compilations
    return sharpened_model(tiny_model_dir, "cuda")


def test_compiled_greedy_tokens_equal_generate_and_compile_once(cuda_model):
    """fullgraph=True: a graph break in the step (model forward included) is an error, not a silent split. The
    float32 comparison with eager generate assumes compiled kernels do not flip a near-tie argmax."""
    model, tokenizer = cuda_model
    pad = tokenizer.pad_token_id
    encoded = encode(tokenizer, PROMPTS, "cuda")
    free = greedy_generate(model, encoded, NEW, [], pad)
    eos = stopping_eos(free)[0]
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW + 8, NEW, eos, pad, sync_every=4,
                            fullgraph=True)
    assert decoder.compiled  # the default on CUDA
    assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]),
                       greedy_generate(model, encoded, NEW, eos, pad))
    other = encode(tokenizer, PROMPTS[::-1], "cuda")  # same padded width, other rows
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = decoder(other["input_ids"], other["attention_mask"])
    assert torch.equal(again, greedy_generate(model, other, NEW, eos, pad))


def test_compiled_loop_stops_one_question_after_every_row_finished(cuda_model):
    """The pinned-memory answer on CUDA: the loop stops at the question after the first that finds every row
    finished, as on a CPU, over two calls of one decoder (the second must not stop on the flag the first left True
    in the pinned buffer)."""
    model, tokenizer = cuda_model
    check_lagged_stop(model, tokenizer, PROMPTS, NEW, sync_every=3, device="cuda", calls=2)


@pytest.mark.parametrize("runner", ["compiled", "graph"])
def test_steps_never_sync_with_the_host(cuda_model, runner):
    model, tokenizer = cuda_model
    encoded = encode(tokenizer, PROMPTS, "cuda")
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, [], tokenizer.pad_token_id,
                            Sampling(True, 0.8, 0.9, 20), runner=runner)
    generator = torch.Generator("cuda").manual_seed(0)
    decoder(encoded["input_ids"], encoded["attention_mask"], generator)  # compiles and records, or captures
    decoder.prefill(encoded["input_ids"], encoded["attention_mask"], generator)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(NEW - 1):
            decoder.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert decoder.result().shape == (len(PROMPTS), NEW)


@pytest.mark.parametrize("runner", ["compiled", "graph"])
def test_sampling_follows_the_model_distribution(cuda_model, runner):
    """As the CPU test: chi-square p-values of sampled pairs and first tokens, false-failure probability 1e-4 each."""
    model, tokenizer = cuda_model
    pairs, firsts = sampled_pair_p_values(model, tokenizer, rows=20_000, temperature=0.7, seed=0, runner=runner)
    assert pairs > 1e-4 and firsts > 1e-4


@pytest.mark.parametrize("runner", ["compiled", "graph"])
def test_generate_pads_the_last_batch_for_the_loop(cuda_model, monkeypatch, runner):
    """2 + 2 + 1 rows: the last batch is padded to 2, so the step compiles (or is captured) once; the evaluations'
    default runner on CUDA is the graph."""
    model, tokenizer = cuda_model
    captures = []
    capture = StaticDecoder._capture
    monkeypatch.setattr(StaticDecoder, "_capture", lambda self: captures.append(1) or capture(self))
    default = generation.generate(model, tokenizer, PROMPTS, SamplingParams(max_new_tokens=NEW), 2, progress=False)
    with torch._dynamo.config.patch(error_on_recompile=True):
        looped = generation.generate(model, tokenizer, PROMPTS, SamplingParams(
            max_new_tokens=NEW, decoder="static_loop", loop_runner=None if runner == "graph" else runner), 2,
                                     progress=False)
    assert looped == default
    assert model._grpo_static_decoder.runner == runner and len(captures) == (runner == "graph")


@pytest.mark.parametrize("runner", ["compiled", "graph"])
@pytest.mark.parametrize("merge_lora", [False, True], ids=["adapter-layers", "merged-copy"])
def test_rollouts_read_updated_weights_without_recompiling(cuda_model, merge_lora, runner):
    """The rollout hook (grpo.train.rollout.StaticLoopRollouts), with either runner, on a LoRA model in train mode as
    TRL hands it over: between two rollouts the adapter's weights change in place, as an optimizer step changes them. The
    loop decodes through the adapter layers, or (``merge_lora``) a copy with the adapter merged, refreshed in place
    before each rollout. The second rollout compiles (or captures) nothing and equals generate's greedy tokens for
    the new weights: the CUDA graph reads the current weights rather than those it was recorded (or captured) with."""
    model, tokenizer = cuda_model
    torch.manual_seed(0)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False)).train()
    encoded = encode(tokenizer, PROMPTS, "cuda")
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    config = GenerationConfig(max_new_tokens=NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=[tokenizer.eos_token_id])
    rollouts = StaticLoopRollouts(lora, lora.generate, inputs["input_ids"].shape[1] + NEW, runner=runner,
                                  merge_lora=merge_lora)
    first = rollouts(**inputs, generation_config=config)
    assert torch.equal(first, lora.generate(**inputs, generation_config=config))
    graph = rollouts.decoder._graph  # the graph runner's capture (None for the compiled one)
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.mul_(-1.0)
    expected = lora.generate(**inputs, generation_config=config)
    assert not torch.equal(expected, first)  # the update changes the tokens
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert torch.equal(rollouts(**inputs, generation_config=config), expected)
    assert rollouts.decoder.runner == runner and rollouts.decoder._graph is graph
    assert rollouts.loop_calls == 2 and rollouts.generate_calls == 0
    assert rollouts.decoder.model is (rollouts.merged.model if merge_lora else lora)


@pytest.mark.parametrize("vocabulary", [49152, 151936], ids=["smollm2", "qwen2.5"])  # 151,936: a padded block
@pytest.mark.parametrize("sampling", [Sampling(True, 1.0), Sampling(True, 0.7, top_p=0.9),
                                      Sampling(True, 0.7, top_k=50)], ids=["plain", "top-p", "top-k"])
def test_sampling_compiles_at_a_real_vocabulary_size(sampling, vocabulary):
    """The tiny model's vocabulary hides what a real one shows: inductor (torch 2.11) failed to generate a cumsum
    over SmolLM2's 49,152 entries, which stopped the loop's first GRPO rollouts on the H200. Compiled, the choice
    equals the eager one for the same noise (bf16 logits tie often: top-k keeps the ties at the k-th)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    logits = torch.randn(64, vocabulary, device="cuda", dtype=torch.bfloat16) * 3
    noise = torch.empty(64, vocabulary, device="cuda").exponential_()
    compiled = torch.compile(lambda l, n: next_tokens(l, n, sampling), fullgraph=True)
    assert torch.equal(compiled(logits, noise), next_tokens(logits, noise, sampling))


def test_compiled_loop_with_fused_projections_decodes_the_same_tokens(cuda_model):
    """grpo.eval.fused_projections under the compiled step (one graph, no break): the greedy tokens of the unfused
    model's generate, and a second batch compiles nothing."""
    import copy

    from grpo.eval.fused_projections import fuse_projections

    model, tokenizer = cuda_model
    model.requires_grad_(False)
    plain = copy.deepcopy(model)
    assert fuse_projections(model) is None
    pad = tokenizer.pad_token_id
    encoded = encode(tokenizer, PROMPTS, "cuda")
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, [], pad, fullgraph=True)
    assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]),
                       greedy_generate(plain, encoded, NEW, [], pad))
    other = encode(tokenizer, PROMPTS[::-1], "cuda")
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert torch.equal(decoder(other["input_ids"], other["attention_mask"]),
                           greedy_generate(plain, other, NEW, [], pad))


def test_compiled_loop_records_the_sampled_tokens_logprobs(cuda_model):
    """``logprobs=True`` under the compiled step (one graph): each token's log-probability equals the model's own
    (temperature 0.7) in one teacher-forced forward, as TRL's training forward computes it; 0 after eos."""
    model, tokenizer = cuda_model
    pad = tokenizer.pad_token_id
    encoded = encode(tokenizer, PROMPTS, "cuda")
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, [tokenizer.eos_token_id], pad,
                            Sampling(True, 0.7), fullgraph=True, logprobs=True)
    tokens = decoder(encoded["input_ids"], encoded["attention_mask"], torch.Generator("cuda").manual_seed(0))
    recorded = decoder.result_logprobs()
    expected = teacher_forced_logprobs(model, encoded, tokens, 0.7)
    kept = torch.arange(tokens.shape[1], device="cuda")[None, :] < decoder._buffers.lengths[:, None]
    torch.testing.assert_close(recorded[kept], expected[kept], rtol=1e-3, atol=1e-3)
    assert torch.all(recorded[~kept] == 0)
