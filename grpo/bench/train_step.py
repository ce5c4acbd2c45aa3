"""`grpo bench train`: seconds per GRPO step and rollout tokens/s per backend x rollout setting, on a fixed workload.

Workload: 8 prompts x 8 generations (``--generations``), completions forced to exactly 256 tokens
(``--completion-tokens``; ``min_new_tokens``), LoRA r=16 on all projections, bf16 (or 4-bit base weights). The
update runs 8 completions per forward/backward (transformers' default per-device batch), unless a case asks for
another micro-batch (``mbN``: same completions, same loss, fewer and larger passes). Models are random weights of
the real architectures: timing does not depend on the values. Each case runs in its own process, because Unsloth
patches transformers and TRL globally.

Rows: ``trl-baseline`` is plain TRL + PEFT with their defaults (model passed by path, ``peft_config``); ``hf`` and
``unsloth`` are this project's backends with a rollout setting (``dynamic`` KV cache, ``static`` cache with
transformers' compilation, ``loop``: the static decode loop of ``train.rollout_decoder: static_loop``, hf only, or
``continuous``: transformers' continuous batching through TRL's ``use_transformers_continuous_batching``, hf only).
The loop and continuous batching do not implement ``min_new_tokens``, so their rows drop that setting: they still
decode every step to the full length unless every completion of the batch has ended, which a random model (eos
about one token in 50,000) practically never does, so the decode work per step is the same. Times per step are
medians after the warm-up step; a backend that changes the number of completions per step (Unsloth does) is
normalised to 64 completions.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from grpo.bench.phases import install as install_phase_timers
from grpo.bench.phases import median_phases
from grpo.train.step_phases import compilation_counters

PROMPTS, GENERATIONS, COMPLETION_TOKENS = 8, 8, 256
SHAPES = {
    "smollm2-135m": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                     "max_position_embeddings": 8192, "tie_word_embeddings": True},
    "qwen2.5-0.5b": {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                     "max_position_embeddings": 32768, "tie_word_embeddings": True},
    "qwen2.5-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                     "max_position_embeddings": 32768, "tie_word_embeddings": True},
}
RESULT_PREFIX = "BENCH_RESULT "
ROLLOUTS = ("dynamic", "static", "loop", "continuous")
# Settings a case can change beyond its rollout (project backends only), each with what it sets.
CASE_SETTINGS = {
    "nogc": "gradient checkpointing off (TRL's GRPOConfig turns it on by default)",
    "liger": "use_liger_kernel: Liger's RMSNorm / SwiGLU / RoPE kernels (needs liger-kernel; TRL 1.15 computes the "
             "loss through its own chunked LM head either way and has no use_liger_loss)",
    "compile": "torch_compile: transformers compiles the policy's forward",
    "merged": "loop rollouts through a copy with the LoRA adapter merged (train.rollout_merged_lora)",
    "repeatkv": "loop decode steps with transformers' repeated key/value heads (the grouped-query attention read in "
                "place off; grpo.eval.grouped_attention)",
    "graph": "loop decode steps run eagerly and captured by hand into one CUDA graph (the loop's graph runner) "
             "instead of compiled by torch.compile",
    "offpolicy": "loop rollouts with train.rollout_off_policy_correction (the loop records log-probabilities; one "
                 "forward without gradients per step; grpo.train.off_policy)",
}
WORKLOAD = ("shape", "generations", "completion_tokens")
# Rollouts that do not implement min_new_tokens: they decode to the full length anyway on random weights (module doc).
UNFORCED_ROLLOUTS = ("loop", "continuous")
CPU_PAGED_CACHE_SHARE = 0.02  # of free memory, for continuous batching's paged KV cache on a CPU (the tests)


@dataclass(frozen=True)
class Case:
    shape: str
    backend: str  # trl-baseline | hf | unsloth
    rollout: str = "dynamic"  # dynamic | static | loop
    load_in_4bit: bool = False
    steps: int = 3  # the first is warm-up
    prompts: int = PROMPTS
    generations: int = GENERATIONS
    completion_tokens: int = COMPLETION_TOKENS
    micro_batch: int = 0  # completions per forward/backward of the update; 0: ``prompts`` (8, the default)
    settings: tuple[str, ...] = ()  # names from CASE_SETTINGS

    @property
    def label(self) -> str:
        workload = "" if (self.generations, self.completion_tokens) == (GENERATIONS, COMPLETION_TOKENS) else \
            f" {self.generations}x{self.completion_tokens}"
        return (f"{self.shape} {self.backend} {self.rollout}{' 4-bit' if self.load_in_4bit else ''}"
                f"{f' mb{self.micro_batch}' if self.micro_batch else ''}{''.join(f' {name}' for name in self.settings)}"
                f"{workload}")

    @property
    def completions(self) -> int:
        return self.prompts * self.generations

    @property
    def per_device_batch(self) -> int:
        return self.micro_batch or self.prompts


def parse_case(text: str, steps: int, generations: int = GENERATIONS,
               completion_tokens: int = COMPLETION_TOKENS) -> Case:
    """``SHAPE:BACKEND[:ROLLOUT][:4bit][:mbN][:SETTING...]`` -> Case (``mbN``: N completions per forward/backward of
    the update; SETTING: names of :data:`CASE_SETTINGS`)."""
    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in SHAPES or parts[1] not in ("trl-baseline", "hf", "unsloth"):
        raise ValueError(f"case {text!r}: expected SHAPE:BACKEND[:ROLLOUT][:4bit][:mbN][:SETTING] with SHAPE in "
                         f"{', '.join(SHAPES)} and BACKEND in trl-baseline, hf, unsloth")
    given = parts[2:]
    unknown = [p for p in given if p not in (*ROLLOUTS, "4bit", *CASE_SETTINGS) and not _is_micro_batch(p)]
    if unknown:
        raise ValueError(f"case {text!r}: unknown setting {unknown[0]!r} (rollouts: {', '.join(ROLLOUTS)}; 4bit; "
                         f"mbN; settings: {', '.join(CASE_SETTINGS)})")
    rollout = next((p for p in given if p in ROLLOUTS), "dynamic")
    if rollout in ("loop", "continuous") and parts[1] != "hf":
        raise ValueError(f"case {text!r}: the {rollout} rollout runs with the hf backend only")
    micro_batch = next((int(p[2:]) for p in given if _is_micro_batch(p)), 0)
    chosen = tuple(name for name in CASE_SETTINGS if name in given)
    case = Case(parts[0], parts[1], rollout, load_in_4bit="4bit" in given, steps=steps, generations=generations,
                completion_tokens=completion_tokens, micro_batch=micro_batch, settings=chosen)
    if (micro_batch or chosen) and parts[1] == "trl-baseline":
        raise ValueError(f"case {text!r}: mbN and other settings need a project backend (the baseline keeps TRL's "
                         "defaults)")
    for needs_loop in ("merged", "repeatkv", "offpolicy"):
        if needs_loop in chosen and rollout != "loop":
            raise ValueError(f"case {text!r}: {needs_loop} needs the loop rollout")
    if micro_batch and case.completions % micro_batch:
        raise ValueError(f"case {text!r}: mbN needs N dividing the {case.completions} completions of a step")
    return case


def parse_cases(texts: list[str], steps: int, generations: list[int], completion_tokens: list[int]) -> list[Case]:
    """Every case at every workload (generations x completion tokens), grouped by workload so that each group's
    baseline row sits beside the rows it is compared with."""
    return [parse_case(text, steps, count, tokens) for count in generations for tokens in completion_tokens
            for text in texts]


def _is_micro_batch(part: str) -> bool:
    return part.startswith("mb") and part[2:].isdigit() and int(part[2:]) > 0


def materialize_shape(shape: str, folder: Path, tokenizer_path: str) -> Path:
    """Save a randomly initialised model of the named architecture (bf16) with a chat tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target = folder / shape
    if (target / "config.json").is_file():
        return target
    settings = dict(SHAPES[shape])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _dataset(case: Case):
    from datasets import Dataset

    from grpo.data.synthetic import generate_splits

    problems, _ = generate_splits(case.prompts * case.steps * 4, 1, min_digits=2, max_digits=3, num_operations=2,
                                  operations=["+", "-", "*"], word_problems=0.0, seed=0)
    return Dataset.from_list([{"prompt": [{"role": "user", "content": p.question}], "answer": str(p.answer)}
                              for p in problems])


def _reward(completions, **kwargs):
    """Cheap reward with variance (so advantages and the loss are not all zero)."""
    return [float(len(str(c)) % 7) for c in completions]


def _args(case: Case, output_dir: str, defaults_only: bool):
    from trl import GRPOConfig

    import torch

    workload = dict(output_dir=output_dir, per_device_train_batch_size=case.per_device_batch,
                    gradient_accumulation_steps=case.completions // case.per_device_batch,
                    num_generations=case.generations,
                    max_completion_length=case.completion_tokens, max_steps=case.steps,
                    generation_kwargs=(None if case.rollout in UNFORCED_ROLLOUTS
                                       else {"min_new_tokens": case.completion_tokens}),
                    logging_steps=1,
                    save_strategy="no", report_to="none", bf16=torch.cuda.is_available(), seed=0)
    if defaults_only:
        return GRPOConfig(**workload)
    continuous = {}
    if case.rollout == "continuous":
        continuous["use_transformers_continuous_batching"] = True
        if not torch.cuda.is_available():  # TRL sizes the paged KV cache at half the free memory, which off a GPU
            # is half the machine's RAM (12 GB of a 24 GiB CI machine for the tests' tiny model): 2% is plenty there
            continuous["transformers_continuous_batching_config"] = {"max_memory_percent": CPU_PAGED_CACHE_SHARE}
    return GRPOConfig(**workload, learning_rate=1e-5, beta=0.0,
                      cache_implementation="static" if case.rollout == "static" else None, **continuous,
                      gradient_checkpointing="nogc" not in case.settings, use_liger_kernel="liger" in case.settings,
                      torch_compile="compile" in case.settings)


def run_case(case: Case, model_root: Path, tokenizer_path: str) -> dict:
    if case.backend == "unsloth":
        import unsloth  # noqa: F401  (first, before transformers and TRL)
    import torch

    folder = materialize_shape(case.shape, model_root, tokenizer_path)
    from trl import GRPOTrainer

    with tempfile.TemporaryDirectory() as output_dir:
        if case.backend == "trl-baseline":
            from peft import LoraConfig

            trainer = GRPOTrainer(model=str(folder), reward_funcs=_reward, args=_args(case, output_dir, True),
                                  train_dataset=_dataset(case),
                                  peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                         task_type="CAUSAL_LM"))
        else:
            from grpo.config import ModelSection
            from grpo.models.loading import load

            loaded = load(ModelSection(name=str(folder), backend=case.backend, dtype="bfloat16",
                                       load_in_4bit=case.load_in_4bit, max_seq_length=256 + case.completion_tokens,
                                       gradient_checkpointing=(case.backend == "unsloth"
                                                               and "nogc" not in case.settings)))
            trainer_class = GRPOTrainer
            if "offpolicy" in case.settings:
                from grpo.train.off_policy import with_off_policy_correction

                trainer_class = with_off_policy_correction(GRPOTrainer)
            trainer = trainer_class(model=loaded.model, reward_funcs=_reward, args=_args(case, output_dir, False),
                                    train_dataset=_dataset(case), processing_class=loaded.tokenizer)
        if case.backend != "trl-baseline":
            from grpo.eval.generation import static_cache_len
            from grpo.train.rollout import enable_compiled_decoding, install_static_loop, static_loop_unsupported

            enable_compiled_decoding(trainer, "static" if case.rollout == "static" else None)
            cache_len = static_cache_len(trainer.processing_class, trainer.train_dataset["prompt"],
                                         case.completion_tokens)
            if case.rollout == "loop" and not install_static_loop(trainer, cache_len,
                                                                  runner="graph" if "graph" in case.settings
                                                                  else None,
                                                                  merge_lora="merged" in case.settings,
                                                                  grouped_attention="repeatkv" not in case.settings,
                                                                  logprobs="offpolicy" in case.settings):
                raise RuntimeError(f"{case.label}: the static loop cannot run here: {static_loop_unsupported(trainer)}")
        phases = install_phase_timers(trainer)
        on_gpu = torch.cuda.is_available()
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        peak = torch.cuda.max_memory_allocated() if on_gpu else 0
        completions_per_step = trainer.args.generation_batch_size
        lengths = [entry["completions/mean_length"] for entry in trainer.state.log_history
                   if "completions/mean_length" in entry]
    medians = median_phases(phases.steps[1:] or phases.steps)
    step, gen = medians["step"], medians["generation"]
    tokens = completions_per_step * statistics.fmean(lengths[1:] or lengths)
    return {**asdict(case), "label": case.label, "seconds_per_step": step,
            "seconds_per_64_completions": step * 64 / completions_per_step,
            "generation_seconds": gen, "generation_tokens_per_s": tokens / gen, "generation_share": gen / step,
            "completions_per_step": completions_per_step, "mean_completion_tokens": statistics.fmean(lengths),
            "peak_gpu_memory_gib": peak / 2**30,
            "phase_seconds": {phase: seconds for phase, seconds in medians.items() if phase != "step"},
            "phases_measured": phases.measured,
            "compilation": compilation_counters(),
            "effective_args": {k: getattr(trainer.args, k, None) for k in (
                "per_device_train_batch_size", "gradient_accumulation_steps", "generation_batch_size", "optim",
                "cache_implementation", "gradient_checkpointing", "use_liger_kernel", "torch_compile",
                "use_transformers_continuous_batching", "transformers_continuous_batching_config")}}


def run_in_subprocess(case: Case, model_root: Path, tokenizer_path: str, timeout: int = 900) -> dict:
    command = [sys.executable, "-m", "grpo.bench.train_step", json.dumps(asdict(case)), str(model_root), tokenizer_path]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return {**asdict(case), "label": case.label, "error": f"timed out after {timeout} s"}
    for line in result.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):]) | {"process_seconds": time.perf_counter() - started}
    return {**asdict(case), "label": case.label, "error": (result.stderr or result.stdout).strip()[-1500:]}


HEADER = ("| case | s / step | s / 64 completions | rollout tok/s | generation share | peak GPU GiB | "
          "completions / step | vs baseline |")


def same_workload(row: dict, other: dict) -> bool:
    """Two rows timed the same work per step (shape, generations, completion tokens)."""
    return all(row.get(key) == other.get(key) for key in WORKLOAD)


def with_speedups(rows: list[dict]) -> list[dict]:
    """Each row with ``speedup_vs_baseline``: the trl-baseline row's seconds per 64 completions over its own, for the
    baseline of the same workload in the same run (None without one, or for a failed row)."""
    baselines = [row for row in rows if row.get("backend") == "trl-baseline" and "error" not in row]
    result = []
    for row in rows:
        baseline = next((b for b in baselines if same_workload(b, row)), None)
        speedup = (baseline["seconds_per_64_completions"] / row["seconds_per_64_completions"]
                   if baseline is not None and "error" not in row else None)
        result.append({**row, "speedup_vs_baseline": speedup})
    return result


def format_row(row: dict) -> str:
    if "error" in row:
        return f"| {row['label']} | failed: {row['error'].splitlines()[-1][:120]} | | | | | | |"
    speedup = row.get("speedup_vs_baseline")
    return (f"| {row['label']} | {row['seconds_per_step']:.2f} | {row['seconds_per_64_completions']:.2f} | "
            f"{row['generation_tokens_per_s']:.0f} | {100 * row['generation_share']:.0f}% | "
            f"{row['peak_gpu_memory_gib']:.2f} | {row['completions_per_step']} | "
            f"{'-' if speedup is None else f'{speedup:.2f}x'} |")


def markdown(rows: list[dict]) -> str:
    return "\n".join([HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|"] + [format_row(r) for r in rows])


def main(argv: list[str]) -> None:
    case = Case(**json.loads(argv[0]))
    print(RESULT_PREFIX + json.dumps(run_case(case, Path(argv[1]), argv[2]), default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
