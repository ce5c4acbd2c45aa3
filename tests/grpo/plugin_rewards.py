"""A user's reward in their own file, loaded by path from YAML (used by the end-to-end test)."""


def length_reward(completions, **kwargs):
    """Longer completions score higher: gives a random tiny model a learning signal with variance."""
    return [len(c if isinstance(c, str) else c[0]["content"]) / 100 for c in completions]


def even_rows_reward(completions, id, **kwargs):
    """The length reward on even-numbered problems, a constant on odd ones: half the groups are flat (no signal)."""
    return [len(c if isinstance(c, str) else c[0]["content"]) / 100 if int(row.rsplit("-", 1)[-1]) % 2 == 0 else 0.0
            for c, row in zip(completions, id)]


def column_probe(completions, level, source_id, completion_ids, trainer_state, **kwargs):
    """Every dataset column and TRL's own keywords arrive by name; 1.0 per sample, so a missing one fails the step."""
    assert len(level) == len(source_id) == len(completion_ids) == len(completions)
    assert trainer_state.global_step >= 0
    return [1.0 if value in ("easy", "hard") else 0.0 for value in level]
