"""A copy of a LoRA policy with its adapters merged into the weights, for the static decode loop's rollouts.

Why: a LoRA model decodes every targeted projection as ``base(x) + scale * B(A(x))``, so each decode step runs
several extra small kernels per projection. For SmolLM2-135M with every projection targeted, that is more kernels
than the base model runs in all: on an H200 the loop took 1.31 s for 64 rollouts of 256 tokens through the adapter
layers and 0.64 s for the plain model (docs/benchmarks.md, scripts/diag_rollout_gap.py). Merging
``W + scale * B @ A`` into a copy removes that work. Evaluation already merges (``grpo eval`` uses PEFT's
``merge_and_unload``), but the policy cannot be merged in place while it trains. The in-place merge and unmerge of
PEFT would round the base weights in bf16 at every step. So the copy holds its own merged weights, shares every
other (frozen) tensor with the policy, and is refreshed from the current adapter before each rollout.
:meth:`MergedCopy.refresh` writes in place, so a compiled decode step keeps reading the same addresses.

The rollouts then sample from the merged weights, rounded once to the model's dtype (up to half a bf16 step of W per
entry: early in training as large as the adapter's whole change to many entries). Training computes the
log-probabilities with the unmerged adapter and treats the samples as on-policy, so that rounding is an off-policy
gap, corrected only with ``train.rollout_off_policy_correction`` (:mod:`grpo.train.off_policy`: truncated importance
weights from the sampled tokens' own log-probabilities). Hence opt-in (``train.rollout_merged_lora``). Measured on a
CPU with a trained SmolLM2 adapter (docs/results/cpu-2026-11-30-merged-gap/), the gap was about as large as bf16's
own against float32: log-probabilities 0.02 apart per token on average. On an H200 the copy decodes 64 rollouts of
256 tokens inside the GRPO bench's step in 0.69 s, its refresh included, against 1.25 s through the adapter layers
(docs/benchmarks.md). LoRA dropout does not apply to rollouts through the copy (it decodes in eval mode).

Only plain LoRA on ``nn.Linear`` layers is merged: no DoRA or other LoRA variants, no LoRA bias, no quantized base
layers, no weight tied to another module (a LoRA on a tied ``lm_head`` would merge into the input embeddings too),
no ``modules_to_save`` or trainable biases, no other trainable tensors. :func:`unmergeable_reason` says why a model
does not qualify, and the caller then decodes with the model itself; so does a copy whose forward, tried once when
it is built, does not run all of its merged layers or runs any of the policy's adapter layers.
"""

from __future__ import annotations

import copy
from collections import Counter

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
        if any(layer.lora_bias.get(adapter) for adapter in layer.active_adapters):
            return f"{name} has a LoRA bias (lora_bias), which merges into the base layer's bias"
    uses = Counter(id(p) for _, p in model.get_base_model().named_parameters(remove_duplicate=False))
    tied = [name for name, layer in layers if uses[id(layer.base_layer.weight)] > 1]
    if tied:
        return f"{tied[0]}'s weight is tied to another module (tied embeddings), which must not take its merge"
    adapter_tensors = {id(p) for _, layer in layers for part in (layer.lora_A, layer.lora_B) for p in part.parameters()}
    others = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in adapter_tensors]
    if others:
        return f"trainable tensors besides the LoRA matrices ({others[0]}, ...) would need copying at every rollout"
    if any(hasattr(p, "ds_id") for p in model.parameters()):
        return "DeepSpeed ZeRO-3 partitions the parameters"
    return None


def _drop_instance_forwards(model: nn.Module, merged_names: list[str]) -> None:
    """Give the copy's merged layers and every module above them their class's own ``forward`` back, removing any
    set on the instance.

    Why: TRL's GRPOTrainer (1.15 and 1.16, ``add_fused_lm_head``) replaces the policy's ``forward`` on the instance
    with a function that closes over the *original* model's bound ``forward``. A deep copy keeps that closure, so
    the copy's forward ran the policy, through its adapter layers, and never read the merged weights: inside the
    trainer the "merged" rollouts were the adapter's rollouts plus transformers' repeated key/value heads (the
    copy's grouped-attention switch does not reach the policy's config), hence slower than the adapter layers alone
    (H200, docs/benchmarks.md). The copy only decodes, so the classes' forwards (logits, no fused LM head) are the
    ones it needs there; a kernel patch set on one of those instances (Liger's, say) is dropped with them. A module
    with no merged layer below it keeps a forward set on its instance (TRL's float32 LM head is one): whatever it
    closes over computes with the frozen tensors the copy shares anyway.
    """
    above = {""}
    for name in merged_names:
        parts = name.split(".")
        above.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    for name, module in model.named_modules():
        if name in above and "forward" in vars(module):
            del module.forward


def _unrun_reason(model: nn.Module, merged: list[nn.Module], policy_layers: list[nn.Module]) -> str | None:
    """Why one forward of ``model`` (a single token) does not decode through the copy alone: a merged layer it
    did not run, or a layer of the policy's adapter it ran (None: it runs every merged layer and none of the
    policy's).

    Why: a forward patched in a way :func:`_drop_instance_forwards` does not undo could route the copy back into
    the policy, as TRL's did, and the rollouts would silently decode through the adapter layers again."""
    ran: set[int] = set()
    handles = [layer.register_forward_pre_hook(lambda module, args: ran.add(id(module)))
               for layer in [*merged, *policy_layers]]
    try:
        with torch.no_grad():
            device = model.get_input_embeddings().weight.device
            model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device), use_cache=False)
    except RuntimeError as err:  # out of memory, a device mismatch: the copy cannot be trusted either way
        return f"its trial forward failed ({type(err).__name__}: {err})"
    finally:
        for handle in handles:
            handle.remove()
    if any(id(layer) in ran for layer in policy_layers):
        return "its forward runs the policy's adapter layers (the model's forward is patched in a way the copy " \
               "cannot undo)"
    if not all(id(layer) in ran for layer in merged):
        return "its forward did not run all of its merged layers"
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
        merged_layers: list[nn.Linear] = []
        for name, _ in self._layers:
            parent_name, _, child = name.rpartition(".")
            copied_layer = self.model.get_submodule(name)
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, child, copied_layer.base_layer)
            merged_layers.append(copied_layer.base_layer)
        _drop_instance_forwards(self.model, [name for name, _ in self._layers])
        self._targets = [layer.weight for layer in merged_layers]
        for target in self._targets:  # the copy's own tensors only: the shared ones belong to the policy
            target.requires_grad_(False)
        self.model.eval()  # decoding only: no gradient checkpointing or dropout, whatever mode the policy is in
        self.merged_bytes = sum(t.numel() * t.element_size() for t in self._targets)
        self.refresh()
        reason = _unrun_reason(self.model, merged_layers, [layer for _, layer in self._layers])
        if reason is not None:
            raise ValueError(f"cannot decode through a merged copy: {reason}")

    @torch.no_grad()
    def refresh(self) -> None:
        """Write ``W + sum of the active adapters' deltas`` into the copy's weights, in place: each delta as PEFT's
        ``get_delta_weight`` forms it (``B @ A``, transposed for ``fan_in_fan_out``, times the adapter's scaling), but
        in float32 whatever the adapters' dtype, then rounded once to the weights' dtype."""
        for target, (_, layer) in zip(self._targets, self._layers):
            merged = layer.base_layer.weight.float()
            for adapter in layer.active_adapters:
                if adapter in layer.lora_A:
                    delta = layer.lora_B[adapter].weight.float() @ layer.lora_A[adapter].weight.float()
                    merged = merged + (delta.T if layer.fan_in_fan_out else delta) * layer.scaling[adapter]
            target.copy_(merged)
