"""Truncated importance sampling for the static loop's rollouts: each completion token's advantage weighted by
``min(p_train / p_sampler, CAP)``, the gap between the model that sampled it and the model that trains
(``train.rollout_off_policy_correction``).

Why: TRL (1.15, 1.16) treats samples from ``model.generate`` as the training forward's own: with one gradient step
per generation its PPO ratio is 1 by construction. The static decode loop samples from other numerics: through the
merged copy, from weights with the adapter merged and rounded to bf16 (log-probabilities about 0.02 apart per token
on average, up to 1.1, measured on a CPU); through the adapter layers, from KV-cached decode steps rather than one
full forward. TRL's own correction for this gap (``vllm_importance_sampling_correction``) reads the sampler's
log-probabilities from vLLM only.

Why not hand TRL the sampler's log-probabilities as its "old" policy: its clipped objective ``-min(r A, clip(r) A)``
then zeroes the gradient of every token with A > 0 whose ratio is above 1 + epsilon and leaves the ratio unbounded
when A < 0; for a gap made of rounding noise that drops or triples a few percent of the token gradients.
Truncated importance sampling (the correction TRL applies to vLLM's rollouts, token level, with truncation)
instead multiplies each token's term by a detached weight capped at :data:`CAP`, and leaves TRL's ratio at 1.

How, in two mixins around TRL's ``_generate_and_score_completions``:

- :class:`SamplerLogprobsMixin` (innermost: every generation round, dynamic sampling's refills included) puts the
  loop's record of each sampled token's log-probability under ``softmax(logits / T)``
  (:func:`grpo.eval.static_decode.chosen_logprobs`) into the batch as ``sampling_per_token_logps``, TRL's own name
  for them (it reads them for its off-policy sequence masking, ``off_policy_mask_threshold``, as intended).
- :class:`OffPolicyCorrectionMixin` (outermost, on the batch as it will be trained on) computes the policy's
  log-probabilities of the same tokens in one forward without gradients (TRL's for its vLLM correction, reused when
  TRL computed them itself), and replaces the per-completion advantages with per-token ones, ``A * weight``; TRL's
  loss takes advantages of shape (B, T) as they are (its documented extension point for subclasses).

Logged per step: ``off_policy/logp_gap`` (mean absolute difference of the two log-probabilities over completion
tokens), ``off_policy/weight_mean`` and ``off_policy/capped_fraction`` (tokens whose weight hit the cap). A batch the
loop did not decode (handed to ``model.generate``) is trained as TRL would. With LoRA dropout the training forward's
log-probabilities carry its noise, and so do the weights; the project's configs train without dropout. The sampler's
temperature must be the trainer's: the config refuses ``train.generation_kwargs`` that would change it.
"""

from __future__ import annotations

import torch
from trl.models.utils import disable_gradient_checkpointing

from grpo.train.rollout import installed_rollouts

CAP = 2.0  # truncation of the importance weight (Yao et al. 2025, "Your efficient RL framework secretly brings you
# off-policy RL training", used C = 2); a ratio above it is a gap the samples cannot correct, not one to amplify. In
# the merged copy's CPU measurement (docs/results/cpu-2026-11-30-merged-gap/) the 99th percentile of the gap was 0.45,
# below log 2 = 0.69: under 1% of the tokens would reach the cap
SAMPLER_KEY = "sampling_per_token_logps"


def importance_weights(policy: torch.Tensor, sampler: torch.Tensor, mask: torch.Tensor,
                       cap: float = CAP) -> tuple[torch.Tensor, dict[str, float]]:
    """``min(exp(policy - sampler), cap)`` per token (1 where ``mask`` is 0), and the step's figures."""
    kept = mask.bool()
    gap = (policy - sampler).masked_fill(~kept, 0.0)
    weights = gap.exp().clamp(max=cap).masked_fill(~kept, 1.0)
    tokens = kept.sum().clamp_min(1)
    figures = {"off_policy/logp_gap": float(gap.abs().sum() / tokens),
               "off_policy/weight_mean": float(weights[kept].sum() / tokens),
               "off_policy/capped_fraction": float(((gap.exp() >= cap) & kept).sum() / tokens)}
    return weights, figures


class SamplerLogprobsMixin:
    """Mixed in just before TRL's GRPOTrainer: each generation round's batch carries the loop's log-probabilities."""

    def _generate_and_score_completions(self, inputs):
        rollouts = installed_rollouts(self)
        if rollouts is None or not rollouts.logprobs or not self.model.training:
            return super()._generate_and_score_completions(inputs)
        rollouts.take_logprobs()  # nothing left over from a decode outside this batch
        calls = rollouts.loop_calls
        batch = super()._generate_and_score_completions(inputs)
        logprobs = rollouts.take_logprobs()
        if logprobs is None or rollouts.loop_calls != calls + 1:  # decoded by generate, or by several calls
            return batch
        completions = batch["completion_ids"]
        if logprobs.shape[0] != completions.shape[0]:
            raise RuntimeError(f"the loop decoded {logprobs.shape[0]} rows for a batch of {completions.shape[0]} "
                               "completions; cannot pair its log-probabilities with them")
        width = completions.shape[1]
        logprobs = torch.nn.functional.pad(logprobs[:, :width], (0, max(0, width - logprobs.shape[1])))
        batch[SAMPLER_KEY] = logprobs.to(completions.device)
        return batch


class OffPolicyCorrectionMixin:
    """Mixed in outside dynamic sampling (its assembled batch is what trains): per-token advantages ``A * weight``."""

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        sampler = batch.get(SAMPLER_KEY)
        if sampler is None or not self.model.training:
            return batch
        mask = batch["completion_mask"]
        policy = batch.get("old_per_token_logps")
        if policy is None:
            ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
            attention = torch.cat([batch["prompt_mask"], mask], dim=1)
            # as TRL's own extra forward for its vLLM correction: without gradient checkpointing, which under
            # no_grad (reentrant) would only warn in every layer
            with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                policy = self._get_per_token_logps_and_entropies(
                    self.model, ids, attention, batch["completion_ids"].shape[1],
                    batch_size=self.args.per_device_train_batch_size)[0]
        weights, figures = importance_weights(policy.float(), sampler.float(), mask)
        advantages = batch["advantages"]
        batch["advantages"] = (advantages[:, None] if advantages.dim() == 1 else advantages) * weights
        for name, value in figures.items():
            self._metrics["train"][name].append(value)
        return batch


def with_off_policy_correction(trainer_class: type, inside=None) -> type:
    """``trainer_class`` with :class:`SamplerLogprobsMixin` in front, then ``inside`` (a function that mixes in more,
    such as dynamic sampling, or None), then :class:`OffPolicyCorrectionMixin` in front of it all."""
    inner = type(f"SamplerLogprobs{trainer_class.__name__}", (SamplerLogprobsMixin, trainer_class), {})
    middle = inside(inner) if inside is not None else inner
    return type(f"OffPolicyCorrection{middle.__name__}", (OffPolicyCorrectionMixin, middle), {})
