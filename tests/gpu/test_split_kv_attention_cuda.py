"""grpo.eval.split_kv_attention's kernels on CUDA (marked `gpu`): against SDPA over repeated key/value heads in
float32, for bfloat16, float16 and float32 inputs (tests/grpo/eval/split_kv_cases.py), and compiled inside a
function with fullgraph (how the static loop's step calls them). The compiled loop through them is checked against
``generate`` in tests/gpu/test_static_decode_cuda.py and test_grouped_attention_cuda.py.
Run on the device: `python3 -m pytest -m gpu tests/gpu -q`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from grpo.eval import split_kv_attention
from grpo.eval.grouped_attention import split_kv_decode_attention
from tests.grpo.eval.split_kv_cases import errors, padding_mask

pytestmark = pytest.mark.gpu
TOLERANCE = split_kv_attention.PROBE_TOLERANCE  # what a decoder's own check of the kernels accepts


@pytest.mark.parametrize("max_splits", [None, 1], ids=["shipped-slices", "one-slice"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_kernels_equal_sdpa_over_repeated_heads(dtype, max_splits):
    for result in errors("cuda", dtype, max_splits):
        assert result["supported"] and result["shape_ok"], result
        assert result["max_error"] < TOLERANCE[dtype], result


@pytest.mark.parametrize("batch", [64, 8], ids=["one-slice", "split"])
@pytest.mark.parametrize("heads,kv_heads", [(9, 3), (14, 2)], ids=["smollm2-135m", "qwen2.5-0.5b"])
def test_compiled_attention_function_takes_the_kernels(heads, kv_heads, batch, monkeypatch):
    """Batch 64 fills the GPU (one slice, one kernel); batch 8 splits the cache (both kernels)."""
    torch.manual_seed(0)
    slots, head_dim = 356, 64
    assert (batch * kv_heads >= split_kv_attention.ONE_SLICE_FROM) == (batch == 64)
    query = torch.randn(batch, heads, 1, head_dim, device="cuda", dtype=torch.bfloat16)
    key, value = (torch.randn(batch, kv_heads, slots, head_dim, device="cuda", dtype=torch.bfloat16)
                  for _ in range(2))
    mask = padding_mask(batch, slots, "cuda")
    assert split_kv_attention.supports(query, key, value, mask)
    calls = []

    def counted(*args):
        calls.append(1)
        return kernels(*args)

    kernels = split_kv_attention.decode_attention
    monkeypatch.setattr(split_kv_attention, "decode_attention", counted)  # traced through: counts at trace time
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    compiled = torch.compile(lambda q, k, v, m: split_kv_decode_attention(module, q, k, v, m,
                                                                          scaling=head_dim ** -0.5)[0],
                             fullgraph=True)
    got = compiled(query, key, value, mask)
    assert calls  # the kernels, not SDPA's fallback, computed it
    torch.testing.assert_close(got.float(), split_kv_attention.reference_attention(query, key, value, mask, head_dim ** -0.5),
                               rtol=2e-2, atol=2e-2)


def test_the_probe_accepts_the_kernels_on_this_gpu(tiny_model_dir):
    """The once-per-process check every CUDA decoder makes (grpo.eval.split_kv_attention.unusable_reason) passes
    here: for the tiny test model (float32, 8-dimensional heads) and SmolLM2's heads in bfloat16."""
    from grpo.eval.grouped_attention import split_kv_refusal
    from tests.grpo.eval.static_decode_checks import sharpened_model

    model, _ = sharpened_model(tiny_model_dir, "cuda")
    assert split_kv_refusal(model) is None
    assert split_kv_attention.unusable_reason(torch.device("cuda"), torch.bfloat16, 64, 3) is None
