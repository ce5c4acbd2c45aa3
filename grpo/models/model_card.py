"""The model card (README.md) of a run directory and of an export: base model, data, rewards and, when the run
measured them, held-out results. TRL's own card leaves base model and dataset as ``[None]`` for our runs."""

from __future__ import annotations

from grpo.config import RunConfig
from grpo.rundir import BEFORE_AFTER_MD, MODEL_CARD


def model_card(config: RunConfig, title: str, results: str | None = None) -> str:
    data = config.data.path or config.data.source
    reward_list = "\n".join(f"- `{spec.name}` (weight {spec.weight:g})" for spec in config.rewards)
    card = (f"---\nbase_model: {config.model.name}\nlibrary_name: transformers\ntags: [grpo, trl]\n---\n\n"
            f"# {title}\n\nGRPO fine-tune of `{config.model.name}` (LoRA r={config.model.lora.r}) on `{data}` "
            f"({config.data.source} data), {config.train.max_steps} steps.\n\nRewards:\n{reward_list}\n")
    return card + (f"\nHeld-out results:\n\n{results}\n" if results else "")


def write_run_card(run_dir, config: RunConfig) -> None:
    """Replace the card TRL wrote into the run directory, with the before/after table when the run has one."""
    results = run_dir / BEFORE_AFTER_MD
    text = model_card(config, run_dir.name, results.read_text().strip() if results.is_file() else None)
    (run_dir / MODEL_CARD).write_text(text)
