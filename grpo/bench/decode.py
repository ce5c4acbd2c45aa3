"""Benchmarks behind `grpo bench`: generation with and without the KV cache at fixed lengths."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

PROMPT = [{"role": "user", "content": "What is 12 + 7? Think step by step."}]


@dataclass(frozen=True)
class KVRow:
    batch: int
    new_tokens: int
    cached_s: float
    uncached_s: float | None

    @property
    def cached_tokens_per_s(self) -> float:
        return self.batch * self.new_tokens / self.cached_s

    @property
    def ms_per_decode_step(self) -> float:
        return 1000 * self.cached_s / self.new_tokens

    @property
    def ratio(self) -> float | None:
        return self.uncached_s / self.cached_s if self.uncached_s else None


def _timed_generate(model, inputs, new_tokens: int, use_cache: bool, cache_implementation: str | None) -> float:
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "use_cache": use_cache,
               "temperature": None, "top_p": None, "top_k": None}
    if use_cache and cache_implementation:
        options["cache_implementation"] = cache_implementation
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    output = model.generate(**inputs, **options)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    generated = output.shape[1] - inputs["input_ids"].shape[1]
    if generated != new_tokens:
        raise RuntimeError(f"generated {generated} tokens, expected exactly {new_tokens}")
    return elapsed


@torch.inference_mode()
def kv_cache_table(model, tokenizer, batches: list[int], lengths: list[int], uncached: bool = True,
                   cache_implementation: str | None = None, uncached_max_tokens: int = 512) -> list[KVRow]:
    """Time cached (and uncached) greedy generation of exactly ``length`` new tokens for each batch size."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for batch in batches:
        inputs = tokenizer.apply_chat_template([PROMPT] * batch, add_generation_prompt=True, padding=True,
                                               return_tensors="pt", return_dict=True).to(device)
        _timed_generate(model, inputs, 8, True, cache_implementation)  # warm-up (and compilation for static)
        for length in lengths:
            cached = _timed_generate(model, inputs, length, True, cache_implementation)
            slow = (_timed_generate(model, inputs, length, False, None)
                    if uncached and length <= uncached_max_tokens else None)
            rows.append(KVRow(batch, length, cached, slow))
            print(format_row(rows[-1]), flush=True)
    return rows


HEADER = "| batch | new tokens | cached s | cached tok/s | ms / decode step | uncached s | uncached / cached |"


def format_row(row: KVRow) -> str:
    uncached = f"{row.uncached_s:.2f}" if row.uncached_s else "-"
    ratio = f"{row.ratio:.1f}x" if row.ratio else "-"
    return (f"| {row.batch} | {row.new_tokens} | {row.cached_s:.2f} | {row.cached_tokens_per_s:.0f} | "
            f"{row.ms_per_decode_step:.2f} | {uncached} | {ratio} |")


def markdown(rows: list[KVRow]) -> str:
    return "\n".join([HEADER, "|---:|---:|---:|---:|---:|---:|---:|"] + [format_row(r) for r in rows])
