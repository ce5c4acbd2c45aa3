"""Batched, KV-cached generation from chat prompts, with left padding and a progress bar showing tokens/s."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from grpo.data.splits import longest_prompt_tokens
from grpo.eval import static_decode

logger = logging.getLogger("grpo")
DECODERS = ("generate", "static_loop")
# The static loop's runner for evaluations on CUDA: ``graph``, not the loop's own default ``compiled``. An evaluation
# is too short to repay compiling: on an H200 the compiled step is 1.9 ms at batch 256 against the graph's 3.9, but
# compiling it takes 38-49 s in a fresh process (8-10 s from inductor's cache) against the capture's 1.3 s, and the
# whole of GSM8K test decodes in about 1,500 steps (docs/benchmarks.md, "A CUDA graph without compiling").
EVAL_RUNNER = "graph"


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int  # generated tokens up to and including eos
    truncated: bool  # stopped by max_new_tokens rather than eos


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1
    seed: int = 0
    cache_implementation: str | None = None  # None: dynamic KV cache; "static": fixed-size cache (compilable)
    # "generate": model.generate; "static_loop": grpo.eval.static_decode (always a static cache, a CUDA graph on CUDA),
    # or model.generate where that loop does not support the model (logged)
    decoder: str = "generate"
    loop_runner: str | None = None  # static_loop: how its step runs (static_decode.RUNNERS); None: EVAL_RUNNER

    @property
    def fixed_cache(self) -> bool:
        """Decoding runs over a cache of one length for every batch (static cache or static loop): a new length is
        a new compiled shape, so callers size it once (:func:`static_cache_len`)."""
        return self.cache_implementation == "static" or self.decoder == "static_loop"


def _split_completions(ids: torch.Tensor, eos_ids: set[int], tokenizer) -> list[Completion]:
    results = []
    for row in ids.tolist():
        end = next((i for i, token in enumerate(row) if token in eos_ids), None)
        kept = row if end is None else row[: end + 1]
        text = tokenizer.decode(kept, skip_special_tokens=True)
        results.append(Completion(text=text, num_tokens=len(kept), truncated=end is None))
    return results


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _filler_rows(batch: list, batch_size: int, fixed_shape: bool) -> list:
    """Copies of the last prompt that bring a short last batch up to ``batch_size`` when decoding is compiled or
    graph-captured for the batch's shape.

    Why: with ``cache_implementation="static"`` transformers compiles the decoding step for the batch's shape, and a
    smaller last batch compiles it again (about 90 s on an H100 for the last 36 of 2,084 problems); the compiled
    static loop would likewise compile and record its graph again (the ``graph`` runner would capture again, and
    give up the cache and buffers of the full batch). Decoding the spare rows costs a fraction of that;
    their outputs are dropped. The dynamic cache and the eager loop compile nothing: no filler.
    """
    if not fixed_shape or len(batch) >= batch_size:
        return []
    return [batch[-1]] * (batch_size - len(batch))


def _static_loop(model, tokenizer, params: SamplingParams, eos_ids: set[int], cache_len: int):
    """The static decode loop for this call (kept on the model for later calls that fit it), or None when
    ``params`` asks for ``model.generate`` or the loop does not support the model (then said in the log, and
    ``model.generate`` decodes)."""
    if params.decoder not in DECODERS:
        raise ValueError(f"decoder {params.decoder!r}: expected one of {', '.join(DECODERS)}")
    if params.decoder != "static_loop":
        return None
    reason = static_decode.unsupported_reason(model)
    if reason is not None:
        logger.warning("decoder static_loop: %s; decoding with model.generate instead", reason)
        return None
    sampling = static_decode.Sampling(params.do_sample, params.temperature, params.top_p)
    return static_decode.kept_decoder(model, cache_len, params.max_new_tokens, eos_ids, tokenizer.pad_token_id,
                                      sampling, params.loop_runner or _eval_runner(model))


def _eval_runner(model) -> str:
    """:data:`EVAL_RUNNER` on CUDA, unless it cannot capture the model (then ``compiled``, said in the log)."""
    if next(model.parameters()).device.type != "cuda":
        return "eager"
    reason = static_decode.graph_unsupported_reason(model)
    if reason is None:
        return EVAL_RUNNER
    logger.warning("decoder static_loop: no hand-captured CUDA graph (%s); compiling the step instead", reason)
    return "compiled"


def static_cache_len(tokenizer, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> int:
    """One static-cache length for every batch: the longest prompt plus ``max_new_tokens``.

    Why: sized per batch (transformers' default), the cache grows whenever a batch has a longer prompt than any
    before it, and each new size recompiles the decode step, as the short last batch did before it was padded.
    """
    return longest_prompt_tokens(tokenizer, prompts, sample=len(prompts)) + max_new_tokens


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[list[dict[str, str]]], params: SamplingParams, batch_size: int,
             description: str = "generating", progress: bool = True,
             cache_len: int | None = None) -> list[list[Completion]]:
    """``params.num_samples`` completions per prompt, in prompt order. Greedy when ``do_sample`` is False.

    ``cache_len``: the static cache's length (static cache or static loop) for every batch; default: the longest
    of these prompts plus ``max_new_tokens``. A caller that splits one evaluation into several calls gives the
    length for all of them (:func:`static_cache_len` over every prompt), so no later call compiles a new shape.
    """
    was_training = model.training
    model.eval()
    eos_ids = _eos_ids(model, tokenizer)
    device = next(model.parameters()).device
    expanded = [prompt for prompt in prompts for _ in range(params.num_samples)]
    results: list[Completion] = []
    generated_tokens, started = 0, time.perf_counter()
    bar = tqdm(total=len(expanded), desc=description, unit="completion", disable=not progress, leave=False)
    options: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": params.do_sample,
                               "use_cache": True, "pad_token_id": tokenizer.pad_token_id,
                               "eos_token_id": sorted(eos_ids)}
    if params.do_sample:
        options |= {"temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
    else:
        options |= {"temperature": None, "top_p": None, "top_k": None}
    if params.cache_implementation:
        options["cache_implementation"] = params.cache_implementation
    if expanded and params.fixed_cache and cache_len is None:
        cache_len = static_cache_len(tokenizer, prompts, params.max_new_tokens)
    if params.cache_implementation == "static" and expanded:
        options["max_cache_len"] = cache_len
    loop = _static_loop(model, tokenizer, params, eos_ids, cache_len) if expanded else None
    fixed_shape = loop.fixed_shape if loop is not None else params.cache_implementation == "static"
    try:
        for start in range(0, len(expanded), batch_size):
            batch = expanded[start : start + batch_size]
            generator = None
            if params.do_sample:  # a per-batch seed keeps results independent of how far a resumed run got
                torch.manual_seed(params.seed + start)  # model.generate samples from the global generator
                generator = torch.Generator(device).manual_seed(params.seed + start)  # the static loop from its own
            filler = _filler_rows(batch, batch_size, fixed_shape)
            encoded = tokenizer.apply_chat_template(batch + filler, add_generation_prompt=True, padding=True,
                                                    return_tensors="pt", return_dict=True).to(device)
            if loop is not None:
                new_tokens = loop(encoded["input_ids"], encoded["attention_mask"], generator)
            else:
                new_tokens = model.generate(**encoded, **options)[:, encoded["input_ids"].shape[1] :]
            completions = _split_completions(new_tokens, eos_ids, tokenizer)
            completions = completions[: len(batch)]
            results.extend(completions)
            generated_tokens += sum(c.num_tokens for c in completions)
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{generated_tokens / (time.perf_counter() - started):.0f}")
    finally:
        bar.close()
        model.train(was_training)
    n = params.num_samples
    return [results[i * n : (i + 1) * n] for i in range(len(prompts))]
