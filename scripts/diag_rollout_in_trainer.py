"""Why the static loop's rollouts through the merged LoRA copy take longer inside the GRPO bench's step than outside
it (2026-12-01, H200: 1.46 s a rollout of 64 x 256 tokens inside `grpo bench train`'s step, 0.62 s in
scripts/diag_rollout_gap.py; through the adapter layers 1.20 s inside, 1.30 s outside). Its first run found the
cause: the copy ran the policy, through TRL's patched forward (docs/benchmarks.md; fixed in grpo.train.merged_copy).

Runs each bench case (default: `smollm2-135m:hf:loop:mb64` and its `:merged` variant, 4 steps) in its own
process, with every rollout of the static loop instrumented: wall seconds (between device syncs), of which the
merged copy's refresh, the prefill and the decode steps; host seconds spent enqueuing the steps; how many CUDA
graphs torch's cudagraph trees recorded, warmed up (ran without a graph) and replayed during the rollout; the
grad / inference / autocast modes it ran under. The last rollout of each case also runs under torch.profiler: GPU
kernels per decode step, GPU busy time, the kernels and the host-side operators that take the most time.

Usage (device, after the lite wheels): python3 scripts/diag_rollout_in_trainer.py TOKENIZER_DIR [CASE ...]
Prints a JSON line per rollout (`rollout`) and per profile (`profile`); `TORCH_LOGS=+cudagraphs` adds why a graph
was recorded again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

DEFAULT_CASES = ("smollm2-135m:hf:loop:mb64", "smollm2-135m:hf:loop:mb64:merged")
STEPS = 4


def _count_cudagraph_events(events: Counter) -> None:
    """Count the cudagraph tree manager's recordings, eager warm-up runs and replays in ``events``."""
    from torch._inductor import cudagraph_trees as trees

    manager = trees.CUDAGraphTreeManager
    for name, label in (("record_function", "recorded"), ("run_eager", "warmup_runs"), ("execute_node", "replayed")):
        original = getattr(manager, name)

        def counted(self, *args, _original=original, _label=label, **kwargs):
            events[_label] += 1
            return _original(self, *args, **kwargs)

        setattr(manager, name, counted)


def _profile_summary(profiler, decode_steps: int) -> dict:
    import torch

    kernels = [e for e in profiler.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_kernel: Counter = Counter()
    for event in kernels:
        by_kernel[event.name[:90]] += event.device_time
    host = Counter()
    for average in profiler.key_averages():
        host[average.key[:90]] += average.self_cpu_time_total
    per_step = max(decode_steps, 1)
    return {"kernels_per_decode_step": round(len(kernels) / per_step, 1),
            "gpu_busy_s": round(sum(e.device_time for e in kernels) / 1e6, 4),
            "top_kernels_ms": {k: round(v / 1e3, 2) for k, v in by_kernel.most_common(10)},
            "top_host_ops_ms": {k: round(v / 1e3, 2) for k, v in host.most_common(12)}}


def run_one(case_text: str, tokenizer_dir: str) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from grpo.bench.phases import PhaseTimes, synchronize
    from grpo.bench.train_step import parse_case, run_case
    from grpo.eval import static_decode
    from grpo.train import merged_copy, rollout

    events: Counter = Counter()
    _count_cudagraph_events(events)
    times = PhaseTimes()  # per rollout: the refresh and the prefill between device syncs, the steps' host time
    merged_copy.MergedCopy.refresh = times.timed("refresh", merged_copy.MergedCopy.refresh)
    static_decode.StaticDecoder.prefill = times.timed("prefill", static_decode.StaticDecoder.prefill)
    original_step = static_decode.StaticDecoder.step

    def step(self):  # no sync: the host's time to enqueue the step
        started = time.perf_counter()
        original_step(self)
        times.add("steps", time.perf_counter() - started)
        times.add("step_calls", 1)

    static_decode.StaticDecoder.step = step
    original_call = rollout.StaticLoopRollouts.__call__
    calls = []

    def call(self, *args, **kwargs):
        times.open_step()
        before = Counter(events)
        modes = {"grad": torch.is_grad_enabled(), "inference": torch.is_inference_mode_enabled(),
                 "autocast_cuda": torch.is_autocast_enabled("cuda"), "policy_training": self.model.training}
        last = len(calls) == STEPS - 1
        synchronize()
        started = time.perf_counter()
        if last:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
                result = original_call(self, *args, **kwargs)
                synchronize()
        else:
            result = original_call(self, *args, **kwargs)
        synchronize()
        wall = time.perf_counter() - started
        times.close_step(wall)
        timings = times.steps[-1]
        row = {"case": case_text, "rollout": len(calls), "wall_s": round(wall, 4),
               "refresh_s": round(timings.get("refresh", 0.0), 4), "prefill_s": round(timings.get("prefill", 0.0), 4),
               "step_host_s": round(timings.get("steps", 0.0), 4), "decode_steps": int(timings.get("step_calls", 0)),
               "cudagraph": dict(Counter(events) - before), "modes": modes, "profiled": last}
        calls.append(row)
        print("rollout " + json.dumps(row), flush=True)
        if last:
            print("profile " + json.dumps({"case": case_text, **_profile_summary(profiler, row["decode_steps"])}),
                  flush=True)
        return result

    rollout.StaticLoopRollouts.__call__ = call
    case = parse_case(case_text, steps=STEPS)
    result = run_case(case, Path(tempfile.mkdtemp()), tokenizer_dir)
    print("bench " + json.dumps({"case": case_text, "seconds_per_step": result["seconds_per_step"],
                                 "generation_seconds": result["generation_seconds"],
                                 "compilation": result["compilation"]}), flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        run_one(argv[1], argv[2])
        return
    tokenizer_dir, cases = argv[0], argv[1:] or list(DEFAULT_CASES)
    for case in cases:
        subprocess.run([sys.executable, __file__, "--one", case, tokenizer_dir], check=False)


if __name__ == "__main__":
    main(sys.argv[1:])
