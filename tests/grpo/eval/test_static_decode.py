"""The static decode loop (grpo.eval.static_decode) on a CPU, eager: greedy tokens equal ``model.generate``'s,
sampled tokens follow the model's distribution (chi-square), filtered sampling never leaves its kept set, and
unsupported models go through ``model.generate``. The compiled CUDA path is tested in tests/gpu."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GenerationConfig, Qwen2Config

from grpo.eval import generation, static_decode
from grpo.eval.generation import SamplingParams
from grpo.eval.static_decode import (HOST_POSITION_ROPE, Sampling, StaticDecoder, decode, graph_unsupported_reason,
                                     unsupported_reason)
from tests.grpo.eval.static_decode_checks import (PROMPTS, check_lagged_stop, chi_square_p_value, encode,
                                                  greedy_generate, next_token_probs, sampled_pair_p_values,
                                                  sharpened_model, stopping_eos, teacher_forced_logprobs)

NEW = 16
# The chi-square tests below fail with probability 1e-4 each when the loop samples exactly the model's
# distribution (their p-value is uniform then); they are seeded, so a pass or a failure repeats.
ALPHA = 1e-4


@pytest.fixture
def model_and_tokenizer(tiny_model_dir):
    return sharpened_model(tiny_model_dir)


@pytest.mark.parametrize("sync_every, spare_cache", [(1, 0), (5, 9)])
def test_greedy_tokens_equal_generate(model_and_tokenizer, sync_every, spare_cache):
    """Left-padded prompts of different lengths; no eos (every row runs to the limit), eos ids that stop some rows
    early while others run to the limit, and eos ids that stop every row before the limit (the output is as narrow
    as generate's). With the host check every token and every 5 tokens, and a cache larger than needed."""
    model, tokenizer = model_and_tokenizer
    encoded = encode(tokenizer, PROMPTS)
    assert len(set(encoded["attention_mask"].sum(1).tolist())) == len(PROMPTS)  # really padded differently
    pad = tokenizer.pad_token_id
    free = greedy_generate(model, encoded, NEW, [], pad)
    assert len({tuple(row) for row in free.tolist()}) == len(PROMPTS)  # the tokens depend on the prompt
    some, every = stopping_eos(free)
    for eos in ([], some, every):
        expected = greedy_generate(model, encoded, NEW, eos, pad)
        decoded = decode(model, encoded["input_ids"], encoded["attention_mask"], NEW, eos, pad,
                         max_cache_len=encoded["input_ids"].shape[1] + NEW + spare_cache, sync_every=sync_every)
        assert decoded.shape == expected.shape and torch.equal(decoded, expected), eos
    stopped = [any(token in some for token in row[:-1]) for row in greedy_generate(model, encoded, NEW, some, pad)
               .tolist()]
    assert any(stopped) and not all(stopped)  # some rows end early, some run to the limit
    assert greedy_generate(model, encoded, NEW, every, pad).shape[1] < NEW


def test_generate_with_the_static_loop_returns_the_same_completions(model_and_tokenizer, monkeypatch):
    """Through grpo.eval.generation.generate: batches of 2 (a short last batch), some completions ended by eos and
    some truncated; the loop's completions equal model.generate's, and model.generate is not called."""
    model, tokenizer = model_and_tokenizer
    free = greedy_generate(model, encode(tokenizer, PROMPTS), NEW, [], tokenizer.pad_token_id)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *stopping_eos(free)[0]]
    params = SamplingParams(max_new_tokens=NEW)
    default = generation.generate(model, tokenizer, PROMPTS, params, 2, progress=False)
    assert {c.truncated for group in default for c in group} == {True, False}

    def no_generate(**kwargs):
        raise AssertionError("model.generate called although the static loop supports this model")

    monkeypatch.setattr(model, "generate", no_generate)
    looped = generation.generate(model, tokenizer, PROMPTS, SamplingParams(max_new_tokens=NEW, decoder="static_loop"),
                                 2, progress=False)
    assert looped == default


def test_sampled_generation_through_the_loop_follows_the_seed(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer

    def sample(seed):
        params = SamplingParams(max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, num_samples=3,
                                seed=seed, decoder="static_loop")
        return generation.generate(model, tokenizer, PROMPTS[:2], params, 4, progress=False)

    first = sample(0)
    assert first == sample(0) and first != sample(1)
    assert len({c.text for c in first[0]}) > 1  # the samples of one prompt differ


def test_a_lora_model_decodes_as_its_generate(model_and_tokenizer):
    """PEFT passes position ids, the cache and logits_to_keep through to the base model; the adapter (not the
    zero-initialised kind) changes the tokens, so it is really on the loop's path."""
    model, tokenizer = model_and_tokenizer
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False)).eval()
    encoded = encode(tokenizer, PROMPTS)
    pad = tokenizer.pad_token_id
    expected = greedy_generate(lora, encoded, NEW, [], pad)
    decoded = decode(lora, encoded["input_ids"], encoded["attention_mask"], NEW, [], pad)
    assert torch.equal(decoded, expected)
    with lora.disable_adapter():
        assert not torch.equal(decode(lora, encoded["input_ids"], encoded["attention_mask"], NEW, [], pad), decoded)


@pytest.mark.parametrize("change", ["model_type", "repetition_penalty", "unsloth_forward"])
def test_unsupported_models_fall_back_to_generate(model_and_tokenizer, monkeypatch, caplog, change):
    """decoder="static_loop" on a model the loop does not support (another architecture; a generation config with
    a repetition penalty; a forward that Unsloth put on transformers' class): no loop is built, model.generate
    decodes, the log says why, the completions are those of the default decoder."""
    model, tokenizer = model_and_tokenizer
    if change == "model_type":
        monkeypatch.setattr(model.config, "model_type", "mistral")
    elif change == "repetition_penalty":  # as Qwen2.5-Instruct's generation config does; generate applies it greedy
        model.generation_config.repetition_penalty = 1.3
    else:  # as Unsloth does when it loads a model: its own forward on transformers' attention class, same outputs
        attention_class = type(model.model.layers[0].self_attn)
        transformers_forward = attention_class.forward

        def patched_forward(self, *args, **kwargs):
            return transformers_forward(self, *args, **kwargs)

        patched_forward.__module__ = "unsloth.models.llama"
        monkeypatch.setattr(attention_class, "forward", patched_forward)
    reference = generation.generate(model, tokenizer, PROMPTS, SamplingParams(max_new_tokens=8), 5, progress=False)
    calls = []
    original = model.generate

    def counting_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape)
        return original(**kwargs)

    def no_loop(*args, **kwargs):
        raise AssertionError("the static loop was built for an unsupported model")

    monkeypatch.setattr(model, "generate", counting_generate)
    monkeypatch.setattr(static_decode, "StaticDecoder", no_loop)
    with caplog.at_level(logging.WARNING, logger="grpo"):
        fallback = generation.generate(model, tokenizer, PROMPTS, SamplingParams(max_new_tokens=8,
                                       decoder="static_loop"), 5, progress=False)
    assert calls and fallback == reference
    said = {"model_type": "model type 'mistral'", "repetition_penalty": "sets repetition_penalty",
            "unsloth_forward": "LlamaAttention.forward comes from unsloth.models.llama"}[change]
    assert said in caplog.text


def _stub(config, generation_config=None):
    config._attn_implementation = "sdpa"
    return SimpleNamespace(config=config, generation_config=generation_config or GenerationConfig())


def test_support_is_decided_by_explicit_checks(model_and_tokenizer):
    model, _ = model_and_tokenizer
    small = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                 num_key_value_heads=2)
    assert unsupported_reason(model) is None
    assert unsupported_reason(_stub(Qwen2Config(**small))) is None
    assert "sliding" in unsupported_reason(_stub(Qwen2Config(**small, use_sliding_window=True, sliding_window=8,
                                                             max_window_layers=0)))
    assert "min_new_tokens" in unsupported_reason(_stub(Qwen2Config(**small), GenerationConfig(min_new_tokens=4)))
    flash = _stub(Qwen2Config(**small))
    flash.config._attn_implementation = "flash_attention_2"
    assert "attention implementation" in unsupported_reason(flash)
    with pytest.raises(ValueError, match="model type"):
        StaticDecoder(SimpleNamespace(config=SimpleNamespace(model_type="gemma2")), 8, 4, [], 0)


def test_sampled_token_pairs_follow_the_model_distribution(model_and_tokenizer):
    """20,000 rows of one prompt, two new tokens at temperature 0.7: the pairs (and the first tokens alone) against
    the model's exact distribution (static_decode_checks.sampled_pair_p_values). False-failure probability: ALPHA
    = 1e-4 per p-value."""
    model, tokenizer = model_and_tokenizer
    pairs, firsts = sampled_pair_p_values(model, tokenizer, rows=20_000, temperature=0.7, seed=0, sync_every=1)
    assert pairs > ALPHA and firsts > ALPHA


def _kept(probs: torch.Tensor, top_p: float, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids top-k then top-p keep, and their renormalised probabilities (an implementation independent of the
    loop's: the smallest set of most likely tokens whose mass reaches top_p)."""
    order = probs.argsort(descending=True)[: top_k or None]
    renormalised = probs[order] / probs[order].sum()
    cumulative = renormalised.cumsum(0)
    if top_p == 1:
        return order, renormalised
    assert (cumulative - top_p).abs().min() > 1e-4  # no token sits on the boundary, where rounding could decide
    size = int((cumulative < top_p).sum()) + 1
    return order[:size], renormalised[:size]


@pytest.mark.parametrize("top_p, top_k", [(0.5, 0), (1.0, 4), (0.7, 3)])
def test_filtered_sampling_never_leaves_the_kept_set(model_and_tokenizer, top_p, top_k):
    """5,000 rows, two tokens at temperature 0.9: every first token is in the top-k / nucleus set of the prompt's
    distribution, with counts matching the renormalised probabilities (chi-square, false-failure probability
    ALPHA = 1e-4), and every second token is in the set of the distribution after its first token."""
    model, tokenizer = model_and_tokenizer
    ids = encode(tokenizer, PROMPTS[3:4])["input_ids"]
    rows, temperature = 5_000, 0.9
    tokens = decode(model, ids.expand(rows, -1), torch.ones(rows, ids.shape[1], dtype=torch.long), 2, [],
                    tokenizer.pad_token_id, Sampling(True, temperature, top_p, top_k),
                    torch.Generator().manual_seed(1), sync_every=1)
    kept, probs = _kept(next_token_probs(model, ids, temperature)[0], top_p, top_k)
    vocab = model.config.vocab_size
    assert 2 <= len(kept) < vocab
    assert set(tokens[:, 0].tolist()) <= set(kept.tolist())
    counts = torch.bincount(tokens[:, 0], minlength=vocab)[kept]
    assert chi_square_p_value(counts, probs) > ALPHA
    firsts = tokens[:, 0].unique()
    after = next_token_probs(model, torch.cat([ids.expand(len(firsts), -1), firsts[:, None]], 1), temperature)
    for first, probs_after in zip(firsts.tolist(), after):
        allowed = set(_kept(probs_after, top_p, top_k)[0].tolist())
        assert set(tokens[tokens[:, 0] == first, 1].tolist()) <= allowed


def test_sampled_tokens_do_not_depend_on_sync_every(model_and_tokenizer):
    """The host check only decides when the loop stops looking; the random numbers are drawn per token."""
    model, tokenizer = model_and_tokenizer
    encoded = encode(tokenizer, PROMPTS)
    eos = stopping_eos(greedy_generate(model, encoded, NEW, [], tokenizer.pad_token_id))[0]

    def sample(seed, sync_every):
        return decode(model, encoded["input_ids"], encoded["attention_mask"], NEW, eos, tokenizer.pad_token_id,
                      Sampling(True, 1.0, 0.95), torch.Generator().manual_seed(seed), sync_every=sync_every)

    assert torch.equal(sample(3, 1), sample(3, 7))
    assert not torch.equal(sample(3, 1), sample(4, 1))


@pytest.mark.parametrize("sync_every", [1, 3])
def test_the_loop_stops_one_question_after_every_row_finished(model_and_tokenizer, sync_every):
    """The host asks "all finished?" every ``sync_every`` tokens and reads each answer at the next question
    (static_decode_checks.check_lagged_stop: the exact step it stops at, and generate's tokens)."""
    model, tokenizer = model_and_tokenizer
    check_lagged_stop(model, tokenizer, PROMPTS, NEW, sync_every)


def test_the_loop_refuses_what_it_cannot_decode(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    encoded = encode(tokenizer, PROMPTS)
    ids, mask, pad = encoded["input_ids"], encoded["attention_mask"], tokenizer.pad_token_id
    decoder = StaticDecoder(model, ids.shape[1] + 4, 4, [], pad)
    assert decoder.runner == "eager" and not decoder.fixed_shape  # the default on a CPU
    with pytest.raises(ValueError, match="runner 'cudagraph': expected one of compiled, graph, eager"):
        StaticDecoder(model, ids.shape[1] + 4, 4, [], pad, runner="cudagraph")
    with pytest.raises(ValueError, match="runner 'graph': CUDA only"):
        StaticDecoder(model, ids.shape[1] + 4, 4, [], pad, runner="graph")
    with pytest.raises(ValueError, match="left padding"):
        decoder(ids.flip(1), mask.flip(1))
    with pytest.raises(ValueError, match="max_cache_len"):
        decode(model, ids, mask, 4, [], pad, max_cache_len=ids.shape[1] + 3)
    with pytest.raises(ValueError, match="torch.Generator"):
        decode(model, ids, mask, 4, [], pad, Sampling(do_sample=True))


def test_later_calls_reuse_the_decoder_while_it_fits(model_and_tokenizer):
    """grpo eval generates chunk by chunk: a chunk whose prompts fit the kept cache reuses the decoder (no new
    shape to compile), a longer one or other settings get a new decoder."""
    model, tokenizer = model_and_tokenizer
    longest, short = PROMPTS[1:2], PROMPTS[2:3]

    def run(prompts, **changes):
        params = SamplingParams(**{"max_new_tokens": 8, "decoder": "static_loop", **changes})
        generation.generate(model, tokenizer, prompts, params, 2, progress=False)
        return model._grpo_static_decoder

    first = run(longest)
    assert run(short) is first  # fits
    assert run(short, max_new_tokens=6) is not first  # another output shape
    small = run(short)
    assert run(longest) is not small and model._grpo_static_decoder.max_cache_len == first.max_cache_len


@pytest.mark.parametrize("width", [1, 255, 256, 257, 49152, 151936])
def test_blocked_cumsum_equals_cumsum(width):
    values = torch.rand(3, width, dtype=torch.float64)
    torch.testing.assert_close(static_decode.blocked_cumsum(values, block=256), values.cumsum(dim=-1))


def test_top_k_keeps_the_tokens_tied_with_the_kth_as_transformers_does():
    from transformers import TopKLogitsWarper

    logits = torch.tensor([[5.0, 3.0, 3.0, 3.0, 1.0]]).repeat(4_000, 1)
    kept = TopKLogitsWarper(top_k=2)(None, logits[:1].clone()).isfinite()[0].nonzero().flatten().tolist()
    noise = torch.empty(logits.shape).exponential_(generator=torch.Generator().manual_seed(0))
    chosen = static_decode.next_tokens(logits, noise, Sampling(True, 1.0, 1.0, 2))
    assert kept == [0, 1, 2, 3] and sorted(set(chosen.tolist())) == kept


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(True, 0.7), Sampling(True, 1.0, top_p=0.8, top_k=20)],
                         ids=["greedy", "t0.7", "topk-topp"])
def test_recorded_logprobs_are_the_models_own_for_each_chosen_token(model_and_tokenizer, sampling):
    """``logprobs=True``: each chosen token's log-probability under softmax(logits / T) (top-k / top-p ignored, as
    TRL's training forward ignores them), 0 after a row's eos; rows that stop early and rows that run to the end."""
    model, tokenizer = model_and_tokenizer
    encoded = encode(tokenizer, PROMPTS)
    pad = tokenizer.pad_token_id
    eos, _ = stopping_eos(greedy_generate(model, encoded, NEW, [], pad))
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, eos, pad, sampling, logprobs=True)
    tokens = decoder(encoded["input_ids"], encoded["attention_mask"], torch.Generator().manual_seed(0))
    recorded = decoder.result_logprobs()
    assert recorded.shape == tokens.shape and recorded.dtype == torch.float32
    expected = teacher_forced_logprobs(model, encoded, tokens, sampling.temperature if sampling.do_sample else 1.0)
    lengths = decoder._buffers.lengths
    kept = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
    assert 0 < int(kept.sum()) < kept.numel()  # some rows stopped early
    torch.testing.assert_close(recorded[kept], expected[kept], rtol=1e-4, atol=1e-4)
    assert torch.all(recorded[~kept] == 0) and torch.all(recorded[kept] <= 0)


def test_a_decoder_without_logprobs_says_so(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    encoded = encode(tokenizer, PROMPTS)
    decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + NEW, NEW, [], tokenizer.pad_token_id)
    decoder(encoded["input_ids"], encoded["attention_mask"])
    with pytest.raises(ValueError, match="does not record log-probabilities"):
        decoder.result_logprobs()


def test_a_decoder_whose_split_kv_kernels_are_refused_decodes_through_sdpa(model_and_tokenizer, monkeypatch,
                                                                             capsys):
    """When the kernels refuse the model (on a GPU or Triton version they fail on), the decoder turns them off and
    says why, once per process; its steps then go through the grouped SDPA attention, which gives generate's tokens.
    (On a CPU the steps never reach the kernels either way: what fails here without the refusal is the flag and the
    message; the GPU tests run the kernels.)"""
    monkeypatch.setattr(static_decode, "_REPORTED_REFUSALS", set())
    model, tokenizer = model_and_tokenizer
    encoded = encode(tokenizer, PROMPTS)
    pad, length = tokenizer.pad_token_id, encoded["input_ids"].shape[1] + NEW
    monkeypatch.setattr(static_decode, "split_kv_refusal",
                        lambda model: "they failed on cuda:0: CompilationError: no such instruction")
    refused = StaticDecoder(model, length, NEW, [], pad)
    assert not refused.split_kv_attention
    assert ("split-KV decode attention off (they failed on cuda:0: CompilationError: no such instruction); SDPA "
            "decodes") in capsys.readouterr().out
    assert torch.equal(refused(encoded["input_ids"], encoded["attention_mask"]),
                       greedy_generate(model, encoded, NEW, [], pad))
    assert not StaticDecoder(model, length, NEW, [], pad).split_kv_attention
    assert capsys.readouterr().out == ""  # the same reason is not printed again
    monkeypatch.setattr(static_decode, "split_kv_refusal", lambda model: None)
    assert StaticDecoder(model, length, NEW, [], pad).split_kv_attention
    assert not StaticDecoder(model, length, NEW, [], pad, split_kv_attention=False).split_kv_attention
    assert capsys.readouterr().out == ""


def test_the_graph_runner_refuses_rotary_embeddings_that_read_positions_on_the_host(model_and_tokenizer,
                                                                                     monkeypatch):
    """transformers' dynamic and longrope rotary embeddings read max(position_ids) on the host in every forward: a
    hand-captured graph would freeze what it read at capture (or the capture would fail on the sync)."""
    model, tokenizer = model_and_tokenizer
    assert graph_unsupported_reason(model) is None
    for rope_type in HOST_POSITION_ROPE:
        monkeypatch.setattr(model.config, "rope_parameters", {"rope_type": rope_type, "factor": 2.0})
        assert rope_type in graph_unsupported_reason(model)
        with pytest.raises(ValueError, match=f"runner 'graph': rope_type '{rope_type}' reads the positions"):
            StaticDecoder(model, 16, 4, [], tokenizer.pad_token_id, runner="graph")
