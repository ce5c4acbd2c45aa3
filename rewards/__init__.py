"""Deterministic reward functions and the registry through which users plug in their own.

``rewards.get(spec)`` returns the reward a name or import path refers to, ``rewards.available()`` lists the
registered names, ``rewards.resolve(specs, context)`` turns a run's reward specs into the callables and weights
handed to TRL's ``GRPOTrainer``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from rewards import format, math, shaping  # noqa: F401  (importing registers the built-ins)
from rewards.gating import GatedOnCorrect
from rewards.policy import GuardedReward, RewardContractError, RewardError, trl_keywords
from rewards.registry import (
    RewardSpecError,
    available,
    build as _build,
    check_signature,
    entry,
    get,
    kind_of,
    register,
)

__all__ = [
    "GatedOnCorrect", "GuardedReward", "RewardContractError", "RewardError", "RewardSpecError", "available", "build",
    "check_signature", "entry", "get", "kind_of", "register", "resolve", "trl_keywords",
]


def build(spec: str, params: dict[str, Any] | None = None, context: dict[str, Any] | None = None,
          kwargs: dict[str, Any] | None = None):
    """Like :func:`rewards.registry.build`, filling dataclass fields the user left unset from ``context``
    (for instance ``max_completion_length`` from the run's train section)."""
    params = dict(params or {})
    factory = get(spec)
    if context and kwargs is None and dataclasses.is_dataclass(factory) and isinstance(factory, type):
        field_names = {field.name for field in dataclasses.fields(factory)}
        for key, value in context.items():
            if key in field_names and key not in params:
                params[key] = value
    return _build(spec, params, kwargs)


def display_name(spec: str) -> str:
    """The name a reward's metrics are logged under: the registered name, or the function name of a path."""
    return spec.rsplit(":", 1)[-1]


def resolve(specs: Iterable[Any], context: dict[str, Any] | None = None) -> tuple[list[GuardedReward], list[float]]:
    """Reward specs (objects with name, params, weight, on_error, gate) -> (guarded callables, weights).

    A spec with ``gate: correct`` is wrapped in :class:`GatedOnCorrect`, judged by the run's own
    ``math_correctness`` (with its params) when the run has one, else by the default verifier.
    """
    specs = list(specs)
    built = [build(spec.name, spec.params, context, spec.kwargs) for spec in specs]
    verifier = next((reward for reward in built if isinstance(reward, math.MathCorrectness)), None)
    functions, weights = [], []
    for spec, reward in zip(specs, built):
        if getattr(spec, "gate", "none") == "correct":
            reward = GatedOnCorrect(reward, verifier or math.MathCorrectness())
        functions.append(GuardedReward(reward, display_name(spec.name), spec.on_error))
        weights.append(float(spec.weight))
    return functions, weights
