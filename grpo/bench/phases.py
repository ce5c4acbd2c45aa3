"""Where a GRPO step's time goes, for `grpo bench train`: wall time per phase of each optimizer step.

Phases (disjoint; each timed between two device synchronisations, so a phase owns the GPU work it launched):

- ``generation``: TRL's rollout call (``_generate_single_turn``: tokenized prompts in, completion ids out), of
  which ``generate`` is the time inside the model's ``generate`` (for the static loop: the loop itself, prefill
  included) or, with continuous batching, ``generate_batch``; the rest is TRL's padding, bookkeeping and, for the
  loop, its settings check;
- ``reward``: the reward functions (``_calculate_rewards``);
- ``forward``: the policy's log-prob forwards (``_get_per_token_logps_and_entropies``, in the loss and, when TRL
  needs old or reference log-probs, before it);
- ``backward``: ``accelerator.backward`` (with gradient checkpointing it recomputes the forward of each layer);
- ``optimizer``: from transformers' ``on_pre_optimizer_step`` to ``on_optimizer_step`` (clipping is before it);
- ``other``: the step's wall time minus the phases above (advantages, the loss arithmetic, TRL's bookkeeping).
  Data collation before the step and logging after it are outside the step's wall time.

A phase is *measured* for a row when its hook was called at least once: Unsloth keeps TRL's
``_get_per_token_logps_and_entropies`` but computes its loss without it, so its forward shows as not measured
(inside backward and other) rather than as 0 s. Work timed outside a step (an evaluation between steps) is dropped
at the next step's start.

Why hooks on TRL's methods rather than ``torch.profiler``: the profiler lists kernels, not the GRPO phases they
belong to, and its own overhead changes the step it measures. The synchronisations here cost a few per step. A
method a backend does not have (Unsloth replaces some of TRL's) leaves its phase out of that row rather than
guessing it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

PHASES = ("generation", "reward", "forward", "backward", "optimizer")
TRAINER_METHODS = {"generation": "_generate_single_turn", "reward": "_calculate_rewards",
                   "forward": "_get_per_token_logps_and_entropies"}


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PhaseTimes:
    """Seconds per phase of each step: ``steps[i]`` maps phase -> seconds (``generate`` nested in ``generation``;
    ``other`` and the whole ``step`` filled in at the step's end); ``measured`` names the phases whose hooks
    ran."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []
        self._called: set[str] = set()
        self._current: dict[str, float] = defaultdict(float)

    @property
    def measured(self) -> list[str]:
        """The phases whose hooks ran at least once, in :data:`PHASES` order (``generate`` after ``generation``)."""
        order = ["generation", "generate", *PHASES[1:]]
        return [phase for phase in order if phase in self._called]

    def open_step(self) -> None:
        """Forget what was timed since the last step closed: it belongs to no step."""
        self._current = defaultdict(float)

    def timed(self, phase: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            synchronize()
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                synchronize()
                self.add(phase, time.perf_counter() - started)
        return wrapper

    def add(self, phase: str, seconds: float) -> None:
        self._called.add(phase)
        self._current[phase] += seconds

    def close_step(self, step_seconds: float) -> None:
        phases = dict(self._current)
        top_level = sum(seconds for phase, seconds in phases.items() if phase in PHASES)
        phases["other"] = step_seconds - top_level
        phases["step"] = step_seconds
        self.steps.append(phases)
        self.open_step()


def install(trainer) -> PhaseTimes:
    """Wrap ``trainer``'s phases (and the generation model's ``generate``) with timers; returns where they
    accumulate. Call after everything that replaces ``generate`` (the static loop) is installed."""
    times = PhaseTimes()
    for phase, name in TRAINER_METHODS.items():
        if callable(getattr(trainer, name, None)):
            setattr(trainer, name, times.timed(phase, getattr(trainer, name)))
    model = trainer.accelerator.unwrap_model(trainer.model)
    for name in ("generate", "generate_batch"):
        if callable(getattr(model, name, None)):
            setattr(model, name, times.timed("generate", getattr(model, name)))
    trainer.accelerator.backward = times.timed("backward", trainer.accelerator.backward)
    trainer.add_callback(_callback(times))
    return times


def _callback(times: PhaseTimes):
    """Step boundaries and the optimizer phase (transformers imported late: Unsloth must be imported first)."""
    from transformers import TrainerCallback

    class PhaseCallback(TrainerCallback):
        step_started = optimizer_started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            synchronize()
            times.open_step()
            self.step_started = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            synchronize()
            self.optimizer_started = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            synchronize()
            times.add("optimizer", time.perf_counter() - self.optimizer_started)

        def on_step_end(self, args, state, control, **kwargs):
            synchronize()
            times.close_step(time.perf_counter() - self.step_started)

    return PhaseCallback()


def median_phases(steps: list[dict[str, float]]) -> dict[str, float]:
    """The median seconds of each phase over ``steps`` (a phase missing from a step counts 0 there)."""
    import statistics

    names = sorted({phase for step in steps for phase in step})
    return {phase: statistics.median(step.get(phase, 0.0) for step in steps) for phase in names}


COLUMNS = (*PHASES, "other")


def phase_table(rows: list[dict]) -> str:
    """Markdown: each finished row's seconds per phase (median over the measured steps) and its share of the step;
    ``generate`` in brackets after ``generation``; '-' for a phase that backend could not be timed in."""
    header = "| case | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|---|" + "---:|" * len(COLUMNS)]
    for row in rows:
        phases, measured = row.get("phase_seconds"), set(row.get("phases_measured", ())) | {"other"}
        if not phases:
            continue
        step = row["seconds_per_step"]
        cells = []
        for name in COLUMNS:
            if name not in measured:
                cells.append("-")
                continue
            cell = f"{phases.get(name, 0.0):.2f} s ({100 * phases.get(name, 0.0) / step:.0f}%)"
            if name == "generation" and "generate" in measured:
                cell += f" [generate {phases.get('generate', 0.0):.2f} s]"
            cells.append(cell)
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
