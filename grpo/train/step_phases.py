"""How long each training step spent producing its batch, and what torch.compile has done so far, in metrics.jsonl
beside ``step_time``.

Why: ``step_time`` alone cannot tell slow rollouts from a slow policy update, nor a recompilation from anything
else. The GSM8K config through the static decode loop and the merged copy (H200, 2026-12-01) ran 45 steps of about
6 s with two of 59 s and 37 s among them, and its records could not say which part took the time; three earlier
runs of that config stopped making progress altogether (docs/learning.md).

Logged once per optimizer step, where TRL logs ``step_time``:

- ``time/rollouts_s``: wall seconds the step spent in TRL's ``_generate_and_score_completions`` (generation, reward
  scoring, advantages, and dynamic sampling's extra rounds when it is on), summed over the step's micro-batches. It
  is 0 on steps that reuse an earlier generation (``num_iterations`` > 1, ``steps_per_generation`` above the
  gradient accumulation). ``step_time`` minus it is the update (forward, backward, optimizer).
- ``compile/graphs``, ``compile/graph_breaks``, ``compile/cudagraph_skips``: the process's counts so far
  (:func:`compilation_counters`). A step where ``compile/graphs`` rises compiled something: the first compilation,
  or a recompilation whose cause ``TORCH_LOGS=recompiles`` names. All stay 0 where nothing is compiled (a CPU).
"""

from __future__ import annotations

import time


def compilation_counters() -> dict[str, int]:
    """What torch.compile did in this process so far: graphs compiled, graph breaks, and compiled graphs that CUDA
    graphs skipped (``cudagraph_skips``; ``TORCH_LOGS=perf_hints`` prints why). A skipped graph runs its kernels one
    launch at a time, which for the static loop's decode step is the difference between graph replay and being
    bound by the host."""
    from torch._dynamo.utils import counters

    return {"unique_graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values()),
            "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}


METRIC_NAMES = {"unique_graphs": "compile/graphs", "graph_breaks": "compile/graph_breaks",
                "cudagraph_skips": "compile/cudagraph_skips"}


class StepPhasesMixin:
    """Mixed in before TRL's GRPOTrainer (and before dynamic sampling, so its extra rounds count as rollouts).
    Relies on TRL's step bookkeeping in ``training_step`` (1.15 and 1.16): ``_step`` counts micro-steps, and a step
    ends when it is a multiple of ``current_gradient_accumulation_steps``."""

    _rollout_seconds = 0.0

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        started = time.perf_counter()
        batch = super()._generate_and_score_completions(inputs)
        self._rollout_seconds += time.perf_counter() - started
        return batch

    def training_step(self, model, inputs, num_items_in_batch):
        output = super().training_step(model, inputs, num_items_in_batch)
        if self._step % self.current_gradient_accumulation_steps == 0:
            metrics = self._metrics["train"]
            metrics["time/rollouts_s"].append(self._rollout_seconds)
            self._rollout_seconds = 0.0
            for counter, value in compilation_counters().items():
                metrics[METRIC_NAMES[counter]].append(float(value))
        return output


def with_step_phases(trainer_class: type) -> type:
    """``trainer_class`` with :class:`StepPhasesMixin` in front."""
    return type(f"StepPhases{trainer_class.__name__}", (StepPhasesMixin, trainer_class), {})
