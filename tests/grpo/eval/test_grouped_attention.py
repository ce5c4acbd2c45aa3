"""Grouped-query decode attention (grpo.eval.grouped_attention): the same attention as transformers' SDPA path with
repeated keys and values, without the copies, switched on only around the static loop's decode steps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from grpo.eval import grouped_attention
from grpo.eval.grouped_attention import (NAME, SPLIT_KV_NAME, applies_to, decode_attention, grouped_decode_attention,
                                         split_kv_decode_attention, split_kv_refusal)
from grpo.eval.static_decode import StaticDecoder
from tests.grpo.eval.static_decode_checks import PROMPTS, encode, greedy_generate, sharpened_model


def _attention_inputs(groups: int, query_length: int, seed: int = 0):
    """Random query/key/value for 2 key/value heads, a padding mask with a different real length per row."""
    generator = torch.Generator().manual_seed(seed)
    batch, kv_heads, slots, head_dim = 3, 2, 11, 8
    query = torch.randn(batch, kv_heads * groups, query_length, head_dim, generator=generator)
    key = torch.randn(batch, kv_heads, slots, head_dim, generator=generator)
    value = torch.randn(batch, kv_heads, slots, head_dim, generator=generator)
    real = torch.tensor([11, 7, 3])
    mask = (torch.arange(slots)[None, :] < real[:, None])[:, None, None, :].expand(batch, 1, query_length, slots)
    return SimpleNamespace(num_key_value_groups=groups, is_causal=True), query, key, value, mask


@pytest.mark.parametrize("groups", [2, 3, 7])
def test_one_query_token_attends_as_sdpa_with_repeated_heads(groups):
    module, query, key, value, mask = _attention_inputs(groups, query_length=1)
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    got, weights = grouped_decode_attention(module, query, key, value, mask, scaling=0.3)
    assert weights is None and got.shape == expected.shape == (3, 1, 2 * groups, 8)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_other_calls_go_to_sdpa_unchanged(monkeypatch):
    """Several query tokens (prefill, training), and a model without grouped heads."""
    calls = []
    monkeypatch.setattr(grouped_attention, "sdpa_attention_forward",
                        lambda *args, **kwargs: calls.append(args[1].shape) or ("sdpa", None))
    module, query, key, value, mask = _attention_inputs(groups=3, query_length=4)
    assert grouped_decode_attention(module, query, key, value, mask)[0] == "sdpa"
    module, query, key, value, mask = _attention_inputs(groups=1, query_length=1)
    assert grouped_decode_attention(module, query, key, value, mask)[0] == "sdpa"
    module, query, key, value, mask = _attention_inputs(groups=3, query_length=1)
    per_head = mask.expand(3, 6, 1, 11)  # a mask per query head cannot follow the folded heads
    assert grouped_decode_attention(module, query, key, value, per_head)[0] == "sdpa"
    assert calls == [(3, 6, 4, 8), (3, 2, 1, 8), (3, 6, 1, 8)]


def test_registered_with_transformers_attention_functions():
    assert AttentionInterface()[NAME] is grouped_decode_attention


def test_decode_attention_switches_the_model_only_inside_the_block(tiny_model_dir):
    model, _ = sharpened_model(tiny_model_dir)
    assert model.config._attn_implementation == "sdpa" and applies_to(model)  # 4 query heads over 2 kv heads
    with decode_attention(model):
        assert model.config._attn_implementation == SPLIT_KV_NAME
    assert model.config._attn_implementation == "sdpa"
    with decode_attention(model, split_kv=False):
        assert model.config._attn_implementation == NAME
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), decode_attention(model):
        raise RuntimeError("a failed step")
    assert model.config._attn_implementation == "sdpa"
    with decode_attention(model, enabled=False):
        assert model.config._attn_implementation == "sdpa"
    assert split_kv_refusal(model) is None  # a CPU model's steps never reach the kernels: nothing to refuse


def test_models_without_grouped_heads_or_sdpa_keep_their_attention(tiny_model_dir):
    model, _ = sharpened_model(tiny_model_dir)
    model.config._attn_implementation = "eager"  # eager decode steps keep their eager numerics
    assert not applies_to(model)
    with decode_attention(model):
        assert model.config._attn_implementation == "eager"
    model.config._attn_implementation = "sdpa"
    model.config.num_key_value_heads = model.config.num_attention_heads
    assert not applies_to(model)
    with decode_attention(model):
        assert model.config._attn_implementation == "sdpa"


def test_static_loop_decodes_through_it_with_generate_s_tokens(tiny_model_dir, monkeypatch):
    """The loop's decode steps call the grouped attention (one query token each; the split-KV function unless
    ``split_kv_attention`` is off) and still give generate's greedy tokens, which the loop without it gives too."""
    model, tokenizer = sharpened_model(tiny_model_dir)
    encoded = encode(tokenizer, PROMPTS)
    calls = []

    def spy(name, function):
        def attention(module, query, *args, **kwargs):
            calls.append((name, query.shape[2]))
            return function(module, query, *args, **kwargs)
        return attention

    monkeypatch.setitem(AttentionInterface._global_mapping, NAME, spy(NAME, grouped_decode_attention))
    monkeypatch.setitem(AttentionInterface._global_mapping, SPLIT_KV_NAME,
                        spy(SPLIT_KV_NAME, split_kv_decode_attention))
    new_tokens = 6
    expected = greedy_generate(model, encoded, new_tokens, [], tokenizer.pad_token_id)
    steps = model.config.num_hidden_layers * (new_tokens - 1)
    for grouped, split_kv, called in ((True, True, SPLIT_KV_NAME), (True, False, NAME), (False, True, None)):
        calls.clear()
        decoder = StaticDecoder(model, encoded["input_ids"].shape[1] + new_tokens, new_tokens, [],
                                tokenizer.pad_token_id, grouped_attention=grouped, split_kv_attention=split_kv)
        assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]), expected)
        assert calls == ([(called, 1)] * steps if called else [])
    assert model.config._attn_implementation == "sdpa"
