"""grpo.train.off_policy: the loop's sampled-token log-probabilities are paired with the right rows and positions,
the truncated importance weights they give, and per-token advantages reaching TRL's loss; batches the loop did not
decode keep TRL's own treatment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from grpo.cli import main
from grpo.train import off_policy
from tests.grpo.train.tiny_runs import tiny_run_config


class _Rollouts(SimpleNamespace):
    def take_logprobs(self):
        latest, self.latest = self.latest, None
        return latest


class _Trainer:
    """Stands in for TRL's GRPOTrainer: its batch, and a rollout that the loop decoded (or not)."""

    def __init__(self, rows: int, width: int, decoded: torch.Tensor | None):
        self.model = SimpleNamespace(training=True)
        self.rollouts = _Rollouts(logprobs=True, loop_calls=0, latest=None)
        self.rows, self.width, self.decoded = rows, width, decoded

    def _generate_and_score_completions(self, inputs):
        if self.decoded is not None:
            self.rollouts.loop_calls += 1
            self.rollouts.latest = self.decoded
        return {"completion_ids": torch.ones(self.rows, self.width, dtype=torch.long)}


class _Corrected(off_policy.SamplerLogprobsMixin, _Trainer):
    pass


@pytest.fixture
def trainer_with(monkeypatch):
    def make(rows, width, decoded):
        trainer = _Corrected(rows, width, decoded)
        monkeypatch.setattr(off_policy, "installed_rollouts", lambda _: trainer.rollouts)
        return trainer
    return make


def test_logprobs_are_padded_or_cut_to_the_completions_width(trainer_with):
    decoded = torch.tensor([[-0.5, -1.0, -2.0], [-0.25, 0.0, 0.0]])
    wider = trainer_with(2, 5, decoded)._generate_and_score_completions({})
    assert wider[off_policy.SAMPLER_KEY].tolist() == [[-0.5, -1.0, -2.0, 0.0, 0.0], [-0.25, 0.0, 0.0, 0.0, 0.0]]
    narrower = trainer_with(2, 2, decoded)._generate_and_score_completions({})
    assert narrower[off_policy.SAMPLER_KEY].tolist() == [[-0.5, -1.0], [-0.25, 0.0]]


def test_a_batch_the_loop_did_not_decode_keeps_trls_treatment(trainer_with):
    assert off_policy.SAMPLER_KEY not in trainer_with(2, 3, None)._generate_and_score_completions({})


def test_rows_that_do_not_pair_up_are_an_error(trainer_with):
    with pytest.raises(RuntimeError, match="decoded 2 rows for a batch of 3 completions"):
        trainer_with(3, 3, torch.zeros(2, 3))._generate_and_score_completions({})


def test_importance_weights_are_truncated_ratios_over_completion_tokens():
    policy = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    sampler = torch.tensor([[-1.0, -3.0, -0.1, -9.0]])  # ratios 1, e, e^-0.4, and a masked-out position
    mask = torch.tensor([[1, 1, 1, 0]])
    weights, figures = off_policy.importance_weights(policy, sampler, mask, cap=2.0)
    torch.testing.assert_close(weights, torch.tensor([[1.0, 2.0, float(torch.tensor(-0.4).exp()), 1.0]]))
    assert figures["off_policy/logp_gap"] == pytest.approx((0 + 1 + 0.4) / 3)
    assert figures["off_policy/capped_fraction"] == pytest.approx(1 / 3)
    assert figures["off_policy/weight_mean"] == pytest.approx(float(weights[mask.bool()].mean()))


class _Batch(SimpleNamespace):
    """Stands in for TRL's trainer after dynamic sampling: the assembled batch, its metrics and its forward."""

    def _generate_and_score_completions(self, inputs):
        return dict(self.batch)

    def _get_per_token_logps_and_entropies(self, model, ids, mask, logits_to_keep, batch_size=None):
        self.forwards += 1
        return self.policy[:, -logits_to_keep:], None, None


class _Weighted(off_policy.OffPolicyCorrectionMixin, _Batch):
    pass


def _weighted(batch, policy):
    from collections import defaultdict

    return _Weighted(batch=batch, policy=policy, forwards=0,
                     model=SimpleNamespace(training=True, is_gradient_checkpointing=False),
                     args=SimpleNamespace(per_device_train_batch_size=2, gradient_checkpointing_kwargs=None),
                     _metrics={"train": defaultdict(list)})


def test_advantages_become_per_token_and_weighted():
    batch = {"prompt_ids": torch.zeros(2, 1, dtype=torch.long), "prompt_mask": torch.ones(2, 1, dtype=torch.long),
             "completion_ids": torch.zeros(2, 2, dtype=torch.long), "completion_mask": torch.ones(2, 2),
             "advantages": torch.tensor([1.0, -2.0]),
             off_policy.SAMPLER_KEY: torch.tensor([[-1.0, -1.0], [-1.0, -3.0]])}
    trainer = _weighted(batch, torch.tensor([[-1.0, -1.0], [-1.0, -2.0]]))
    out = trainer._generate_and_score_completions({})
    torch.testing.assert_close(out["advantages"], torch.tensor([[1.0, 1.0], [-2.0, -4.0]]))  # exp(1) capped at 2
    assert trainer.forwards == 1 and trainer._metrics["train"]["off_policy/capped_fraction"] == [0.25]
    trl_old = _weighted(batch | {"old_per_token_logps": torch.full((2, 2), -1.0)}, None)
    torch.testing.assert_close(trl_old._generate_and_score_completions({})["advantages"],
                               torch.tensor([[1.0, 1.0], [-2.0, -4.0]]))  # TRL's own old policy: no extra forward
    assert trl_old.forwards == 0
    unsampled = _weighted({key: value for key, value in batch.items() if key != off_policy.SAMPLER_KEY}, None)
    assert unsampled._generate_and_score_completions({})["advantages"].dim() == 1


@pytest.mark.parametrize("settings", [[], ["train.rollout_merged_lora=true"],
                                      ["train.dynamic_sampling.enabled=true", "train.dynamic_sampling.max_rounds=2"],
                                      ["model.gradient_checkpointing=true"]],
                         ids=["adapter-layers", "merged-copy", "dynamic-sampling", "checkpointing"])
def test_trls_loss_gets_the_sampled_tokens_own_logprobs_and_per_token_advantages(tmp_path, tiny_model_dir,
                                                                                monkeypatch, capsys, settings):
    """train.rollout_off_policy_correction in grpo train: every batch reaches TRL's loss with the loop's
    log-probabilities and per-token advantages. On a CPU in float32 (no dropout, the merged copy merged exactly) the
    sampler and the training forward compute the same distribution, so the two agree token by token (a misalignment
    by one position, a wrong temperature or a wrong row order would not) and every weight is 1; also through dynamic
    sampling's re-assembled batches."""
    import json

    from trl import GRPOTrainer

    gaps, shapes = [], []
    compute_loss = GRPOTrainer._compute_loss

    def checked(self, model, inputs):
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        ids = torch.cat([prompt_ids, completion_ids], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            own = self._get_per_token_logps_and_entropies(model, ids, mask, completion_ids.shape[1])[0]
        kept = inputs["completion_mask"].bool()
        gaps.append(float((inputs[off_policy.SAMPLER_KEY] - own)[kept].abs().max()))
        shapes.append(tuple(inputs["advantages"].shape) == tuple(completion_ids.shape))
        return compute_loss(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", checked)
    config_file, _ = tiny_run_config(tmp_path, tiny_model_dir, "corrected", "train.max_steps=2",
                                     "train.rollout_decoder=static_loop", "train.rollout_off_policy_correction=true",
                                     "train.temperature=0.7", *settings)
    assert main(["train", str(config_file)]) == 0
    assert len(gaps) == 2 and max(gaps) < 1e-4 and all(shapes), (gaps, shapes)
    assert "each token's advantage weighted by min(p_train / p_sampler, 2)" in capsys.readouterr().out
    steps = [json.loads(line) for line in (tmp_path / "corrected" / "metrics.jsonl").read_text().splitlines()]
    steps = [step for step in steps if "step_time" in step]
    assert all(step["off_policy/logp_gap"] < 1e-4 and step["off_policy/capped_fraction"] == 0 for step in steps)
