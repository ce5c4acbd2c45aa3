"""The JSON summary of a GPU scaling measurement (``scripts/gpu_scaling.sh``): runs of one config on 1 and N GPUs,
each read from its run directory (``metrics.jsonl``, ``grpo_args.json``, ``environment.json``).

Per run: the median step time after the warm-up steps (the first includes compilation and allocator growth), the
completion tokens the step generated (TRL's ``completions/mean_length`` is over every process's completions) and
their rate per second of step, all GPUs together, and the peak memory of each GPU from the ``gpu_memory.csv`` that
``scripts/gpu_scaling.sh`` samples with nvidia-smi (what the process holds, the CUDA context and allocator cache
included). Scaling efficiency is the N-GPU rate over N times the 1-GPU rate (1.0: perfect), whether the runs kept
the global batch (strong scaling: the ideal step time is 1/N of one GPU's) or the per-GPU batch (weak scaling: the
ideal step time is one GPU's).

    python -m grpo.bench.scaling --out scaling.json runs/scaling-1 runs/scaling-4
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from grpo import rundir

MEMORY_FILE = "gpu_memory.csv"  # written beside the run's files by scripts/gpu_scaling.sh

def completions_per_step(grpo_args: dict[str, Any]) -> float:
    """Completions generated per optimizer step, all processes: a generation of ``generation_batch_size`` serves
    ``steps_per_generation x num_iterations`` micro-batches, a step takes ``gradient_accumulation_steps``."""
    reuse = grpo_args["steps_per_generation"] * grpo_args["num_iterations"]
    return grpo_args["generation_batch_size"] * grpo_args["gradient_accumulation_steps"] / reuse


def run_summary(run_dir: Path, warmup: int = 1) -> dict[str, Any]:
    records = [json.loads(line) for line in (run_dir / rundir.METRICS_FILE).read_text().splitlines() if line]
    steps = [r for r in records if "step_time" in r and "completions/mean_length" in r]
    measured = steps[warmup:] or steps
    if not measured:
        raise ValueError(f"{run_dir}: no training step with step_time in {rundir.METRICS_FILE}")
    grpo_args = json.loads((run_dir / rundir.GRPO_ARGS_FILE).read_text())
    processes = json.loads((run_dir / rundir.ENVIRONMENT_FILE).read_text()).get("processes", 1)
    completions = completions_per_step(grpo_args)
    step_time = statistics.median(r["step_time"] for r in measured)
    tokens = statistics.median(r["completions/mean_length"] for r in measured) * completions
    return {"run": run_dir.name, "gpus": processes, "steps_measured": len(measured), "warmup_steps": warmup,
            "per_device_train_batch_size": grpo_args["per_device_train_batch_size"],
            "completions_per_step": completions, "step_time_s": step_time,
            "completion_tokens_per_step": tokens, "rollout_tokens_per_s": tokens / step_time,
            "peak_memory_mib_per_gpu": peak_memory_per_gpu(run_dir / MEMORY_FILE)}


def peak_memory_per_gpu(samples: Path) -> dict[str, int] | None:
    """``{gpu index: highest MiB used}`` from nvidia-smi's ``index, memory.used`` CSV lines; None without the file."""
    if not samples.is_file():
        return None
    peaks: dict[str, int] = {}
    for line in samples.read_text().splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            peaks[fields[0]] = max(peaks.get(fields[0], 0), int(fields[1]))
    return peaks


def summarize(run_dirs: list[Path], warmup: int = 1) -> dict[str, Any]:
    """Every run, and each multi-GPU run's scaling against the single-GPU one."""
    runs = sorted((run_summary(path, warmup) for path in run_dirs), key=lambda run: run["gpus"])
    single = next((run for run in runs if run["gpus"] == 1), None)
    scaling = []
    if single is not None:
        for run in runs:
            if run["gpus"] > 1:
                speedup = run["rollout_tokens_per_s"] / single["rollout_tokens_per_s"]
                scaling.append({"run": run["run"], "gpus": run["gpus"], "throughput_speedup": speedup,
                                "scaling_efficiency": speedup / run["gpus"],
                                "step_time_ratio": single["step_time_s"] / run["step_time_s"]})
    return {"runs": runs, "scaling": scaling}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise GPU scaling runs as JSON.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--warmup", type=int, default=1, help="steps left out of the medians (default 1)")
    parser.add_argument("--out", type=Path, help="write the JSON here as well as to stdout")
    args = parser.parse_args(argv)
    text = json.dumps(summarize(args.runs, args.warmup), indent=2)
    if args.out:
        rundir.write_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
