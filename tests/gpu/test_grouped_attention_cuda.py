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
