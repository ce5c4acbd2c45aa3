"""The registry: names, import paths, file paths, params, and the signature contract."""

from __future__ import annotations

import pickle
import sys
import textwrap

import pytest

import rewards
from rewards.registry import RewardSpecError, register


def test_available_lists_the_builtins():
    assert {"math_correctness", "answer_line", "think_answer_strict", "think_answer_soft", "tag_count",
            "integer_answer", "overlong_penalty", "repetition_penalty"} <= set(rewards.available())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(RewardSpecError, match=r"unknown reward 'nope'; available: .*math_correctness"):
        rewards.get("nope")


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):
        register("math_correctness", kind="custom")(lambda completions, **kwargs: [])


def test_module_path_spec():
    assert rewards.get("rewards.format:answer_line") is rewards.get("answer_line")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(textwrap.dedent("""
        from dataclasses import dataclass

        def short(completions, **kwargs):
            return [1.0 if len(c) < 10 else 0.0 for c in completions]

        def scaled(completions, scale=1.0, **kwargs):
            return [scale for _ in completions]

        def no_kwargs(completions):
            return [0.0 for _ in completions]

        def no_completions(texts, **kwargs):
            return []

        NOT_CALLABLE = 3

        @dataclass(frozen=True)
        class Bonus:
            value: float = 0.5
            def __call__(self, completions, **kwargs):
                return [self.value] * len(completions)
    """))
    return path


def test_file_path_function_and_params(user_file):
    assert rewards.build(f"{user_file}:short")(["hi", "a long completion"]) == [1.0, 0.0]
    assert rewards.build(f"{user_file}:scaled", {"scale": 2.0})(["x"]) == [2.0]
    assert rewards.build(f"{user_file}:Bonus", {"value": 0.25})(["x", "y"]) == [0.25, 0.25]


def test_user_rewards_are_picklable(user_file):
    for reward in (rewards.build(f"{user_file}:short"), rewards.build(f"{user_file}:scaled", {"scale": 3.0})):
        assert pickle.loads(pickle.dumps(reward))(["x"]) == reward(["x"])


@pytest.mark.parametrize(
    ("attribute", "params", "message"),
    [
        ("missing", {}, "has no attribute 'missing'"),  # typo in the function name
        ("NOT_CALLABLE", {}, "is not callable"),  # not a function
        ("no_kwargs", {}, "cannot take completions and \\*\\*kwargs"),  # signature without **kwargs
        ("no_completions", {}, "cannot take completions and \\*\\*kwargs"),  # no completions parameter
        ("short", {"bogus": 1}, "unknown params \\['bogus'\\]"),  # params the function does not take
        ("Bonus", {"bogus": 1}, "bad params"),  # params the dataclass does not take
    ],
)
def test_plugin_errors_are_clear(user_file, attribute, params, message):
    with pytest.raises(RewardSpecError, match=message):
        rewards.build(f"{user_file}:{attribute}", params)


def test_import_failures_are_reported(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(RewardSpecError, match="cannot import .*ModuleNotFoundError"):
        rewards.get(f"{broken}:f")
    with pytest.raises(RewardSpecError, match="file does not exist"):
        rewards.get(f"{tmp_path / 'absent.py'}:f")
    with pytest.raises(RewardSpecError, match="cannot import 'no_such_pkg.mod'"):
        rewards.get("no_such_pkg.mod:f")


def test_context_fills_unset_dataclass_fields():
    reward = rewards.build("overlong_penalty", {}, {"max_completion_length": 64, "unrelated": 1})
    assert reward.max_completion_length == 64
    assert rewards.build("overlong_penalty", {"max_completion_length": 8}, {"max_completion_length": 64}).max_completion_length == 8


def test_entry_points_register_installed_rewards(monkeypatch, user_file):
    from importlib.metadata import EntryPoint

    import rewards.registry as registry

    sys.path.insert(0, str(user_file.parent))
    try:
        point = EntryPoint(name="my_short", value="my_rewards:short", group=registry.ENTRY_POINT_GROUP)
        monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
        registry._load_entry_points.cache_clear()
        assert "my_short" in rewards.available()
        assert rewards.get("my_short")(["hi"]) == [1.0]
    finally:
        sys.path.remove(str(user_file.parent))
        registry._REGISTRY.pop("my_short", None)
        registry._load_entry_points.cache_clear()


def test_factory_kwargs_call_the_factory(tmp_path):
    file = tmp_path / "factories.py"
    file.write_text("def get_length_cap(limit):\n"
                    "    def length_cap(completion_ids, **kwargs):\n"
                    "        return [float(len(ids) <= limit) for ids in completion_ids]\n"
                    "    return length_cap\n")
    reward = rewards.build(f"{file}:get_length_cap", kwargs={"limit": 2})
    assert reward(completions=["a", "b"], completion_ids=[[1, 2], [1, 2, 3]]) == [1.0, 0.0]
    with pytest.raises(RewardSpecError, match="factory call with kwargs {'limt': 2} failed"):
        rewards.build(f"{file}:get_length_cap", kwargs={"limt": 2})
