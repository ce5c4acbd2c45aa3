"""How long each training step spent producing its batch, and how many graphs torch.compile has built, in
metrics.jsonl beside ``step_time``.

Why: ``step_time`` alone cannot tell slow rollouts from a slow policy update, nor a recompilation from anything
else. The GSM8K config through the static decode loop and the merged copy (H200, 2026-12-01) ran 45 steps of about
6 s with two of 59 s and 37 s among them, and its records could not say which part took the time; three earlier
runs of that config stopped making progress altogether (docs/learning.md).

Logged for every training step, one value each (TRL averages what a step appends, so each step appends once):

- ``time/rollouts_s``: wall seconds in TRL's ``_generate_and_score_completions`` for the step: generation, reward
  scoring, advantages, and dynamic sampling's extra rounds when it is on. ``step_time`` minus it is the update
  (forward, backward, optimizer) plus the callbacks.
- ``compile/graphs``: the process's count of graphs dynamo has compiled so far (``torch._dynamo``'s
  ``unique_graphs`` counter). A step where it rises compiled something: a first compilation, or a recompilation
  whose cause ``TORCH_LOGS=recompiles`` names. It stays 0 where nothing is compiled (a CPU).
"""

from __future__ import annotations

import time


def compiled_graphs() -> int:
    """How many graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class StepPhasesMixin:
    """Mixed in before TRL's GRPOTrainer (and before dynamic sampling, so its extra rounds count as rollouts)."""

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        started = time.perf_counter()
        batch = super()._generate_and_score_completions(inputs)
        metrics = self._metrics["train"]
        metrics["time/rollouts_s"].append(time.perf_counter() - started)
        metrics["compile/graphs"].append(float(compiled_graphs()))
        return batch


def with_step_phases(trainer_class: type) -> type:
    """``trainer_class`` with :class:`StepPhasesMixin` in front."""
    return type(f"StepPhases{trainer_class.__name__}", (StepPhasesMixin, trainer_class), {})
