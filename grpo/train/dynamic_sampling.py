"""Dynamic sampling (DAPO, Yu et al. 2025, section 3.2): keep only groups that carry a learning signal.

A group whose completions all earn the same reward has zero advantage everywhere: it adds nothing to the gradient,
but with token-normalised losses (``dapo``, ``bnpo``) its tokens still dilute the step. With a weak policy most
groups are all wrong (92.5% of 8-sample GSM8K groups for SmolLM2-135M), so a plain step learns from a handful of
completions. Here, after TRL generates and scores a batch, flat groups are dropped and replaced by groups from up
to ``max_rounds`` further rounds of generation on fresh prompts; if the rounds run out, the batch is topped up with
flat groups (zero advantage, as TRL would have trained on) so its shape never changes.

Logged per step: ``dynamic_sampling/kept_fraction`` (informative share of the first round, i.e. what plain GRPO
would have learned from), ``dynamic_sampling/rounds`` (extra rounds drawn) and ``dynamic_sampling/filled_fraction``
(informative share of the batch actually trained on). Reward metrics average over every round generated, which is
still an unbiased estimate of the policy's rewards on the training distribution.

Single process only: TRL's groups may span processes, so filtering would need a cross-process exchange.
"""

from __future__ import annotations

import random
from typing import Any

import torch

# Per-completion tensors TRL returns, and on which side each is padded (trl.trainer.utils.pad).
LEFT_PADDED = ("prompt_ids", "prompt_mask")
RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask")
PER_ROW = ("advantages",)


def informative_groups(advantages: torch.Tensor, group_size: int) -> torch.Tensor:
    """One bool per group: does any completion of the group have a non-zero advantage?"""
    return (advantages.view(-1, group_size) != 0).any(dim=1)


def _pad_to(tensor: torch.Tensor, width: int, side: str, value: float) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing <= 0:
        return tensor
    filler = torch.full((tensor.shape[0], missing), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([filler, tensor] if side == "left" else [tensor, filler], dim=1)


def assemble(parts: list[dict[str, Any]], picks: list[tuple[int, int]], group_size: int,
             pad_token_id: int) -> dict[str, Any]:
    """The batch made of groups ``picks`` = [(part index, group index)], re-padded to common widths."""
    unsupported = sorted({key for part in parts for key, value in part.items()
                          if value is not None and key not in LEFT_PADDED + RIGHT_PADDED + PER_ROW
                          and key != "num_items_in_batch"})
    if unsupported:
        raise ValueError(f"dynamic sampling supports text-only batches; got {', '.join(unsupported)}")
    output: dict[str, Any] = {}
    for key in LEFT_PADDED + RIGHT_PADDED + PER_ROW:
        if any(part.get(key) is None for part in parts):  # a field some rounds lack (say, the sampler's
            # log-probabilities of a round decoded by model.generate) is left out, as if no round had it
            continue
        rows = [parts[p][key][g * group_size:(g + 1) * group_size] for p, g in picks]
        if key in PER_ROW:
            output[key] = torch.cat(rows)
            continue
        side = "left" if key in LEFT_PADDED else "right"
        value = pad_token_id if key.endswith("_ids") else (1 if key == "tool_mask" else 0)
        width = max(row.shape[1] for row in rows)
        output[key] = torch.cat([_pad_to(row, width, side, value) for row in rows])
    mask = output["completion_mask"] * output["tool_mask"] if "tool_mask" in output else output["completion_mask"]
    output["num_items_in_batch"] = mask.sum()
    return output


def choose(masks: list[torch.Tensor], needed: int) -> list[tuple[int, int]]:
    """Informative groups in the order generated, topped up with the first round's flat groups."""
    informative = [(p, g) for p, mask in enumerate(masks) for g in range(len(mask)) if mask[g]]
    flat = [(0, g) for g in range(len(masks[0])) if not masks[0][g]]
    return (informative + flat)[:needed]


class DynamicSamplingMixin:
    """Put before ``GRPOTrainer`` in the bases; set ``dynamic_max_rounds`` after construction."""

    dynamic_max_rounds: int = 3

    def _fresh_inputs(self, prompts: int) -> list[dict[str, Any]]:
        """``prompts`` training rows drawn at random, each repeated ``num_generations`` times, as TRL batches them."""
        if not hasattr(self, "_refill_rng"):
            self._refill_rng = random.Random(self.args.seed)
        rows = [self.train_dataset[self._refill_rng.randrange(len(self.train_dataset))] for _ in range(prompts)]
        return [dict(row) for row in rows for _ in range(self.num_generations)]

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return batch
        if self.accelerator.num_processes > 1:
            raise RuntimeError("train.dynamic_sampling runs in a single process only (groups may span processes)")
        size = self.num_generations
        parts, masks = [batch], [informative_groups(batch["advantages"], size)]
        needed, rounds = len(masks[0]), 0
        while sum(int(m.sum()) for m in masks) < needed and rounds < self.dynamic_max_rounds:
            rounds += 1
            extra = super()._generate_and_score_completions(self._fresh_inputs(needed))
            parts.append(extra)
            masks.append(informative_groups(extra["advantages"], size))
        picks = choose(masks, needed)
        filled = sum(bool(masks[p][g]) for p, g in picks) / needed
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/kept_fraction"].append(masks[0].float().mean().item())
        metrics["dynamic_sampling/rounds"].append(float(rounds))
        metrics["dynamic_sampling/filled_fraction"].append(filled)
        if rounds == 0:
            return batch
        return assemble(parts, picks, size, self.processing_class.pad_token_id)


def with_dynamic_sampling(trainer_class: type) -> type:
    """``trainer_class`` (TRL's GRPOTrainer, or Unsloth's patched one) with dynamic sampling mixed in."""
    return type(f"DynamicSampling{trainer_class.__name__}", (DynamicSamplingMixin, trainer_class), {})
