"""How long the static decode loop's first call takes to compile, with each decoder layer marked as a nested compile
region (``torch.compiler.nested_compile_region``: dynamo traces and inductor compiles one layer, then reuses it for
the others) against the loop as shipped (the whole step traced and compiled layer by layer).

Why: on an H200 a full GSM8K-test `grpo eval` spends 34 s of its 56 s compiling its first batch in a fresh process
and 10 s of its 32 s loading that compilation from inductor's cache (docs/benchmarks.md, "One slice, and the host's
check lagged"); the issue's goal is 30 s for the whole command. Dynamo's tracing of 30 identical layers and
inductor's code for each of them are the candidates.

Each row is a fresh process on the random SmolLM2-135M-shaped model (greedy, ``--tokens`` new tokens, a batch of the
bench's chat prompts), the loop compiled as `grpo eval` compiles it (``StaticDecoder``: mode reduce-overhead, which
records CUDA graphs on a GPU and compiles without them on a CPU). ``cold``: empty inductor and Triton caches;
``warm``: the caches the cold row of the same variant left. Per row: seconds of the first call (compile included),
of the second call, whether the tokens equal the uncompiled loop's, the operations dynamo captured, graph breaks.

Usage: python3 scripts/diag_compile_regions.py TOKENIZER_DIR [--device cpu|cuda] [--batch N] [--tokens N]
(cpu: float32; cuda: bfloat16, the fused projections and the split-KV attention as `grpo eval` runs them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("shipped", "nested-layers")


def _nested_layer_forward():
    """One function for every layer, marked once: regions are reused by function, so each layer's forward must be
    this same function with the layer as its first argument."""
    import torch

    @torch.compiler.nested_compile_region
    def layer_forward(layer, *args, **kwargs):
        return type(layer).forward(layer, *args, **kwargs)

    return layer_forward


def run(variant: str, tokenizer_dir: str, device: str, batch: int, tokens: int) -> dict:
    import types

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo.bench.decode import prompt_batch
    from grpo.bench.train_step import materialize_shape
    from grpo.eval.static_decode import StaticDecoder

    folder = materialize_shape("smollm2-135m", Path(tempfile.gettempdir()) / "grpo-diag-regions", tokenizer_dir)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    if device == "cuda":
        from grpo.eval.fused_projections import fuse_projections

        fuse_projections(model.requires_grad_(False))
    if variant == "nested-layers":
        shared = _nested_layer_forward()
        for layer in model.model.layers:
            layer.forward = types.MethodType(shared, layer)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    encoded = prompt_batch(tokenizer, batch, device)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]

    def decoder(compile: bool) -> StaticDecoder:
        return StaticDecoder(model, ids.shape[1] + tokens, tokens, eos_ids=(), pad_id=tokenizer.pad_token_id,
                             runner="compiled" if compile else "eager")

    def timed(call):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = call()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started, result

    compiled = decoder(True)
    first, tokens_first = timed(lambda: compiled(ids, mask))
    second, _ = timed(lambda: compiled(ids, mask))
    expected = decoder(False)(ids, mask)
    counters = torch._dynamo.utils.counters
    return {"variant": variant, "device": device, "batch": batch, "new_tokens": tokens,
            "first_call_s": round(first, 2), "second_call_s": round(second, 3),
            "tokens_equal_uncompiled": bool(torch.equal(tokens_first, expected)),
            "calls_captured": counters["stats"].get("calls_captured"),
            "unique_graphs": counters["stats"].get("unique_graphs"),
            "graph_breaks": sum(counters["graph_break"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per row")
    args = parser.parse_args()
    for variant in VARIANTS:
        caches = {"TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(), "TRITON_CACHE_DIR": tempfile.mkdtemp()}
        for cache in ("cold", "warm"):
            command = [sys.executable, __file__, "--one", variant, args.tokenizer, args.device, str(args.batch),
                       str(args.tokens)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                                      env=os.environ | caches)
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                row = json.loads(lines[-1]) if lines else {"variant": variant, "failed": done.stderr[-1500:]}
            except subprocess.TimeoutExpired:
                row = {"variant": variant, "failed": f"not finished after {args.timeout} s"}
            print(json.dumps(row | {"cache": cache}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        variant, tokenizer, device, batch, tokens = sys.argv[2:7]
        print(json.dumps(run(variant, tokenizer, device, int(batch), int(tokens))), flush=True)
    else:
        main()
