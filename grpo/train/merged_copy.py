"""A copy of a LoRA policy with its adapters merged into the weights, for the static decode loop's rollouts.

Why: a LoRA model decodes every targeted projection as ``base(x) + scale * B(A(x))``, so each decode step runs
several extra small kernels per projection. For SmolLM2-135M with every projection targeted, that is more kernels
than the base model runs in all. The GRPO bench on an H200 measured the loop at 20,253 tokens/s decoding the plain
model at batch 64, and at 11,834 tokens/s inside a LoRA run's rollouts (docs/benchmarks.md). Merging
``W + scale * B @ A`` into a copy removes that work. Evaluation already merges (``grpo eval`` uses PEFT's
``merge_and_unload``), but the policy cannot be merged in place while it trains. The in-place merge and unmerge of
PEFT would round the base weights in bf16 at every step. So the copy holds its own merged weights, shares every
other (frozen) tensor with the policy, and is refreshed from the current adapter before each rollout.
:meth:`MergedCopy.refresh` writes in place, so a compiled decode step keeps reading the same addresses.

The rollouts then sample from the merged weights, rounded once to the model's dtype. Training computes the
log-probabilities with the unmerged adapter, so the two differ by that rounding. TRL's vLLM rollouts have the same
kind of difference.

Only plain LoRA on ``nn.Linear`` layers is merged: no DoRA or other LoRA variants, no quantized base layers, no
``modules_to_save``, no other trainable tensors. :func:`unmergeable_reason` says why a model does not qualify, and
the caller then decodes with the model itself.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _lora_layers(model) -> list[tuple[str, nn.Module]]:
    from peft.tuners.lora.layer import LoraLayer

    return [(name, module) for name, module in model.get_base_model().named_modules() if isinstance(module, LoraLayer)]


def unmergeable_reason(model) -> str | None:
    """Why ``model`` (a PeftModel) cannot be decoded through a merged copy (None: it can)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    if not hasattr(model, "get_base_model"):
        return "the model has no PEFT adapter"
    layers = _lora_layers(model)
    if not layers:
        return "the model has no LoRA layers"
    for name, layer in layers:
        if type(layer) is not LoraLinear or type(layer.base_layer) is not nn.Linear:
            return f"{name} is a {type(layer).__name__} over {type(layer.base_layer).__name__}, not LoRA on nn.Linear"
        if layer.merged or layer.disable_adapters:
            return f"{name} has its adapter merged or disabled already"
        if any(adapter in layer.lora_variant for adapter in layer.active_adapters):
            return f"{name} uses a LoRA variant (DoRA or another), which merges differently"
    in_lora = {id(p) for _, layer in layers for p in layer.parameters()}
    others = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in in_lora]
    if others:
        return f"trainable tensors outside the LoRA layers ({others[0]}, ...) would need copying at every rollout"
    if any(hasattr(p, "ds_id") for p in model.parameters()):
        return "DeepSpeed ZeRO-3 partitions the parameters"
    return None


class MergedCopy:
    """``model``: the adapter-free architecture of a PeftModel, sharing its frozen tensors, with a weight of its own
    for every LoRA-targeted projection (``merged_bytes`` in all). Call :meth:`refresh` before decoding."""

    def __init__(self, peft_model):
        reason = unmergeable_reason(peft_model)
        if reason is not None:
            raise ValueError(f"cannot merge the LoRA adapter into a copy: {reason}")
        base = peft_model.get_base_model()
        self._layers = _lora_layers(peft_model)
        targeted = {id(layer.base_layer.weight) for _, layer in self._layers}
        # deepcopy reuses whatever the memo maps: every tensor but the targeted weights stays shared
        shared = {id(t): t for t in [*base.parameters(), *base.buffers()] if id(t) not in targeted}
        self.model = copy.deepcopy(base, memo=shared)
        self._targets: list[torch.Tensor] = []
        for name, _ in self._layers:
            parent_name, _, child = name.rpartition(".")
            copied_layer = self.model.get_submodule(name)
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, child, copied_layer.base_layer)
            self._targets.append(copied_layer.base_layer.weight)
        self.model.requires_grad_(False)
        self.model.eval()  # decoding only: no gradient checkpointing or dropout, whatever mode the policy is in
        self.merged_bytes = sum(t.numel() * t.element_size() for t in self._targets)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Write ``W + sum of the active adapters' deltas`` into the copy's weights, in place (computed in float32,
        then rounded once to the weights' dtype)."""
        for target, (_, layer) in zip(self._targets, self._layers):
            merged = layer.base_layer.weight.float()
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    merged = merged + layer.get_delta_weight(adapter).float()
            target.copy_(merged)
