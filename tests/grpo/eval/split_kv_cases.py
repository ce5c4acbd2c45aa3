"""Cases for grpo.eval.split_kv_attention's kernels, compared with SDPA over repeated key/value heads in float32:
shared by the CPU test (Triton's interpreter, in a subprocess because the interpreter is chosen when the kernels are
defined) and the GPU test. ``python -m tests.grpo.eval.split_kv_cases DEVICE MAX_SPLITS DTYPE...`` prints one JSON
line per case with the largest absolute difference (MAX_SPLITS: the kernels' slice limit; 1 takes the one-kernel
path, whole caches in one slice, for every case)."""

from __future__ import annotations

import json
import sys

import torch

# batch, kv heads, query heads per kv head, cache slots, head dim: SmolLM2-135M's heads at a 300-slot cache; one
# slot; a block and one slot more; several blocks per slice (2,600 slots > 16 slices of 128); no grouping (split in
# two slices); a head size below 16 and one that is not a power of two (Triton's tensors are padded); Qwen2.5-0.5B's
# 7 query heads per kv head; a batch whose blocks fill the GPU (ONE_SLICE_FROM: one slice of two blocks, no combine
# kernel)
CASES = [(2, 3, 3, 300, 64), (1, 2, 2, 1, 16), (3, 1, 4, 129, 32), (2, 3, 3, 2600, 64), (2, 2, 1, 170, 64),
         (2, 2, 2, 190, 8), (2, 2, 2, 190, 40), (2, 2, 7, 256, 64), (43, 3, 1, 130, 16)]


def padding_mask(batch: int, slots: int, device) -> torch.Tensor:
    """batch x 1 x 1 x slots, True where a real token is: row b has b*70 slots of left padding and b*40 unwritten
    slots at the end (at least one real slot), so some rows' first or last slices keep nothing; the mask is a view
    with the strides transformers' SDPA mask has after ``expand``."""
    keep = torch.zeros(batch, slots, dtype=torch.bool, device=device)
    for row in range(batch):
        start = min(row * 70, slots - 1)
        keep[row, start:max(start + 1, slots - row * 40)] = True
    return keep[:, None, None, :].expand(batch, 1, 1, slots)


def errors(device: str, dtype: torch.dtype, max_splits: int | None = None) -> list[dict]:
    """Each case's largest difference; ``max_splits`` replaces the kernels' slice limit for these calls."""
    from grpo.eval import split_kv_attention

    shipped = split_kv_attention.MAX_SPLITS
    split_kv_attention.MAX_SPLITS = max_splits or shipped
    try:
        return [_error(split_kv_attention, device, dtype, *case) for case in CASES]
    finally:
        split_kv_attention.MAX_SPLITS = shipped


def _error(split_kv_attention, device, dtype, batch, kv_heads, groups, slots, head_dim) -> dict:
    generator = torch.Generator().manual_seed(slots)
    shape = (batch, kv_heads, slots, head_dim)
    query = torch.randn(batch, kv_heads * groups, 1, head_dim, generator=generator).to(device, dtype)
    key, value = (torch.randn(*shape, generator=generator).to(device, dtype) for _ in range(2))
    mask = padding_mask(batch, slots, device)
    supported = split_kv_attention.supports(query, key, value, mask)
    got = split_kv_attention.decode_attention(query, key, value, mask, head_dim ** -0.5) if supported else None
    expected = split_kv_attention.reference_attention(query, key, value, mask, head_dim ** -0.5)
    error = None if got is None else (got.float() - expected).abs()
    return {"case": [batch, kv_heads, groups, slots, head_dim], "dtype": str(dtype),
            "max_splits": split_kv_attention.MAX_SPLITS, "supported": supported,
            "shape_ok": got is not None and got.shape == (batch, 1, kv_heads * groups, head_dim),
            "max_error": None if error is None else error.max().item()}


if __name__ == "__main__":
    for name in sys.argv[3:]:
        for result in errors(sys.argv[1], getattr(torch, name), int(sys.argv[2])):
            print(json.dumps(result), flush=True)
