"""grpo.train.off_policy: the loop's sampled-token log-probabilities reach TRL's loss as its old policy, paired
with the right rows and positions; batches the loop did not decode keep TRL's own treatment."""

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


class _Corrected(off_policy.OffPolicyCorrectionMixin, _Trainer):
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
    assert wider["old_per_token_logps"].tolist() == [[-0.5, -1.0, -2.0, 0.0, 0.0], [-0.25, 0.0, 0.0, 0.0, 0.0]]
    narrower = trainer_with(2, 2, decoded)._generate_and_score_completions({})
    assert narrower["old_per_token_logps"].tolist() == [[-0.5, -1.0], [-0.25, 0.0]]


def test_a_batch_the_loop_did_not_decode_keeps_trls_treatment(trainer_with):
    assert "old_per_token_logps" not in trainer_with(2, 3, None)._generate_and_score_completions({})


def test_rows_that_do_not_pair_up_are_an_error(trainer_with):
    with pytest.raises(RuntimeError, match="decoded 2 rows for a batch of 3 completions"):
        trainer_with(3, 3, torch.zeros(2, 3))._generate_and_score_completions({})


@pytest.mark.parametrize("merged", [False, True], ids=["adapter-layers", "merged-copy"])
def test_the_off_policy_correction_hands_trl_the_sampled_tokens_own_logprobs(tmp_path, tiny_model_dir, monkeypatch,
                                                                            capsys, merged):
    """train.rollout_off_policy_correction: every training batch reaches TRL's loss with ``old_per_token_logps``
    from the loop. On a CPU in float32 (no dropout, one gradient step per batch, the merged copy merged exactly) the
    sampler and the training forward compute the same distribution, so the two agree token by token: a
    misalignment by one position, a wrong temperature or a wrong row order would not."""
    from trl import GRPOTrainer

    seen = []
    compute_loss = GRPOTrainer._compute_loss

    def checked(self, model, inputs):
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        ids = torch.cat([prompt_ids, completion_ids], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            own = self._get_per_token_logps_and_entropies(model, ids, mask, completion_ids.shape[1])[0]
        kept = inputs["completion_mask"].bool()
        seen.append(float((inputs["old_per_token_logps"] - own)[kept].abs().max()))
        return compute_loss(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", checked)
    config_file, _ = tiny_run_config(tmp_path, tiny_model_dir, "corrected", "train.max_steps=2",
                                     "train.rollout_decoder=static_loop", "train.rollout_off_policy_correction=true",
                                     "train.temperature=0.7", f"train.rollout_merged_lora={str(merged).lower()}")
    assert main(["train", str(config_file)]) == 0
    assert len(seen) == 2 and max(seen) < 1e-4, seen
    assert "off-policy correction" in capsys.readouterr().out
