"""A user's reward in their own file, loaded by path from YAML (used by the end-to-end test)."""


def length_reward(completions, **kwargs):
    """Longer completions score higher: gives a random tiny model a learning signal with variance."""
    return [len(c if isinstance(c, str) else c[0]["content"]) / 100 for c in completions]
