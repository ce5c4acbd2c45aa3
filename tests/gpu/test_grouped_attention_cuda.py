"""Grouped-query decode attention on CUDA (marked `gpu`): at the real models' head counts, in bf16 and compiled
(the function alone, fullgraph), the attention equals transformers' SDPA path with repeated key/value heads (the
CPU tests check it in float32 at small sizes; tests/gpu/test_static_decode_cuda.py runs the compiled loop with it).
Run on the device: `python3 -m pytest -m gpu tests/gpu -q`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from grpo.eval.grouped_attention import grouped_decode_attention

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("heads,kv_heads,head_dim", [(9, 3, 64), (14, 2, 64)], ids=["smollm2-135m", "qwen2.5-0.5b"])
def test_compiled_bf16_attention_equals_repeated_heads(heads, kv_heads, head_dim):
    torch.manual_seed(0)
    batch, slots = 64, 356
    query = torch.randn(batch, heads, 1, head_dim, device="cuda", dtype=torch.bfloat16)
    key = torch.randn(batch, kv_heads, slots, head_dim, device="cuda", dtype=torch.bfloat16)
    value = torch.randn(batch, kv_heads, slots, head_dim, device="cuda", dtype=torch.bfloat16)
    real = torch.randint(1, slots + 1, (batch,), device="cuda")
    mask = (torch.arange(slots, device="cuda")[None, :] < real[:, None])[:, None, None, :]
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=head_dim ** -0.5)
    compiled = torch.compile(lambda q, k, v, m: grouped_decode_attention(module, q, k, v, m,
                                                                         scaling=head_dim ** -0.5)[0],
                             fullgraph=True)
    got = compiled(query, key, value, mask)
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


def test_compiled_loop_with_and_without_it_gives_generate_s_greedy_tokens(tiny_model_dir):
    """The static loop compiled with the grouped attention on and off (two compiled variants of one step, dynamo
    guards on the attention setting): both give eager generate's greedy tokens, and a second batch recompiles
    neither."""
    from grpo.eval.static_decode import StaticDecoder
    from tests.grpo.eval.static_decode_checks import PROMPTS, encode, greedy_generate, sharpened_model

    torch._dynamo.reset()
    model, tokenizer = sharpened_model(tiny_model_dir, "cuda")
    encoded, other = encode(tokenizer, PROMPTS, "cuda"), encode(tokenizer, PROMPTS[::-1], "cuda")
    new, pad = 12, tokenizer.pad_token_id
    decoders = [StaticDecoder(model, encoded["input_ids"].shape[1] + new, new, [], pad, grouped_attention=grouped)
                for grouped in (True, False)]
    for decoder in decoders:
        assert torch.equal(decoder(encoded["input_ids"], encoded["attention_mask"]),
                           greedy_generate(model, encoded, new, [], pad))
    with torch._dynamo.config.patch(error_on_recompile=True):
        for decoder in decoders:
            assert torch.equal(decoder(other["input_ids"], other["attention_mask"]),
                               greedy_generate(model, other, new, [], pad))
    assert model.config._attn_implementation == "sdpa"
