"""KV-cache arithmetic: known figures, attention variants, and the cache a model really allocates."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from grpo.eval.kvcache import KVShape, Plan, bytes_per_token, rollout_bytes, shape_of

KiB, MiB = 1024, 1024**2


def llama(kv_heads: int, layers: int = 80, heads: int = 64, hidden: int = 8192) -> LlamaConfig:
    return LlamaConfig(num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       hidden_size=hidden, intermediate_size=64, vocab_size=10)


@pytest.mark.parametrize(
    ("config", "dtype", "expected"),
    [
        (llama(8), "bfloat16", 320 * KiB),  # Llama-3-70B shape with GQA: 80 x 8 x 128 x 2 x 2 bytes
        (llama(64), "bfloat16", 2.5 * MiB),  # the same without GQA (MHA)
        (llama(1), "bfloat16", 40 * KiB),  # MQA: one KV head
        (llama(8), "float32", 640 * KiB),  # dtype scales the bytes
        (llama(3, layers=30, heads=9, hidden=576), "bfloat16", 30 * 3 * 64 * 2 * 2),  # SmolLM2-135M
        # MLA (DeepSeek-V3 shape): one latent of kv_lora_rank + qk_rope_head_dim per layer
        (SimpleNamespace(num_hidden_layers=61, num_attention_heads=128, kv_lora_rank=512, qk_rope_head_dim=64,
                         hidden_size=7168), "bfloat16", 61 * 576 * 2),
    ],
)
def test_bytes_per_token(config, dtype, expected):
    assert bytes_per_token(config, dtype) == expected


def test_explicit_head_dim_wins_over_hidden_over_heads():
    config = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=64,
                         head_dim=32, intermediate_size=8, vocab_size=10)
    assert shape_of(config) == KVShape(layers=2, kv_heads=2, head_dim=32)


def test_rollout_bytes_of_a_grpo_step():
    # 8 prompts x 8 generations, 256 prompt + 256 completion tokens, SmolLM2 in bf16
    smol = llama(3, layers=30, heads=9, hidden=576)
    assert rollout_bytes(smol, 64, 256, 256) == 64 * 512 * 23040


def test_arithmetic_matches_the_cache_the_model_allocates(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch, tokens = 3, 17
    with torch.no_grad():
        output = model(input_ids=torch.randint(0, 100, (batch, tokens)), use_cache=True)
    cache = output.past_key_values
    allocated = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
                    for layer in cache.layers)
    assert allocated == batch * tokens * bytes_per_token(model.config, "float32")


def test_plan_fits_and_suggests_a_batch():
    plan = Plan(need=1000, free=450, sequences=10, tokens_per_sequence=50)
    assert not plan.fits and plan.largest_batch() == 4
    assert "10 sequences x 50 tokens" in plan.message()
