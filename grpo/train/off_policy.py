"""The rollouts' own log-probabilities as TRL's "old" policy, so that its clipped ratio corrects the gap between the
model that sampled and the model that trains (``train.rollout_off_policy_correction``).

Why: TRL (1.15, 1.16) treats samples from ``model.generate`` as the training forward's own: with one gradient step
per generation it takes the ratio against the training forward's detached log-probabilities, which is 1 by
construction. The static decode loop samples from other numerics: through the merged copy, from weights with the
adapter merged and rounded to bf16 (log-probabilities about 0.02 apart per token, measured on a CPU); through the
adapter layers, from KV-cached decode steps rather than one full forward. Its samples are then slightly off-policy,
and nothing corrects them. TRL's own correction for this (``vllm_importance_sampling_correction``) reads the
sampler's log-probabilities from vLLM only and multiplies the loss inside ``_compute_loss`` only when vLLM is on.

How: the loop records each sampled token's log-probability under ``softmax(logits / T)``, as TRL's training forward
computes it (:func:`grpo.eval.static_decode.chosen_logprobs`), and this mixin puts them in the batch as
``old_per_token_logps``. TRL's loss then uses ``exp(logp_train - logp_sampler)`` as the PPO ratio, clipped to
[1 - epsilon, 1 + epsilon_high] as for any stale sample: the standard off-policy treatment, with TRL's
``clip_ratio/*`` metrics saying how often the clip binds. (It replaces an old policy TRL computed itself, for
``num_iterations`` > 1: the sampler is the behaviour policy there too.) A batch the loop did not decode (handed to
``model.generate``) keeps TRL's own treatment. With LoRA dropout the training forward's log-probabilities carry
its noise, and so does the ratio (TRL's own ratio would be 1); the project's configs train without dropout.
"""

from __future__ import annotations

import torch

from grpo.train.rollout import installed_rollouts


class OffPolicyCorrectionMixin:
    """Mixed in just before TRL's GRPOTrainer (after dynamic sampling, so each of its rounds gets its own)."""

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
        batch["old_per_token_logps"] = logprobs.to(completions.device)
        return batch


def with_off_policy_correction(trainer_class: type) -> type:
    """``trainer_class`` with :class:`OffPolicyCorrectionMixin` in front."""
    return type(f"OffPolicy{trainer_class.__name__}", (OffPolicyCorrectionMixin, trainer_class), {})
