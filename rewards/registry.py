"""One registry of reward functions: names for the built-ins, import paths for the user's own.

A reward follows TRL's ``GRPOTrainer`` contract: ``fn(completions, **kwargs) -> list[float | None]``. Dataset
columns (``answer``), ``prompts``, ``completion_ids`` and ``trainer_state`` arrive as keywords, unknown keywords
are ignored, ``None`` means "no opinion on this sample".

A spec is a registered name (``math_correctness``), a ``package.module:function`` path, or a
``path/to/file.py:function`` path. A reward with settings is a frozen dataclass (picklable, stable ``__name__``);
YAML ``params`` become its constructor arguments. A reward factory in TRL/open-r1 style
(``get_soft_overlong_punishment(max_completion_len, soft_punish_cache)`` returning the reward) is called with the
spec's YAML ``kwargs``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Literal

Kind = Literal["correctness", "format", "shaping", "custom"]
ENTRY_POINT_GROUP = "grpo.rewards"
TRL_KEYWORDS = ("completions", "completion_ids", "prompts")


class RewardSpecError(ValueError):
    """A reward spec that cannot be turned into a callable: unknown name, failed import, bad params."""


@dataclass(frozen=True)
class RewardEntry:
    name: str
    factory: Callable[..., Any]
    kind: Kind
    summary: str


_REGISTRY: dict[str, RewardEntry] = {}


def register(name: str, *, kind: Kind) -> Callable:
    """Decorator registering a reward function or a reward dataclass under ``name`` (duplicates refused)."""

    def decorate(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} is already registered by {_REGISTRY[name].factory!r}")
        summary = (inspect.getdoc(factory) or "").split("\n\n")[0].replace("\n", " ")
        _REGISTRY[name] = RewardEntry(name=name, factory=factory, kind=kind, summary=summary)
        return factory

    return decorate


def available() -> list[str]:
    """Names of the registered rewards (built-ins plus installed ``grpo.rewards`` entry points)."""
    _load_entry_points()
    return sorted(_REGISTRY)


def entry(name: str) -> RewardEntry:
    _load_entry_points()
    if name not in _REGISTRY:
        raise RewardSpecError(f"unknown reward {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def kind_of(spec: str) -> Kind:
    return _REGISTRY[spec].kind if spec in _REGISTRY else "custom"


def get(spec: str) -> Callable:
    """The callable (or reward class) a spec names, without applying params."""
    if ":" in spec:
        return _import_path(spec)
    return entry(spec).factory


def make(spec: str, kwargs: dict[str, Any] | None = None) -> Callable:
    """What a spec names; a factory given ``kwargs`` is called with them and its result is the reward."""
    factory = get(spec)
    if kwargs is None:
        return factory
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as err:
        raise RewardSpecError(f"{spec}: factory call with kwargs {kwargs} failed: {err}") from None


def build(spec: str, params: dict[str, Any] | None = None, kwargs: dict[str, Any] | None = None) -> Callable:
    """The ready-to-call reward for a spec, its factory kwargs and YAML params; checks the contract's signature."""
    params = dict(params or {})
    factory = make(spec, kwargs)
    if dataclasses.is_dataclass(factory) and isinstance(factory, type):
        try:
            reward = factory(**params)
        except TypeError as err:
            fields = [f.name for f in dataclasses.fields(factory)]
            raise RewardSpecError(f"{spec}: bad params {params}: {err}; allowed params: {', '.join(fields)}") from None
        except ValueError as err:
            raise RewardSpecError(f"{spec}: {err}") from None
    elif params:
        _check_params_accepted(spec, factory, params)
        reward = functools.partial(factory, **params)
    else:
        reward = factory
    check_signature(spec, reward)
    return reward


def _check_params_accepted(spec: str, function: Callable, params: dict) -> None:
    accepted = inspect.signature(function).parameters
    unknown = [key for key in params if key not in accepted]
    if unknown:
        raise RewardSpecError(f"{spec}: unknown params {unknown}; the function takes: {', '.join(accepted)}")


def check_signature(spec: str, reward: Any) -> None:
    """Refuse a reward that TRL could not call as ``reward(prompts=..., completions=..., **columns)``."""
    if not callable(reward):
        raise RewardSpecError(f"{spec}: {reward!r} is not callable")
    try:
        parameters = inspect.signature(reward).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    # TRL passes these by name on every call; TRL's own get_soft_overlong_punishment reads only completion_ids
    takes_trl_keyword = any(
        p.name in TRL_KEYWORDS and p.kind is not inspect.Parameter.POSITIONAL_ONLY for p in parameters
    )
    if not (has_var_kw and takes_trl_keyword):
        raise RewardSpecError(
            f"{spec}: signature {inspect.signature(reward)} cannot take completions and **kwargs; "
            "define it as def my_reward(completions, **kwargs) -> list[float | None]"
        )


def _import_path(spec: str) -> Any:
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise RewardSpecError(f"{spec!r}: expected 'package.module:function' or 'path/to/file.py:function'")
    try:
        module = _load_file(target) if target.endswith(".py") else importlib.import_module(target)
    except RewardSpecError:
        raise
    except Exception as err:  # any import-time failure of user code: report it, do not guess
        raise RewardSpecError(f"{spec}: cannot import {target!r}: {type(err).__name__}: {err}") from None
    if not hasattr(module, attribute):
        raise RewardSpecError(f"{spec}: module {target!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


def _load_file(path: str) -> Any:
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise RewardSpecError(f"{path}: file does not exist")
    # A stable, flat module name per file, registered in sys.modules so that the reward pickles by reference.
    module_name = f"grpo_user_rewards_{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:10]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


@functools.cache
def _load_entry_points() -> None:
    """Register rewards that installed packages declare under the ``grpo.rewards`` entry-point group."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in _REGISTRY:
            _REGISTRY[point.name] = RewardEntry(point.name, point.load(), "custom", f"from {point.value}")
