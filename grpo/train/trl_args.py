"""RunConfig -> ``trl.GRPOConfig``: the typed ``train`` settings, the pipeline's own choices, and ``train.trl`` for
every other GRPOConfig field (vLLM rollouts, ``steps_per_generation``, ``log_completions``, GSPO's
``importance_sampling_level``, ``push_to_hub``, ...), so a TRL or open-r1 recipe can be followed without waiting
for a typed key.

``train.trl`` is checked the way the rest of the config is: each problem is one line naming ``train.trl.<key>``.
Keys must be GRPOConfig fields of the installed TRL, values must have the field's type, keys the pipeline sets
from elsewhere are refused (naming the key to use), and the whole is validated by constructing GRPOConfig, so
TRL's own cross-field checks run before anything is loaded or written.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import typing
from pathlib import Path
from typing import Any

from grpo.train import distributed
from grpo.config import ConfigError, RunConfig

# GRPOConfig fields the pipeline derives from other keys: setting them in train.trl would contradict those.
OWNED = {
    "output_dir": "run.output_dir and run.name", "seed": "run.seed", "reward_weights": "rewards[].weight",
    "bf16": "model.dtype", "fp16": "model.dtype", "gradient_checkpointing": "model.gradient_checkpointing",
    "shuffle_dataset": "data.order", "warmup_steps": "train.warmup_ratio",
    "use_cpu": "the machine (no CUDA: the CPU, which is what joins processes through gloo)",
}


def _typed(config: RunConfig) -> dict[str, Any]:
    train = config.train
    return dict(
        max_steps=train.max_steps, learning_rate=train.learning_rate, lr_scheduler_type=train.lr_scheduler_type,
        weight_decay=train.weight_decay, max_grad_norm=train.max_grad_norm,
        optim=train.optim, per_device_train_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps, num_generations=train.num_generations,
        max_completion_length=train.max_completion_length, temperature=train.temperature, top_p=train.top_p,
        top_k=train.top_k, beta=train.beta, epsilon=train.epsilon, epsilon_high=train.epsilon_high,
        num_iterations=train.num_iterations, loss_type=train.loss_type, scale_rewards=train.scale_rewards,
        mask_truncated_completions=train.mask_truncated_completions,
        cache_implementation=train.cache_implementation, generation_kwargs=train.generation_kwargs or None,
        logging_steps=train.logging_steps, save_steps=train.save_steps, save_total_limit=train.save_total_limit,
        report_to=[r for r in train.report_to if r != "none"] or "none",
    )


def _owned(config: RunConfig, output_dir: Path, weights: list[float]) -> dict[str, Any]:
    from grpo.models.loading import cuda_available, torch_dtype

    dtype = str(torch_dtype(config.model)).removeprefix("torch.")
    return dict(
        output_dir=str(output_dir), seed=config.run.seed, reward_weights=weights,
        bf16=dtype == "bfloat16", fp16=dtype == "float16",
        gradient_checkpointing=False,  # applied (or not) by grpo.models.loading when the model is loaded
        shuffle_dataset=config.data.order != "curriculum",  # a curriculum's order is the point
        warmup_steps=config.train.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        use_cpu=not cuda_available(),
    )


# The pipeline's defaults for fields without a typed key; train.trl may change them. DDP need not search for unused
# parameters: every LoRA (or full) weight takes part in every forward pass, and the search costs a graph traversal.
DEFAULTS = dict(save_strategy="steps", dataloader_num_workers=0, log_completions=False,
                ddp_find_unused_parameters=False)


def check_trl_keys(trl: dict[str, Any], typed: set[str]) -> dict[str, Any]:
    """``train.trl`` with each value converted to its GRPOConfig field's type; ConfigError lists every bad key."""
    from pydantic import TypeAdapter, ValidationError
    from trl import GRPOConfig

    fields = [f.name for f in dataclasses.fields(GRPOConfig) if f.init]
    hints = typing.get_type_hints(GRPOConfig)
    checked, problems = {}, []
    for key, value in trl.items():
        if key in typed:
            problems.append(f"train.trl.{key}: has a typed key; set train.{key} instead")
        elif key in OWNED:
            problems.append(f"train.trl.{key}: set by the pipeline from {OWNED[key]}")
        elif key not in fields:
            guess = difflib.get_close_matches(key, fields, n=1)
            problems.append(f"train.trl.{key}: not a GRPOConfig field of the installed trl"
                            + (f"; did you mean '{guess[0]}'?" if guess else ""))
        else:
            try:
                checked[key] = TypeAdapter(hints[key]).validate_python(value)
            except ValidationError as err:
                problems.append(f"train.trl.{key}: {err.errors()[0]['msg']} (got {value!r})")
    if trl.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        problems.append("train.trl.use_vllm: vllm is not installed (pip install 'grpo-pipeline[vllm]', CUDA only)")
    if problems:
        raise ConfigError("\n".join(problems))
    return checked


def build_grpo_args(config: RunConfig, output_dir: Path, weights: list[float]):
    """The GRPOConfig of a run; ConfigError (one line per problem, naming the key) when TRL would refuse it."""
    from trl import GRPOConfig

    typed = _typed(config)
    extra = check_trl_keys(config.train.trl, set(typed) | {"warmup_ratio"})
    distributed.name_the_cpu_plainly()
    try:
        return GRPOConfig(**typed, **_owned(config, output_dir, weights), **(DEFAULTS | extra))
    except (ValueError, TypeError) as err:
        where = f"train.trl ({', '.join(extra)})" if extra else "train"
        raise ConfigError(f"{where}: trl's GRPOConfig refused it: {str(err).strip().splitlines()[0]}") from None


def planned_prompts(args) -> int:
    """Prompts the dataloader hands out over the whole run, all processes together (what a curriculum ramps over).

    TRL's sampler draws ``generation_batch_size / num_generations`` prompts per generation and reuses each
    generation for ``steps_per_generation x num_iterations`` micro-batches; an optimizer step takes
    ``gradient_accumulation_steps`` micro-batches.
    """
    per_generation = args.generation_batch_size // args.num_generations
    per_step = per_generation * args.gradient_accumulation_steps / (args.steps_per_generation * args.num_iterations)
    return math.ceil(args.max_steps * per_step)


def rollout_sequences(args) -> int:
    """Completions one process generates at once: its share of a generation batch."""
    return args.per_device_train_batch_size * args.steps_per_generation
