"""Data sources and prompts: synthetic, GSM8K from the local copy, files with a column mapping; prompt limits."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from grpo.config import ConfigError, DataSection, load_config
from grpo.data.splits import build_messages, load_splits
from rewards.math import parse_reference


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_synthetic_rows_are_conversational_with_answer_column(tokenizer):
    data = DataSection(system_prompt="Be brief.", synthetic={"train_size": 20, "eval_size": 5})
    splits = load_splits(data, tokenizer)
    row = splits.train[0]
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": row["question"]}]
    assert row["answer"] == str(int(row["answer"]))
    assert len(splits.train) == 20 and len(splits.held_out) == 5
    assert not set(splits.train["question"]) & set(splits.held_out["question"])


def test_empty_system_prompt_gives_user_turn_only():
    assert build_messages("", "What is 1 + 1?") == [{"role": "user", "content": "What is 1 + 1?"}]


def test_gsm8k_from_local_folder(tokenizer, gsm8k_dir):
    data = DataSection(source="gsm8k", path=str(gsm8k_dir), max_prompt_tokens=4096)
    splits = load_splits(data, tokenizer, max_train_samples=30)
    assert len(splits.train) == 30
    assert len(splits.held_out) == len((gsm8k_dir / "test.jsonl").read_text().splitlines())
    first = splits.held_out[0]
    assert first["question"].startswith("Janet")
    assert parse_reference(first["answer"]) == "18"  # the reference keeps GSM8K's '#### 18' solution


def test_jsonl_file_with_column_mapping(tmp_path, tokenizer):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {i} + 1?", "solution": str(i + 1)}) + "\n"
                            for i in range(6)))
    config = load_config(None, ["data.source=file", f"data.path={path}", f"data.eval_path={path}",
                                "data.question_column=problem", "data.answer_column=solution"])
    splits = load_splits(config.data, tokenizer)
    assert splits.train["question"][2] == "What is 2 + 1?"
    assert splits.train["answer"][2] == "3"


def test_missing_column_names_the_key_and_lists_columns(tmp_path, tokenizer):
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"q": "1+1?", "a": "2"}) + "\n")
    config = load_config(None, ["data.source=file", f"data.path={path}"])
    with pytest.raises(ConfigError, match="data.question_column: column 'question' not in the train data; columns: q, a"):
        load_splits(config.data, tokenizer)


def test_long_prompts_dropped_or_left_truncated(tmp_path, tokenizer):
    path = tmp_path / "problems.jsonl"
    long_question = "apples " * 200 + "What is 2 + 2?"
    path.write_text(json.dumps({"question": long_question, "answer": "4"}) + "\n"
                    + json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n")
    base = ["data.source=file", f"data.path={path}", "data.max_prompt_tokens=60", "data.system_prompt=''"]
    dropped = load_splits(load_config(None, base).data, tokenizer)
    assert dropped.train["question"] == ["What is 1 + 1?"] and dropped.dropped == 1

    truncated = load_splits(load_config(None, base + ["data.prompt_overflow=truncate"]).data, tokenizer)
    kept = truncated.train["question"][0]
    assert truncated.dropped == 1 and kept.endswith("What is 2 + 2?") and len(kept) < len(long_question)
    prompt_ids = tokenizer.apply_chat_template(truncated.train["prompt"][0], add_generation_prompt=True)
    assert len(prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids) <= 60


def test_other_columns_are_kept_and_renamed_for_the_rewards(tmp_path, tokenizer):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"q": f"What is {i} + 1?", "a": str(i + 1), "lvl": i % 3,
                                        "prompt": "replaced by the built prompt"}) + "\n" for i in range(4)))
    config = load_config(None, ["data.source=file", f"data.path={path}", f"data.eval_path={path}",
                                "data.columns={q: question, a: answer, lvl: level}"])
    train = load_splits(config.data, tokenizer).train
    assert set(train.column_names) == {"id", "question", "answer", "level", "prompt"}
    assert train["level"] == [0, 1, 2, 0]
    assert train["prompt"][1][-1]["content"] == "What is 1 + 1?"


def test_unknown_rename_source_is_named(tmp_path, tokenizer):
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    config = load_config(None, ["data.source=file", f"data.path={path}", "data.columns={problem: question}"])
    with pytest.raises(ConfigError, match="data.columns: problem not in the train data; columns: question, answer"):
        load_splits(config.data, tokenizer)


def test_hub_config_name_reaches_load_dataset(monkeypatch, tokenizer):
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return Dataset.from_list([{"question": "1+1?", "answer": "2"}])

    monkeypatch.setattr("grpo.data.splits.load_dataset", fake_load_dataset)
    config = load_config(None, ["data.source=hub", "data.path=org/set", "data.config=subset"])
    load_splits(config.data, tokenizer)
    assert calls == [("org/set", "subset", "train"), ("org/set", "subset", "test")]


def test_skip_invalid_drops_null_and_missing_answers_with_a_count(tmp_path):
    import json

    from grpo.config import DataSection
    from grpo.data.splits import _load

    rows = [{"question": "What is 1 + 1?", "answer": "2"}, {"question": "What is 2 + 2?", "answer": None},
            {"question": "What is 3 + 3?"}, {"question": None, "answer": "4"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    train, _, invalid = _load(DataSection(source="file", path=str(path), skip_invalid=True))
    assert invalid == 3 and train["answer"] == ["2"]


def test_datasets_cache_follows_grpo_cache_dir(tmp_path, monkeypatch):
    from grpo.config import DataSection
    from grpo.data.splits import load_raw

    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "What is 1 + 1?", "answer": "2"}\n')
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    load_raw(DataSection(source="file", path=str(path)))
    assert any((tmp_path / "cache" / "datasets").iterdir())
