"""Benchmarks behind `grpo bench`: generation with and without the KV cache at fixed lengths, and optionally
grpo.eval.static_decode's fixed-shape loop next to ``model.generate``."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from grpo.eval.static_decode import StaticDecoder

PROMPT = [{"role": "user", "content": "What is 12 + 7? Think step by step."}]


@dataclass(frozen=True)
class KVRow:
    batch: int
    new_tokens: int
    cached_s: float
    uncached_s: float | None
    loop_s: float | None = None  # the static decode loop, same batch and tokens
    loop_repeated_kv_s: float | None = None  # the loop with transformers' repeated key/value heads
    # Peak GPU memory torch allocated while timing cached generate / the loop (None without CUDA): everything live
    # counts, the weights and the caches kept for the batch included.
    cached_peak_gib: float | None = None
    loop_peak_gib: float | None = None

    @property
    def cached_tokens_per_s(self) -> float:
        return self.batch * self.new_tokens / self.cached_s

    @property
    def ms_per_decode_step(self) -> float:
        return 1000 * self.cached_s / self.new_tokens

    @property
    def loop_tokens_per_s(self) -> float | None:
        return self.batch * self.new_tokens / self.loop_s if self.loop_s else None

    @property
    def loop_ms_per_decode_step(self) -> float | None:
        return 1000 * self.loop_s / self.new_tokens if self.loop_s else None

    @property
    def loop_repeated_kv_ms_per_decode_step(self) -> float | None:
        return 1000 * self.loop_repeated_kv_s / self.new_tokens if self.loop_repeated_kv_s else None

    @property
    def ratio(self) -> float | None:
        return self.uncached_s / self.cached_s if self.uncached_s else None

    def to_json(self) -> dict:
        """The measured times and every figure derived from them (what ``grpo bench kv --out`` writes)."""
        derived = ("cached_tokens_per_s", "ms_per_decode_step", "loop_tokens_per_s", "loop_ms_per_decode_step",
                   "loop_repeated_kv_ms_per_decode_step", "ratio")
        return {**asdict(self), **{name: getattr(self, name) for name in derived}}


def timed(call) -> tuple[float, object]:
    """``(seconds, call())``: the wall time of ``call()`` with the GPU drained before and after (queued kernels count
    where they run, not where they were launched)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, result


def _timed(decode, new_tokens: int) -> float:
    """Seconds ``decode()`` takes (see :func:`timed`); it must return exactly ``new_tokens``."""
    elapsed, generated = timed(decode)
    if generated != new_tokens:
        raise RuntimeError(f"generated {generated} tokens, expected exactly {new_tokens}")
    return elapsed


def prompt_batch(tokenizer, batch: int, device) -> dict:
    """``batch`` copies of :data:`PROMPT` through the chat template, padded as the tokenizer pads (the loop needs
    left padding), on ``device``: the bench's decode input, shared with scripts/diag_decode_step.py."""
    return tokenizer.apply_chat_template([PROMPT] * batch, add_generation_prompt=True, padding=True,
                                         return_tensors="pt", return_dict=True).to(device)


def _with_peak(measure):
    """``(measure(), peak GiB allocated during it)``; the peak is None without CUDA."""
    if not torch.cuda.is_available():
        return measure(), None
    torch.cuda.reset_peak_memory_stats()
    result = measure()
    return result, torch.cuda.max_memory_allocated() / 2**30


def _timed_generate(model, inputs, new_tokens: int, use_cache: bool, cache_implementation: str | None) -> float:
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "use_cache": use_cache,
               "temperature": None, "top_p": None, "top_k": None}
    if use_cache and cache_implementation:
        options["cache_implementation"] = cache_implementation
    prompt = inputs["input_ids"].shape[1]
    return _timed(lambda: model.generate(**inputs, **options).shape[1] - prompt, new_tokens)


def _timed_loop(loop: StaticDecoder, inputs, new_tokens: int) -> float:
    """The static loop has no eos ids here, so like ``min_new_tokens`` it decodes exactly ``new_tokens``."""
    return _timed(lambda: loop(inputs["input_ids"], inputs["attention_mask"], max_new_tokens=new_tokens).shape[1],
                  new_tokens)


def _warm_loop(model, tokenizer, inputs, longest: int, grouped_attention: bool, split_kv: bool,
               runner: str | None) -> StaticDecoder:
    """A loop for this batch sized for the longest length, warmed up (compiled or captured on CUDA)."""
    loop = StaticDecoder(model, inputs["input_ids"].shape[1] + longest, longest, eos_ids=(),
                         pad_id=tokenizer.pad_token_id, grouped_attention=grouped_attention,
                         split_kv_attention=split_kv, runner=runner)
    _timed_loop(loop, inputs, min(8, longest))
    return loop


@torch.inference_mode()
def kv_cache_table(model, tokenizer, batches: list[int], lengths: list[int], uncached: bool = True,
                   cache_implementation: str | None = None, uncached_max_tokens: int = 512,
                   static_loop: bool = False, loop_repeated_kv: bool = False, split_kv: bool = True,
                   loop_runner: str | None = None) -> list[KVRow]:
    """Time cached (and uncached) greedy generation of exactly ``length`` new tokens for each batch size; with
    ``static_loop``, also grpo.eval.static_decode's loop (one decoder per batch size, sized for the longest length,
    so on CUDA it compiles, or is captured, once per batch size); with ``loop_repeated_kv`` as well, the loop a second time with
    the grouped-query attention read in place turned off (transformers' repeated key/value heads), the mechanism
    on and off in one run. ``split_kv``: the loop's decode attention through grpo.eval.split_kv_attention's
    kernel where it applies (off: SDPA's kernels). ``loop_runner``: how the loop's step runs
    (:data:`grpo.eval.static_decode.RUNNERS`; None: the device's default)."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for batch in batches:
        inputs = prompt_batch(tokenizer, batch, device)
        # warm-up; with the static cache at the longest length, since generate sizes its cache (a compiled shape) by
        # prompt + max_new_tokens and a shorter warm-up left the first timed row paying a recompilation
        _timed_generate(model, inputs, max(lengths) if cache_implementation == "static" else 8, True,
                        cache_implementation)
        variants = ([True, False] if loop_repeated_kv else [True]) if static_loop else []  # grouped attention on?
        loops = [_warm_loop(model, tokenizer, inputs, max(lengths), grouped, split_kv, loop_runner)
                 for grouped in variants]
        for length in lengths:
            cached, cached_peak = _with_peak(lambda: _timed_generate(model, inputs, length, True,
                                                                     cache_implementation))
            slow = (_timed_generate(model, inputs, length, False, None)
                    if uncached and length <= uncached_max_tokens else None)
            looped, loop_peak = _with_peak(lambda: [_timed_loop(loop, inputs, length) for loop in loops[:1]])
            looped += [_timed_loop(loop, inputs, length) for loop in loops[1:]]
            rows.append(KVRow(batch, length, cached, slow, *looped, cached_peak_gib=cached_peak,
                              loop_peak_gib=loop_peak if loops else None))
            print(format_row(rows[-1]), flush=True)
    return rows


HEADER = ("| batch | new tokens | cached s | cached tok/s | ms / decode step | uncached s | uncached / cached "
          "| static loop tok/s | static loop ms / step | loop, repeated K/V: ms / step | cached peak GiB "
          "| loop peak GiB |")


def format_row(row: KVRow) -> str:
    uncached = f"{row.uncached_s:.2f}" if row.uncached_s else "-"
    ratio = f"{row.ratio:.1f}x" if row.ratio else "-"
    loop = (f"{row.loop_tokens_per_s:.0f} | {row.loop_ms_per_decode_step:.2f}" if row.loop_s else "- | -")
    repeated = f"{row.loop_repeated_kv_ms_per_decode_step:.2f}" if row.loop_repeated_kv_s else "-"
    peaks = " | ".join("-" if peak is None else f"{peak:.2f}" for peak in (row.cached_peak_gib, row.loop_peak_gib))
    return (f"| {row.batch} | {row.new_tokens} | {row.cached_s:.2f} | {row.cached_tokens_per_s:.0f} | "
            f"{row.ms_per_decode_step:.2f} | {uncached} | {ratio} | {loop} | {repeated} | {peaks} |")


def markdown(rows: list[KVRow]) -> str:
    return "\n".join([HEADER, "|---:" * 12 + "|"] + [format_row(r) for r in rows])
