"""`grpo eval`: evaluate a base model, a run directory or checkpoints; resumable, atomic outputs.

A run directory or a checkpoint brings its own saved config, so the prompt format, system prompt, rewards and
verifier settings are the ones it trained with. Samples are appended to ``samples.jsonl.partial`` as problems
finish; only a finished eval renames it to ``samples.jsonl`` and writes ``summary.json``/``summary.md`` (atomic
renames), so an interrupted eval leaves no complete-looking file, and ``--resume`` continues from the partial file
without redoing finished problems.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from grpo.eval import kvcache
from grpo.eval import metrics
from grpo.config import ConfigError, RunConfig, load_config, with_overrides
from grpo.data.splits import add_prompts, load_raw, longest_prompt_tokens
from grpo.eval.evaluate import SampleResult, Scorer, has_parsed_reference, score, summarize
from grpo.eval.fused_projections import fuse_projections
from grpo.eval.generation import SamplingParams, generate, static_cache_len
from grpo.models.loading import device_name, dtype_name, load_tokenizer, resolve_path, torch_dtype
from grpo.rundir import ADAPTER_DIR, CONFIG_FILE, write_atomic

# Rows of the markdown table (besides every pass@k and maj@k); the summary JSON also records the settings.
TABLE_KEYS = ("problems", "samples_per_problem", "accuracy", "format_compliance", "mean_completion_tokens",
              "truncation_rate", "tokens_per_second")
SAMPLES, PARTIAL, SUMMARY_JSON, SUMMARY_MD = "samples.jsonl", "samples.jsonl.partial", "summary.json", "summary.md"
SAMPLING_JSON = "sampling.json"  # the settings the samples were drawn with; --resume must use the same


@dataclass(frozen=True)
class Target:
    """What to evaluate: a base model (hub id, folder, embedded name), optionally with a LoRA adapter."""

    label: str
    base: str
    adapter: Path | None
    config: RunConfig
    step: int | None = None  # the checkpoint's training step, for plots


def resolve_target(spec: str, fallback: RunConfig) -> Target:
    path = Path(spec)
    if (path / CONFIG_FILE).is_file() and (path / ADAPTER_DIR).is_dir():  # a run directory
        config = load_config(path / CONFIG_FILE)
        return Target(path.name, config.model.name, path / ADAPTER_DIR, config)
    if (path / "adapter_config.json").is_file():  # a checkpoint or a bare adapter folder
        parent_config = path.parent / CONFIG_FILE
        config = load_config(parent_config) if parent_config.is_file() else fallback
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if parent_config.is_file():
            base = config.model.name
        if not base:
            raise ConfigError(f"{spec}: adapter_config.json names no base model")
        match = re.search(r"checkpoint-(\d+)$", path.name)
        label = f"{path.parent.name}/{path.name}" if match else path.name
        return Target(label, base, path, config, int(match.group(1)) if match else None)
    if path.exists() and not (path / "config.json").is_file() and path.suffix != ".gguf":
        raise ConfigError(f"{spec}: not a run directory, checkpoint, adapter or model folder")
    return Target(path.name or spec, spec, None, fallback)


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def expand_targets(specs: list[str], fallback: RunConfig, overrides: list[str]) -> list[Target]:
    """Targets from CLI arguments: globs expanded in natural order (checkpoint-2 before checkpoint-10), each
    target's config with the ``--set`` overrides applied."""
    paths = [match for spec in specs for match in (sorted(glob.glob(spec), key=_natural_key) or [spec])]
    targets = [resolve_target(path, fallback) for path in paths]
    return [replace(t, config=with_overrides(t.config, overrides)) for t in targets]


def default_eval_dir(adapter: Path) -> Path:
    """Where an adapter's eval goes when no --out is given: beside it in its run, ``RUN/evals/final`` for the
    run's adapter, ``RUN/evals/checkpoint-N`` for a checkpoint, so results travel with the run directory."""
    return adapter.parent / "evals" / ("final" if adapter.name == ADAPTER_DIR else adapter.name)


def output_dir(target: Target, out: Path | None, count: int) -> Path:
    """``--out`` (one sub-folder per target when there are several), else beside the adapter, else evals/."""
    if out is not None:
        return out / target.label.replace("/", "_") if count > 1 else out
    if target.adapter is not None:
        return default_eval_dir(target.adapter)
    return Path("evals") / target.label


def load_target(target: Target, fused: bool = True):
    """The model (base + adapter when there is one) and tokenizer, on the GPU when there is one, frozen (nothing
    here trains it) and, with ``fused``, its projections fused (:mod:`grpo.eval.fused_projections`: fewer kernels
    per decode step, the same outputs); a model that cannot be fused is used as it is, with the reason printed."""
    import torch
    from transformers import AutoModelForCausalLM

    base_path = resolve_path(target.base)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype(target.config.model))
    if target.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, target.adapter)
        model = model.merge_and_unload()  # same outputs, no adapter overhead per decode step
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval().requires_grad_(False)
    if fused:
        reason = fuse_projections(model)
        if reason is not None:
            print(f"[grpo] projections not fused ({reason}); decoding with the model's own layers", flush=True)
    return model, load_tokenizer(base_path)


def _read_partial(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Finished problems of an interrupted eval (a torn last line is ignored)."""
    finished: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not path.is_file():
        return finished
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        finished[record["id"]].append(record)
    return finished


def markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """One column per target, one row per metric; rates as percentages with their 95% CI."""
    keys = []
    for summary in summaries.values():
        keys += [k for k in summary if k in TABLE_KEYS or k.startswith(("pass@", "maj@"))
                 if not k.endswith("_ci95") and k not in keys]
    # shown only when they happened: each changes what the accuracy's denominator means
    keys += [k for k in ("undecided_answers", "unparseable_references")
             if any(summary.get(k) for summary in summaries.values())]
    lines = ["| metric | " + " | ".join(summaries) + " |", "|---|" + "---:|" * len(summaries)]
    for key in keys:
        cells = []
        for summary in summaries.values():
            value, ci = summary.get(key), summary.get(f"{key}_ci95")
            if value is None:
                cells.append("n/a")
            elif ci is not None:
                cells.append(f"{100 * value:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]")
            else:
                cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class EvalRequest:
    split: str = "eval"  # "eval" (held-out) or "train"
    limit: int | None = None
    params: SamplingParams = SamplingParams()
    batch_size: int | None = None
    ks: tuple[int, ...] = (1,)
    resume: bool = False
    command_started: float | None = None  # time.perf_counter() when the command began (grpo eval sets it)


def timing(load_seconds: float, decode_seconds: float, tokens: int,
           first_chunk: tuple[float, int] | None, **around: float | None) -> dict[str, Any]:
    """Where an eval's time went, with the first batch apart: compiled decoding (the static cache or the static loop
    on CUDA) compiles and records its graph there, once per process (every chunk decodes with one cache length),
    so the rate after it is the one a longer eval runs at. The "first batch" is the first chunk of problems written
    to disk: one batch of prompts x samples, or several when one problem's samples fill more than a batch, with its
    scoring and write included. ``first_batch_seconds`` is None when this session decoded nothing (a resumed,
    finished eval). ``around``: the other parts of the command's wall time, reported as they are
    (``before_load_seconds``: imports and setup from the command's start, None outside ``grpo eval`` and for its
    later targets; ``prepare_seconds``: data, prompts and batch sizing; ``summary_seconds``: metrics and their
    intervals)."""
    first_seconds, first_tokens = first_chunk if first_chunk is not None else (None, 0)
    rest_seconds = decode_seconds - first_seconds if first_seconds is not None else 0.0
    rest_tokens = tokens - first_tokens
    return {**around, "load_seconds": load_seconds, "decode_seconds": decode_seconds,
            "first_batch_seconds": first_seconds,
            "tokens_per_second_after_first_batch": rest_tokens / rest_seconds if rest_seconds > 0 and rest_tokens
            else None}


def timing_line(summary: dict[str, Any]) -> str:
    parts = [f"startup {summary['before_load_seconds']:.1f} s"] if summary.get("before_load_seconds") is not None \
        else []
    parts += [f"model load {summary['load_seconds']:.1f} s"]
    if summary.get("prepare_seconds") is not None:
        parts.append(f"data and prompts {summary['prepare_seconds']:.1f} s")
    parts.append(f"decoding {summary['decode_seconds']:.1f} s")
    if summary["first_batch_seconds"] is not None:
        parts.append(f"of which the first batch {summary['first_batch_seconds']:.1f} s (compilation, when compiled)")
    if summary["tokens_per_second_after_first_batch"] is not None:
        parts.append(f"{summary['tokens_per_second_after_first_batch']:.0f} tokens/s after it")
    if summary.get("summary_seconds") is not None:
        parts.append(f"summary {summary['summary_seconds']:.1f} s")
    return ", ".join(parts)


def rows_for(config: RunConfig, tokenizer, split: str, limit: int | None) -> list[dict[str, Any]]:
    """The rows of one split with their prompts (only that split is tokenized)."""
    train, held_out = load_raw(config.data)
    dataset = held_out if split == "eval" else train
    if dataset is None:
        raise ConfigError("data: this source has no held-out split; set data.eval_path or use --split train")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    dataset, changed, _ = add_prompts(dataset, config.data, tokenizer)
    if changed:
        action = "dropped" if config.data.prompt_overflow == "drop" else "truncated"
        print(f"[grpo] {changed} prompts over data.max_prompt_tokens={config.data.max_prompt_tokens} {action}",
              flush=True)
    return dataset.to_list()


def evaluate_target(target: Target, out_dir: Path, request: EvalRequest) -> dict[str, Any]:
    """Generate, score and summarise one target into ``out_dir``; returns the summary."""
    if (out_dir / SAMPLES).exists() and not request.resume:
        raise ConfigError(f"{out_dir / SAMPLES} exists; pass --resume to reuse it or choose another --out")
    settings = _sampling_settings(target, request)
    if request.resume:
        _check_same_sampling(out_dir, settings)
    loading = time.perf_counter()
    model, tokenizer = load_target(target)
    load_seconds = time.perf_counter() - loading
    rows = rows_for(target.config, tokenizer, request.split, request.limit)
    scorer = Scorer.from_specs(target.config.rewards, target.config.reward_context())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / SAMPLING_JSON, json.dumps(settings, indent=2))
    previous = out_dir / (PARTIAL if (out_dir / PARTIAL).exists() else SAMPLES)
    finished = _read_partial(previous) if request.resume else {}
    # Start the partial file afresh, or rewrite it with only the complete records (drops a torn last line).
    write_atomic(out_dir / PARTIAL, "".join(json.dumps(r) + "\n" for group in finished.values() for r in group))
    pending = [row for row in rows if len(finished.get(str(row["id"]), [])) < request.params.num_samples]
    batch_size = request.batch_size or _auto_batch(model, rows, tokenizer, request.params)
    # one static-cache length for every chunk (all rows, so a resumed eval keeps it too): a chunk with a longer
    # prompt than those before it would otherwise compile the decode step again in the middle of the eval
    cache_len = (static_cache_len(tokenizer, [row["prompt"] for row in rows], request.params.max_new_tokens)
                 if request.params.fixed_cache else None)
    print(f"[grpo] eval {target.label}: {len(rows)} problems ({len(rows) - len(pending)} already done), "
          f"{request.params.num_samples} sample(s) each, batch {batch_size}", flush=True)
    started, generated = time.perf_counter(), 0
    prepare_seconds = started - loading - load_seconds
    first_chunk: tuple[float, int] | None = None  # (seconds, tokens) of the first chunk: compilation happens there
    # Problems are generated in chunks and appended (with fsync) so that an interruption loses one chunk at most.
    chunk = max(1, batch_size // request.params.num_samples)
    bar = tqdm(total=len(pending), desc=f"eval {target.label}", unit="problem")
    with open(out_dir / PARTIAL, "a") as stream, bar:
        for start in range(0, len(pending), chunk):
            block = pending[start : start + chunk]
            completions = generate(model, tokenizer, [row["prompt"] for row in block], request.params, batch_size,
                                   progress=False, cache_len=cache_len)
            results: list[SampleResult] = score(block, completions, scorer)
            generated += sum(r.num_tokens for r in results)
            stream.write("".join(json.dumps(r.to_json()) + "\n" for r in results))
            stream.flush()
            os.fsync(stream.fileno())
            bar.update(len(block))
            bar.set_postfix(tok_s=f"{generated / (time.perf_counter() - started):.0f}")
            if first_chunk is None:
                first_chunk = (time.perf_counter() - started, generated)
    seconds = time.perf_counter() - started
    summarizing = time.perf_counter()
    wanted = {str(row["id"]) for row in rows}
    records = [record for group in _read_partial(out_dir / PARTIAL).values() for record in group
               if record["id"] in wanted]
    greedy = not request.params.do_sample
    summary = summarize(records, scorer.format_names, request.ks, greedy)
    summary |= {"target": target.label, "base": target.base, "adapter": str(target.adapter) if target.adapter else None,
                "split": request.split, "max_new_tokens": request.params.max_new_tokens,
                "temperature": request.params.temperature if not greedy else 0.0,
                "top_p": request.params.top_p, "seed": request.params.seed, "batch_size": batch_size,
                "generated_tokens_this_session": generated,
                "tokens_per_second": generated / seconds if seconds > 0 and generated else None}
    summary |= timing(load_seconds, seconds, generated, first_chunk,
                      before_load_seconds=None if request.command_started is None else loading - request.command_started,
                      prepare_seconds=prepare_seconds, summary_seconds=time.perf_counter() - summarizing)
    print(f"[grpo] eval {target.label}: {timing_line(summary)}", flush=True)
    os.replace(out_dir / PARTIAL, out_dir / SAMPLES)
    write_atomic(out_dir / SUMMARY_JSON, json.dumps(summary, indent=2))
    write_atomic(out_dir / SUMMARY_MD, markdown({target.label: summary}) + "\n")
    return summary


def _sampling_settings(target: Target, request: EvalRequest) -> dict[str, Any]:
    """What decides the samples' distribution (the number of samples may grow on resume: more of the same)."""
    params = request.params
    return {"target": target.label, "adapter": str(target.adapter) if target.adapter else None,
            "split": request.split, "max_new_tokens": params.max_new_tokens, "do_sample": params.do_sample,
            "temperature": params.temperature if params.do_sample else 0.0,
            "top_p": params.top_p if params.do_sample else 1.0, "seed": params.seed}


def _check_same_sampling(out_dir: Path, settings: dict[str, Any]) -> None:
    """Samples drawn with other settings must not be mixed into one file under one summary."""
    stored_file = out_dir / SAMPLING_JSON
    if not stored_file.is_file():
        return
    stored = json.loads(stored_file.read_text())
    changed = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in settings.items()
               if stored.get(key) != value]
    if changed:
        raise ConfigError(f"--resume: the samples in {out_dir} were drawn with other settings ({'; '.join(changed)}); "
                          "resume with the same settings or choose another --out")


def _auto_batch(model, rows, tokenizer, params: SamplingParams) -> int:
    device, dtype = device_name(model), dtype_name(model)
    tokens = longest_prompt_tokens(tokenizer, [row["prompt"] for row in rows]) + params.max_new_tokens
    per_token = kvcache.bytes_per_token(model.config, dtype)
    free = kvcache.free_memory_bytes(device)
    if tokens * per_token > free:
        raise ConfigError(f"not enough memory for one sequence's KV cache ({kvcache.human(tokens * per_token)} "
                          f"needed, {kvcache.human(free)} free); lower --max-new-tokens")
    batch = kvcache.auto_batch_size(model.config, tokens, dtype, device)
    print(f"[grpo] KV cache: {kvcache.human(tokens * per_token)} per sequence of {tokens} tokens; batch {batch} "
          f"needs {kvcache.human(batch * tokens * per_token)} (free: {kvcache.human(free)})", flush=True)
    return batch


def compare(dir_a: Path, dir_b: Path) -> dict[str, Any]:
    """Paired difference in per-problem pass@1 (B - A) over the problems both evals share."""
    def per_problem(folder: Path) -> dict[str, float]:
        # An eval folder, or a run directory / checkpoint whose default eval folder holds the samples.
        adapter = folder / ADAPTER_DIR if (folder / ADAPTER_DIR).is_dir() else folder
        samples = folder / SAMPLES if (folder / SAMPLES).is_file() else default_eval_dir(adapter) / SAMPLES
        grouped = _read_partial(samples)
        if not grouped:
            raise ConfigError(f"{folder}: no {SAMPLES} here or in {samples.parent} (run grpo eval first)")
        return {pid: sum(r["correct"] is True for r in rs) / len(rs) for pid, rs in grouped.items()
                if all(has_parsed_reference(r) for r in rs)}

    a, b = per_problem(dir_a), per_problem(dir_b)
    shared = sorted(a.keys() & b.keys())
    if not shared:
        raise ConfigError(f"{dir_a} and {dir_b} share no problem ids")
    result = metrics.paired_difference([a[p] for p in shared], [b[p] for p in shared])
    return {"a": str(dir_a), "b": str(dir_b), "pass@1_a": sum(a[p] for p in shared) / len(shared),
            "pass@1_b": sum(b[p] for p in shared) / len(shared), **result}


def compare_table(result: dict[str, Any]) -> str:
    """The comparison as a reader scans it: one aligned row per side, then the difference with its interval."""
    width = max(len(result["a"]), len(result["b"]))
    low, high = (100 * bound for bound in result["ci95"])
    return "\n".join([
        f"   {'eval':<{width}}  pass@1",
        f"A  {result['a']:<{width}}  {100 * result['pass@1_a']:5.1f}%",
        f"B  {result['b']:<{width}}  {100 * result['pass@1_b']:5.1f}%",
        f"B - A: {100 * result['difference']:+.1f} pp, 95% CI [{low:+.1f}, {high:+.1f}] pp over "
        f"{result['problems']} shared problems",
    ])
