"""A trainer callback that warns, with the numbers, when GRPO drifts into a state where it stops learning.

The three failure modes seen on SmolLM2-135M (issue 10): entropy collapse (the policy samples the same completion,
so groups stop differing), flat groups (every completion of a prompt earns the same reward: zero advantage), and
reward hacking of a shaping reward (the format reward saturates while correctness stays where it started). Each
warning is printed once when its condition starts to hold over the last ``window`` logged steps, and again only
after it has cleared; ``guard/warnings`` counts them in the run's metrics.
"""

from __future__ import annotations

import logging
from collections import deque
from statistics import fmean
from typing import Callable

from transformers import TrainerCallback

from grpo.config import CollapseGuardSection

logger = logging.getLogger("grpo")


def _default_say(message: str) -> None:
    print(f"[grpo] warning: {message}", flush=True)
    logger.warning(message)


class CollapseGuard(TrainerCallback):
    def __init__(self, settings: CollapseGuardSection, correctness: list[str], shaping: list[str],
                 say: Callable[[str], None] = _default_say):
        self.settings, self.correctness, self.shaping, self.say = settings, correctness, shaping, say
        self.recent: deque[dict[str, float]] = deque(maxlen=settings.window)
        self.first_correctness: float | None = None
        self.steps = 0
        self.active: set[str] = set()
        self.warnings = 0

    def _mean(self, key: str) -> float | None:
        values = [logs[key] for logs in self.recent if isinstance(logs.get(key), (int, float))]
        return fmean(values) if values else None

    def _correctness(self) -> float | None:
        means = [self._mean(f"rewards/{name}/mean") for name in self.correctness]
        means = [m for m in means if m is not None]
        return fmean(means) if means else None

    def check(self) -> dict[str, str]:
        """The conditions that hold over the current window, each with its message."""
        if len(self.recent) < self.settings.window:
            return {}
        found: dict[str, str] = {}
        entropy = self._mean("entropy")
        if entropy is not None and entropy < self.settings.min_entropy:
            found["entropy"] = (f"entropy collapse: mean token entropy {entropy:.3f} over the last "
                                f"{self.settings.window} steps is below {self.settings.min_entropy}; sampling has "
                                "little left to explore (lower the learning rate, raise temperature or add beta)")
        flat = self._mean("frac_reward_zero_std")
        if flat is not None and flat > self.settings.max_zero_std_fraction:
            # dynamic sampling logs its kept share: then it is on, and more refill rounds are the lever
            refill = ("more train.dynamic_sampling.max_rounds (dynamic sampling is on)"
                      if self._mean("dynamic_sampling/kept_fraction") is not None
                      else "train.dynamic_sampling.enabled")
            found["flat"] = (f"{100 * flat:.0f}% of groups have zero reward variance (no gradient) over the last "
                             f"{self.settings.window} steps (limit {100 * self.settings.max_zero_std_fraction:.0f}%); "
                             f"try easier data, more generations or {refill}")
        correctness = self._correctness()
        if self.steps < 2 * self.settings.window:
            return found  # correctness needs a window after its baseline window before "flat" means anything
        for name in self.shaping:
            mean = self._mean(f"rewards/{name}/mean")
            if mean is None or mean < self.settings.saturation or correctness is None:
                continue
            gain = correctness - (self.first_correctness or 0.0)
            if gain < self.settings.correctness_gain:
                found[f"saturated:{name}"] = (
                    f"reward {name!r} saturated at {mean:.3f} while correctness moved {gain:+.3f} "
                    f"({self.first_correctness or 0.0:.3f} -> {correctness:.3f}); the policy is optimising the "
                    "shaping reward, not the answers (gate it: rewards[i].gate=correct)")
        return found

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs and "reward" not in logs:
            return  # evaluation or other non-training logs
        self.recent.append({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        self.steps += 1
        if self.first_correctness is None and len(self.recent) == self.settings.window:
            self.first_correctness = self._correctness()
        found = self.check()
        for key in found.keys() - self.active:
            self.warnings += 1
            self.say(f"step {state.global_step}: {found[key]}")
        self.active = set(found)
        logs["guard/warnings"] = float(self.warnings)
