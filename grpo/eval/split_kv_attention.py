"""One-token decode attention over a static KV cache, with the cache split across thread blocks (flash-decoding).

Why: in the static loop's decode step at batch 64 on an H200, SDPA's chosen kernel (cuDNN's flash attention) took
0.52 ms of the step's 1.72 (30 layers, about 17 us each; docs/benchmarks.md, "Fused projections"). That kernel is
built for prefill: one thread block per batch row and key/value head walks the whole cache in 128-slot tiles, for
3 query rows padded to 64, and it reads every slot of the static cache, written or not. With batch 64 and 3
key/value heads that is 192 blocks on 132 SMs, each doing a few dependent iterations: the kernel is bound by
latency, not by the bytes it reads. PyTorch's other SDPA kernels are slower there (memory-efficient: 0.72 ms),
FlexAttention's decoding kernel did not compile on torch 2.11, and attention as plain tensor products adds
kernels (both measured in docs/benchmarks.md). Nothing in the libraries this project builds on has a
decode-specialised attention for a masked static cache, so it is written here.

How: grid (batch x key/value heads, splits). Each block takes one slice of the cache for one key/value head and
computes, for the ``groups`` query heads that share it (padded to 16 rows for the tensor cores), the running
maximum, the softmax denominator and the unnormalised weighted sum of values over its slice, in float32; keys and
values of masked slots (left padding, slots not yet written) are not loaded. A second kernel combines the slices'
partial results per row (rescaled by their maxima) and writes the output where transformers expects it. A cache of
one slice needs no combining: the first kernel then normalises and writes the output itself, one launch instead of
two. A batch with at least ``ONE_SLICE_FROM`` (batch x key/value heads) blocks gets one slice: splitting pays only
while blocks are too few to fill the GPU. The
scores and softmax are float32 and the probabilities are rounded to the values' dtype before their product with
the values, as flash attention kernels do.

Used by :func:`grpo.eval.grouped_attention.split_kv_decode_attention` for one-token steps on CUDA when Triton is
importable and the shapes fit (:func:`supports`); everything else keeps SDPA. A decoder checks once per process
that the kernels run and agree with SDPA on its GPU and dtype (:func:`unusable_reason`) and otherwise decodes
through SDPA, saying why. Tested against SDPA on the GPU
(tests/gpu/test_split_kv_attention_cuda.py) and, through Triton's interpreter, on a CPU when Triton is installed
(tests/grpo/eval/test_split_kv_attention.py).
"""

from __future__ import annotations

import functools
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: torch's CPU builds do not depend on Triton
    triton = None

BLOCK_N = 128  # cache slots per inner iteration
MAX_SPLITS = 16  # slices per key/value head; a cache of up to MAX_SPLITS * BLOCK_N slots gets one block per slice
# batch x key/value heads from which a cache is not split: about as many blocks as an H100 or H200 has SMs (132).
# Measured at 192 blocks only: at batch 64 x 3 key/value heads (SmolLM2) on an H200, one slice of 128-slot blocks
# took 1.24 ms a decode step against 1.31 for up to 16 slices of 64 (docs/benchmarks.md, "One slice, and the host's
# check lagged")
ONE_SLICE_FROM = 128
MIN_ROWS = 16  # tl.dot needs at least 16 rows and 16 inner dimensions
NUM_WARPS = 4  # warps per block of the first kernel (Triton's default)
# largest difference from SDPA that :func:`unusable_reason` accepts, per dtype (tests/gpu holds the kernels to it)
PROBE_TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 2e-2}
PROBE_SLOTS = 1990  # 16 blocks of 128, the last partly filled, and not divisible by 16 (the split build's cache)


def supports(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None) -> bool:
    """Whether :func:`decode_attention` computes this call: Triton importable, tensors on a device Triton runs on
    (CUDA, or any device under Triton's interpreter), one query token, inputs of one floating dtype, heads of at most
    256 dimensions, each head's dimensions contiguous, a boolean padding mask of batch x 1 x 1 x cache slots, and
    tensors small enough for 32-bit offsets."""
    if triton is None or query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return False
    if not (query.dtype == key.dtype == value.dtype) or (query.device.type != "cuda" and not _interpreted()):
        return False
    batch, heads, query_length, head_dim = query.shape
    kv_heads = key.shape[1]
    if query_length != 1 or heads % kv_heads or not 1 <= head_dim <= 256:
        return False
    if value.shape != key.shape or key.shape[0] != batch or key.shape[3] != head_dim:
        return False
    if query.stride(-1) != 1 or key.stride(-1) != 1 or value.stride(-1) != 1:  # the kernels index dim contiguously
        return False
    if not (attention_mask is not None and attention_mask.dtype == torch.bool and attention_mask.ndim == 4
            and attention_mask.shape[0] == batch and attention_mask.shape[1] == 1 and attention_mask.shape[2] == 1
            and attention_mask.shape[3] == key.shape[2]):
        return False
    partial_results = batch * heads * MAX_SPLITS * max(MIN_ROWS, triton.next_power_of_2(head_dim))
    return partial_results < 2**31 and all(_largest_offset(tensor) < 2**31
                                           for tensor in (query, key, value, attention_mask))


@functools.cache
def unusable_reason(device: torch.device, dtype: torch.dtype, head_dim: int, groups: int) -> str | None:
    """Why the kernels cannot take one-token steps of ``groups`` query heads per key/value head of ``head_dim``
    dimensions in ``dtype`` on ``device`` (None: they can), found once per process by running them on a small random
    input against SDPA over repeated heads.

    Why: Triton compiles them for the GPU at hand when they first run. A GPU or Triton version they do not build
    for, or build wrongly for, turns them off here with its reason, before a decode step depends on them. Limits:
    torch.compile builds its own copy of the kernels, so a failure only inductor's build has still stops a compiled
    step; a failure of the kernels (out of memory included) is kept as the reason for the rest of the process."""
    if triton is None:
        return "Triton is not installed"
    # Shapes that build the kernels as decode steps do: two rows of two key/value heads (Triton compiles an integer
    # argument equal to 1 as a constant), with a cache of PROBE_SLOTS slots (MAX_SPLITS slices: the combine kernel's
    # largest build) and with a cache of one partly filled block (one slice: the first kernel's build that writes
    # the output; a decode step gets it for large batches, ONE_SLICE_FROM).
    for slots in (PROBE_SLOTS, BLOCK_N - 8):
        reason = _probe_reason(device, dtype, head_dim, groups, slots)
        if reason is not None:
            return reason
    return None


def _probe_reason(device: torch.device, dtype: torch.dtype, head_dim: int, groups: int, slots: int) -> str | None:
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(2, 2 * groups, 1, head_dim, generator=generator).to(device, dtype)
    key, value = (torch.randn(2, 2, slots, head_dim, generator=generator).to(device, dtype) for _ in range(2))
    mask = torch.ones(2, 1, 1, slots, dtype=torch.bool, device=device)
    mask[1, ..., :min(150, slots // 3)] = False  # left padding (over the first slices of a split cache)
    mask[0, ..., -min(40, slots // 3):] = False  # unwritten slots at the end of the other row
    if not supports(query, key, value, mask):
        return f"they do not take {dtype} heads of {head_dim} dimensions on {device}"
    try:
        got = decode_attention(query, key, value, mask, head_dim ** -0.5)
        if device.type == "cuda":  # launches are asynchronous: a fault inside them surfaces here, not later
            torch.cuda.synchronize(device)
    except Exception as error:  # Triton's compile and launch errors share no base class; the reason names it
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"they failed on {device}: {type(error).__name__}: {first_line}"
    difference = (got.float() - reference_attention(query, key, value, mask, head_dim ** -0.5)).abs().max().item()
    if not difference <= PROBE_TOLERANCE[dtype]:  # (NaN fails too)
        return f"they differ from SDPA by {difference:.3g} on {device} in {dtype}"
    return None


def reference_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor,
                        scaling: float) -> torch.Tensor:
    """What :func:`decode_attention` computes, the plain way: SDPA in float32 over key/value heads repeated for
    their query heads, in :func:`decode_attention`'s output layout. The yardstick of :func:`unusable_reason` and of
    the kernels' tests."""
    groups = query.shape[1] // key.shape[1]
    return torch.nn.functional.scaled_dot_product_attention(
        query.float(), key.float().repeat_interleave(groups, 1), value.float().repeat_interleave(groups, 1),
        attn_mask=attention_mask, scale=scaling).transpose(1, 2)


def _largest_offset(tensor: torch.Tensor) -> int:
    """The largest element offset the kernels compute into ``tensor``: they index in 32-bit integers, which a cache of
    2**31 elements or more would overflow."""
    return sum((size - 1) * abs(stride) for size, stride in zip(tensor.shape, tensor.stride()))


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def decode_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor,
                     scaling: float) -> torch.Tensor:
    """Attention of one query token per head: ``query`` batch x heads x 1 x dim, ``key`` and ``value`` batch x
    kv_heads x slots x dim (the static cache as it is), ``attention_mask`` batch x 1 x 1 x slots, True where a real
    token is. Returns batch x 1 x heads x dim in the query's dtype (transformers' attention-output layout); head
    ``kv * groups + g`` attends key/value head ``kv``, as ``repeat_kv`` pairs them. Call only where :func:`supports`."""
    batch, heads, _, head_dim = query.shape
    kv_heads, slots = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    blocks = triton.cdiv(slots, BLOCK_N)
    splits = 1 if batch * kv_heads >= ONE_SLICE_FROM else min(blocks, MAX_SPLITS)
    split_slots = triton.cdiv(blocks, splits) * BLOCK_N
    splits = triton.cdiv(slots, split_slots)  # no empty slice
    rows = max(MIN_ROWS, triton.next_power_of_2(groups))
    width = max(MIN_ROWS, triton.next_power_of_2(head_dim))  # dimensions padded with zeros (masked loads)
    output = torch.empty(batch, 1, heads, head_dim, device=query.device, dtype=query.dtype)
    # only the ``groups`` real query rows are stored: the padded rows would multiply the bytes written and read back
    # (one slice: nothing to combine, the first kernel writes ``output`` and these two stay unwritten)
    partial = torch.empty(batch * kv_heads, splits, groups, width, device=query.device, dtype=torch.float32)
    stats = torch.empty(batch * kv_heads, splits, groups, 2, device=query.device, dtype=torch.float32)
    keep = attention_mask[:, 0, 0, :]  # bool: Triton reads it as int1
    _partial_kernel[(batch * kv_heads, splits)](
        query, key, value, keep, partial, stats, output, scaling,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2), keep.stride(0), keep.stride(1),
        output.stride(0), output.stride(2), slots, kv_heads, groups, split_slots, head_dim,
        ROWS=rows, DIM=width, BLOCK=BLOCK_N, FINAL=splits == 1, num_warps=NUM_WARPS)
    if splits > 1:
        _combine_kernel[(batch * kv_heads,)](
            partial, stats, output, splits, kv_heads, groups, head_dim, output.stride(0), output.stride(2),
            ROWS=triton.next_power_of_2(groups), DIM=width, SPLITS=triton.next_power_of_2(splits))
    return output


if triton is not None:

    @triton.jit
    def _partial_kernel(query, key, value, keep, partial, stats, output, scaling,
                        query_batch_stride, query_head_stride, key_batch_stride, key_head_stride, key_slot_stride,
                        value_batch_stride, value_head_stride, value_slot_stride, keep_batch_stride,
                        keep_slot_stride, output_batch_stride, output_head_stride, slots, kv_heads, groups,
                        split_slots, head_dim,
                        ROWS: tl.constexpr, DIM: tl.constexpr, BLOCK: tl.constexpr, FINAL: tl.constexpr):
        """One slice of one key/value head's cache for its ``groups`` query heads: the slice's running maximum and
        denominator (``stats``) and its unnormalised output (``partial``), float32; with ``FINAL`` (the only
        slice) the normalised output itself, written to ``output`` as the combine kernel writes it."""
        row = tl.program_id(0)
        split = tl.program_id(1)
        batch = row // kv_heads
        head = row % kv_heads
        group = tl.arange(0, ROWS)
        dim = tl.arange(0, DIM)
        query_heads = head * groups + group
        q = tl.load(query + batch * query_batch_stride + query_heads[:, None] * query_head_stride + dim[None, :],
                    mask=(group[:, None] < groups) & (dim[None, :] < head_dim), other=0.0)
        maximum = tl.full((ROWS,), float("-inf"), dtype=tl.float32)
        denominator = tl.zeros((ROWS,), dtype=tl.float32)
        accumulated = tl.zeros((ROWS, DIM), dtype=tl.float32)
        start = split * split_slots
        end = tl.minimum(start + split_slots, slots)
        key_base = key + batch * key_batch_stride + head * key_head_stride
        value_base = value + batch * value_batch_stride + head * value_head_stride
        for block_start in range(start, end, BLOCK):
            slot = block_start + tl.arange(0, BLOCK)
            kept = tl.load(keep + batch * keep_batch_stride + slot * keep_slot_stride, mask=slot < end, other=0) != 0
            loaded = kept[:, None] & (dim[None, :] < head_dim)
            k = tl.load(key_base + slot[:, None] * key_slot_stride + dim[None, :], mask=loaded, other=0.0)
            # float32 whatever type ``scaling`` arrives as (torch.compile passes it as a float64 constant)
            scores = (tl.dot(q, tl.trans(k), input_precision="ieee") * scaling).to(tl.float32)
            scores = tl.where(kept[None, :], scores, float("-inf"))
            new_maximum = tl.maximum(maximum, tl.max(scores, axis=1))
            shift = tl.where(new_maximum == float("-inf"), 0.0, new_maximum)  # nothing kept yet: no NaN from -inf
            weights = tl.exp(scores - shift[:, None])
            rescale = tl.exp(maximum - shift)
            v = tl.load(value_base + slot[:, None] * value_slot_stride + dim[None, :], mask=loaded, other=0.0)
            denominator = denominator * rescale + tl.sum(weights, axis=1)
            accumulated = accumulated * rescale[:, None] + tl.dot(weights.to(v.dtype), v, input_precision="ieee")
            maximum = new_maximum
        real = group < groups
        if FINAL:
            normalised = accumulated / tl.where(denominator > 0, denominator, 1.0)[:, None]
            tl.store(output + batch * output_batch_stride + query_heads[:, None] * output_head_stride + dim[None, :],
                     normalised.to(output.dtype.element_ty), mask=real[:, None] & (dim[None, :] < head_dim))
        else:
            out = (row * tl.num_programs(1) + split) * groups + group
            tl.store(partial + out[:, None] * DIM + dim[None, :], accumulated, mask=real[:, None])
            tl.store(stats + out * 2, maximum, mask=real)
            tl.store(stats + out * 2 + 1, denominator, mask=real)

    @triton.jit
    def _combine_kernel(partial, stats, output, splits, kv_heads, groups, head_dim, output_batch_stride,
                        output_head_stride,
                        ROWS: tl.constexpr, DIM: tl.constexpr, SPLITS: tl.constexpr):
        """The slices of one key/value head combined: each slice's output and denominator rescaled by
        exp(its maximum - the overall maximum), summed, divided; written to the ``groups`` query heads' places."""
        row = tl.program_id(0)
        batch = row // kv_heads
        head = row % kv_heads
        split = tl.arange(0, SPLITS)
        group = tl.arange(0, ROWS)
        dim = tl.arange(0, DIM)
        present = (split[:, None] < splits) & (group[None, :] < groups)  # SPLITS x ROWS
        where = (row * splits + split[:, None]) * groups + group[None, :]
        maxima = tl.load(stats + where * 2, mask=present, other=float("-inf"))
        denominators = tl.load(stats + where * 2 + 1, mask=present, other=0.0)
        overall = tl.max(maxima, axis=0)
        shift = tl.where(overall == float("-inf"), 0.0, overall)
        scale = tl.exp(maxima - shift[None, :])  # SPLITS x ROWS; 0 for slices with nothing kept
        total = tl.sum(scale * denominators, axis=0)
        values = tl.load(partial + where[:, :, None] * DIM + dim[None, None, :], mask=present[:, :, None], other=0.0)
        combined = tl.sum(values * scale[:, :, None], axis=0) / tl.where(total > 0, total, 1.0)[:, None]
        query_heads = head * groups + group
        tl.store(output + batch * output_batch_stride + query_heads[:, None] * output_head_stride + dim[None, :],
                 combined.to(output.dtype.element_ty), mask=(group[:, None] < groups) & (dim[None, :] < head_dim))
