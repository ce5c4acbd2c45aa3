"""What one decode step of the static loop costs at batch 64 on a GPU, and what would shorten it (issue 15's 1.5 ms
target; 2026-11-30, H200: 1.97 ms a step in `grpo bench kv`, which measures batches 1, 8, 64, 256 in one process).

Each variant runs in a fresh process on the random SmolLM2-135M-shaped model, greedy, 256 new tokens, prompts of the
bench's chat template, no eos (every row decodes all tokens):
  reduce-overhead   the loop (torch.compile mode reduce-overhead) over the model's own layers, batch 64 only
  after-batch-8     the same, but a batch of 8 compiles first, as in `grpo bench kv` (a second batch size makes
                    dynamo recompile the step with a dynamic batch dimension)
  max-autotune      torch.compile mode max-autotune (Triton GEMM templates, CUDA graphs)
  no-cudnn-attention  the loop with PyTorch's cuDNN attention backend switched off, so SDPA takes its
                    memory-efficient kernel (2026-12-01: cuDNN's flash kernel was 0.51 of the step's 1.63 GPU ms)
  freezing          inductor's freezing (weights become constants: only for a model that never changes, `grpo eval`)
  flex-attention    decode steps attend with torch's FlexAttention (compiled into inductor's flex-decoding Triton
                    kernel, grouped-query heads read in place, the padding mask as a score_mod) instead of SDPA
  matmul-attention  decode steps attend with plain tensor ops (folded grouped query @ keys, float32 softmax, @ values)
                    that inductor compiles and fuses itself
  fused-projections each layer's q/k/v projections as one matrix product and gate/up as another
                    (grpo.eval.fused_projections, which `grpo eval` has applied since 2026-12-01: 1.72 ms against
                    2.05 for reduce-overhead on an H200): 3 GEMMs a layer fewer
  float-mask        the padding mask built once per step as an additive float mask (transformers' eager_mask)
                    instead of a boolean one that SDPA converts in every layer
  fused-float       both of the above
  fused-sdpa-attention  fused-projections, with the decode attention through SDPA's kernels (cuDNN's flash kernel on
                    an H200) instead of grpo.eval.split_kv_attention's split-KV kernel, which every other variant
                    uses since 2026-12-01 (fifth session) where it applies: what `grpo eval` ran before it
  graph             fused-projections, with the step run eagerly and captured by hand into one CUDA graph (the
                    loop's ``graph`` runner: nothing compiled) instead of torch.compile's reduce-overhead
  split-kv:BLOCK:SLICES[:WARPS]  fused-projections with the split-KV kernel's cache blocks of BLOCK slots (power
                    of two, at least 16), at most SLICES slices per key/value head at every batch size (1: one
                    kernel, no combine) and WARPS warps per block of the first kernel, to choose them (shipped:
                    128-slot blocks, 4 warps, one slice from 128 blocks of batch x key/value heads, else up to 16)
DIAG_BATCH (default 64) sets the batch size. Prints per variant: seconds of the first call (compile and graph
record), ms per step over 256 tokens (median of 3, prefill included as in bench kv), the prefill's ms (median of 3), the host's ms per step to enqueue 64 steps
against their wall ms per step (decode steps only), and a profile of 16 steps: GPU kernels per step, GPU busy ms per step (kernel
time summed) and the kernels that take the most of it.

Usage (device, after the lite wheels): python3 scripts/diag_decode_step.py TOKENIZER_DIR [VARIANT ...]
(default: the variants not yet measured on 2026-12-01 beside the baseline: reduce-overhead, no-cudnn-attention,
freezing); each variant gets DIAG_VARIANT_TIMEOUT seconds (default 240).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from grpo.bench.decode import prompt_batch, timed

VARIANTS = ("reduce-overhead", "after-batch-8", "max-autotune", "no-cudnn-attention", "freezing", "flex-attention",
            "matmul-attention", "fused-projections", "float-mask", "fused-float", "fused-sdpa-attention", "graph")
DEFAULT_VARIANTS = ("reduce-overhead", "no-cudnn-attention", "freezing")


def _decode_only(attend):
    """An attention function for transformers that hands one-token decode steps to ``attend(query, key, value,
    keep, scaling)`` (``keep``: batch x cache slots, True where a real token is) and everything else to SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        if query.shape[2] != 1 or dropout or attention_mask is None or attention_mask.shape[1] != 1:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)
        keep = attention_mask[:, 0, 0, :]
        if keep.dtype != torch.bool:
            keep = keep == 0
        return attend(query, key, value, keep, scaling).transpose(1, 2).contiguous(), None

    return attention


def _flex_attend(query, key, value, keep, scaling):
    from torch.nn.attention.flex_attention import flex_attention

    def score_mod(score, b, h, q_idx, kv_idx):
        return torch.where(keep[b, kv_idx], score, -float("inf"))

    return flex_attention(query, key, value, score_mod=score_mod, scale=scaling, enable_gqa=True)


def _matmul_attend(query, key, value, keep, scaling):
    """Products in the cache's dtype, scores and softmax in float32 (2026-12-01: a first version multiplied in
    float32, converting the whole cache every step, 0.40 ms of its 2.75 ms)."""
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    folded = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = (folded @ key.transpose(-1, -2)).float() * (dim ** -0.5 if scaling is None else scaling)
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    output = torch.softmax(scores, dim=-1).to(value.dtype) @ value
    return output.reshape(batch, heads, 1, dim)


def _decoder(model, tokenizer, batch: int, split_kv: bool = True, runner: str | None = None):
    from grpo.eval.static_decode import StaticDecoder

    tokenizer.padding_side = "left"
    encoded = prompt_batch(tokenizer, batch, "cuda")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    decoder = StaticDecoder(model, ids.shape[1] + 256, 256, eos_ids=(), pad_id=tokenizer.pad_token_id,
                            split_kv_attention=split_kv, runner=runner)
    return decoder, ids, mask


def _enqueue_time(decoder, steps: int = 64) -> dict:
    """Host ms per step to enqueue ``steps`` steps (no sync between them) against wall ms per step until the GPU
    has run them: when the first is the smaller, the host runs ahead and the GPU is the bound."""
    import time

    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        decoder.step()
    enqueued = time.perf_counter() - start
    torch.cuda.synchronize()
    return {"host_ms_per_step": 1000 * enqueued / steps,
            "steps_only_ms_per_step": 1000 * (time.perf_counter() - start) / steps}


def _profile(decoder, steps: int = 16) -> dict:
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            decoder.step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(e.device_time for e in kernels)
    names: dict[str, float] = {}
    for event in kernels:
        names[event.name] = names.get(event.name, 0.0) + event.device_time
    top = sorted(names.items(), key=lambda item: -item[1])[:8]
    return {"kernels_per_step": len(kernels) / steps, "gpu_busy_ms_per_step": busy_us / 1000 / steps,
            "top_kernels_ms_per_step": {name[:80]: round(us / 1000 / steps, 4) for name, us in top}}


def _set_split_kv_shape(variant: str) -> None:
    """``split-kv:BLOCK:SLICES[:WARPS]``: the kernel's block, slice limit and warps for this process (read at each
    call)."""
    from grpo.eval import split_kv_attention

    try:
        block, slices, *warps = (int(part) for part in variant.split(":")[1:])
    except ValueError:
        raise SystemExit(f"{variant!r}: expected split-kv:BLOCK:SLICES[:WARPS] with integers") from None
    warps = warps or [split_kv_attention.NUM_WARPS]
    if block < 16 or block & (block - 1) or slices < 1 or len(warps) > 1 or warps[0] not in (1, 2, 4, 8):
        raise SystemExit(f"{variant!r}: BLOCK must be a power of two >= 16, SLICES >= 1, WARPS 1, 2, 4 or 8")
    split_kv_attention.BLOCK_N, split_kv_attention.MAX_SPLITS, split_kv_attention.NUM_WARPS = block, slices, warps[0]
    split_kv_attention.ONE_SLICE_FROM = 2**62  # SLICES decides at every batch size


def run_variant(variant: str, tokenizer_dir: str) -> dict:
    import torch._inductor.config as inductor_config
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.bench.train_step import materialize_shape
    from grpo.eval import static_decode

    if variant.startswith("split-kv:"):
        _set_split_kv_shape(variant)
    elif variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}, split-kv:BLOCK:SLICES[:WARPS]")
    if variant == "freezing":
        inductor_config.freezing = True
    if variant == "no-cudnn-attention":
        torch.backends.cuda.enable_cudnn_sdp(False)
    if variant in ("flex-attention", "matmul-attention"):  # replaces the grouped decode attention's function
        from transformers import AttentionInterface

        from grpo.eval import grouped_attention

        attend = _flex_attend if variant == "flex-attention" else _matmul_attend
        for name in (grouped_attention.NAME, grouped_attention.SPLIT_KV_NAME):
            AttentionInterface.register(name, _decode_only(attend))
    if variant == "max-autotune":
        static_decode._COMPILED_STEPS[False] = torch.compile(static_decode._decode_step, mode="max-autotune")
    if variant in ("float-mask", "fused-float"):  # the grouped decode attention's mask: float, built once a step
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        from grpo.eval import grouped_attention

        for name in (grouped_attention.NAME, grouped_attention.SPLIT_KV_NAME):  # (the split-KV kernel takes
            AttentionMaskInterface.register(name, eager_mask)  # boolean masks only: these steps keep SDPA's)
    folder = materialize_shape("smollm2-135m", Path(tempfile.mkdtemp()), tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to("cuda").eval()
    if variant in ("fused-projections", "fused-float", "fused-sdpa-attention", "graph") or variant.startswith("split-kv:"):
        from grpo.eval.fused_projections import fuse_projections

        reason = fuse_projections(model.requires_grad_(False))
        if reason is not None:
            raise SystemExit(f"projections not fused: {reason}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    result: dict = {"variant": variant}
    if variant == "after-batch-8":
        small, ids8, mask8 = _decoder(model, tokenizer, 8)
        result["batch8_first_call_s"] = timed(lambda: small(ids8, mask8))[0]
    batch = int(os.environ.get("DIAG_BATCH", "64"))
    result["batch"] = batch
    decoder, ids, mask = _decoder(model, tokenizer, batch, split_kv=variant != "fused-sdpa-attention",
                                  runner="graph" if variant == "graph" else None)
    result["first_call_s"] = timed(lambda: decoder(ids, mask))[0]
    times = [timed(lambda: decoder(ids, mask))[0] for _ in range(3)]
    result["ms_per_step"] = 1000 * statistics.median(times) / 256
    result["prefill_ms"] = 1000 * statistics.median(timed(lambda: decoder.prefill(ids, mask))[0] for _ in range(3))
    decoder.prefill(ids, mask)
    result.update(_enqueue_time(decoder))
    decoder.prefill(ids, mask)
    result.update(_profile(decoder))
    stats = dict(torch._dynamo.utils.counters["stats"])
    result["unique_graphs"] = stats.get("unique_graphs")
    return result


def main(tokenizer_dir: str, variants: list[str]) -> None:
    limit = int(os.environ.get("DIAG_VARIANT_TIMEOUT", "240"))
    for variant in variants or DEFAULT_VARIANTS:
        try:
            done = subprocess.run([sys.executable, __file__, "--one", variant, tokenizer_dir], capture_output=True,
                                  text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            print(json.dumps({"variant": variant, "failed": f"not finished after {limit} s"}), flush=True)
            continue
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else json.dumps({"variant": variant, "failed": done.stderr[-1500:]}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(json.dumps(run_variant(sys.argv[2], sys.argv[3])), flush=True)
    else:
        main(sys.argv[1], sys.argv[2:])
