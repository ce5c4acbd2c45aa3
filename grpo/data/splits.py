"""Datasets and prompts: every source becomes rows ``{"prompt": [messages], "answer": str, "question": str, "id"}``.

``prompt`` is TRL's conversational format (system prompt + user question); TRL applies the model's chat template.
``answer`` travels as a dataset column, which TRL hands to every reward as the ``answer=`` keyword. Prompts
longer than ``data.max_prompt_tokens`` (after the chat template) are dropped or left-truncated here, because
TRL 1.x no longer truncates prompts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, load_dataset

from grpo.config import ConfigError, DataSection
from grpo.data.curriculum import ramp_order, solution_steps
from grpo.data.data_files import check_data_file
from grpo.data.synthetic import SyntheticSizeError, generate_splits

GSM8K_HUB_ID = "openai/gsm8k"


@dataclass(frozen=True)
class Splits:
    train: Dataset
    held_out: Dataset | None
    dropped: int  # prompts removed (or truncated, with prompt_overflow=truncate) for being too long
    overflow: str
    longest_train_prompt: int  # tokens, chat template included
    invalid: int = 0  # rows without a question or answer, dropped because data.skip_invalid is set


def build_messages(system_prompt: str, question: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": question}]


def prompt_tokens(tokenizer, messages: list[dict[str, str]]) -> int:
    """Length in tokens of a chat prompt as the model sees it (chat template + generation prompt)."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return len(encoded["input_ids"])


def longest_prompt_tokens(tokenizer, prompts: list[list[dict[str, str]]], sample: int = 256) -> int:
    """The longest of the first ``sample`` prompts (the KV-cache estimates need a prompt length, not all of them)."""
    return max(prompt_tokens(tokenizer, messages) for messages in prompts[:sample])


def _synthetic(data: DataSection) -> tuple[Dataset, Dataset]:
    knobs = data.synthetic
    try:
        train, held_out = generate_splits(
            knobs.train_size, knobs.eval_size, min_digits=knobs.min_digits, max_digits=knobs.max_digits,
            num_operations=knobs.num_operations, operations=knobs.operations, word_problems=knobs.word_problems,
            seed=knobs.seed, min_operations=knobs.min_operations, question_template=knobs.question_template,
        )
    except SyntheticSizeError as err:
        raise ConfigError(str(err)) from None

    def rows(problems, split):
        return Dataset.from_list(
            [{"id": f"synthetic-{split}-{i:05d}", "question": p.question, "answer": str(p.answer),
              "operations": p.operations, "digits": p.digits} for i, p in enumerate(problems)]
        )

    return rows(train, "train"), rows(held_out, "held_out")


def _datasets_cache() -> str | None:
    """``GRPO_CACHE_DIR`` moves every grpo cache, the Hugging Face datasets one included (default: HF's own)."""
    root = os.environ.get("GRPO_CACHE_DIR")
    return str(Path(root).expanduser() / "datasets") if root else None


def _gsm8k_split(path: str | None, split: str, config: str | None) -> Dataset:
    """From a local folder holding the original ``<split>.jsonl`` files, else from the hub id."""
    source = path or GSM8K_HUB_ID
    folder = Path(source).expanduser()
    if folder.is_dir():
        file = folder / f"{split}.jsonl"
        if not file.is_file():
            raise ConfigError(f"data.path: {folder} has no {split}.jsonl (splits: train, test)")
        check_data_file(file, "data.path")
        return load_dataset("json", data_files=str(file), split="train", cache_dir=_datasets_cache())
    return load_dataset(source, config or "main", split=split, cache_dir=_datasets_cache())


def _file(path: str, key: str) -> Dataset:
    check_data_file(Path(path).expanduser(), key)
    kind = "parquet" if path.endswith(".parquet") else "json"
    return load_dataset(kind, data_files=str(Path(path).expanduser()), split="train", cache_dir=_datasets_cache())


def _standardize(dataset: Dataset, data: DataSection, split: str) -> tuple[Dataset, int]:
    """Apply ``data.columns`` renames, add ``id``, ``question`` and ``answer``, and keep every other column: TRL
    hands each dataset column to the rewards by name (``solution`` for ``trl.rewards.accuracy_reward``). A source
    ``prompt`` column is dropped, since the prompt is built from the question and the system prompt."""
    missing = [column for column in data.columns if column not in dataset.column_names]
    if missing:
        raise ConfigError(f"data.columns: {', '.join(missing)} not in the {split} data; "
                          f"columns: {', '.join(dataset.column_names)}")
    dataset = dataset.rename_columns(data.columns)
    for role, column in (("question_column", data.question_column), ("answer_column", data.answer_column)):
        if column not in dataset.column_names:
            raise ConfigError(
                f"data.{role}: column {column!r} not in the {split} data; columns: {', '.join(dataset.column_names)}"
            )
    dataset, invalid = _without_invalid_rows(dataset, data, split)
    dataset = dataset.map(
        lambda row, index: {"id": f"{split}-{index:05d}", "question": str(row[data.question_column]),
                            "answer": str(row[data.answer_column])},
        with_indices=True,
        remove_columns=[column for column in ("id", "prompt") if column in dataset.column_names],
    )
    return dataset, invalid


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _without_invalid_rows(dataset: Dataset, data: DataSection, split: str) -> tuple[Dataset, int]:
    """A missing or null question/answer would become the text "None" (and "The answer is none." would score);
    refuse such rows, or drop them when ``data.skip_invalid`` is set; returns the rows kept and how many dropped."""
    bad = [index for index, (question, answer) in
           enumerate(zip(dataset[data.question_column], dataset[data.answer_column]))
           if _blank(question) or _blank(answer)]
    if not bad:
        return dataset, 0
    if not data.skip_invalid:
        row = dataset[bad[0]]
        column = data.question_column if _blank(row[data.question_column]) else data.answer_column
        state = "missing or null" if row[column] is None else "empty"
        raise ConfigError(f"data: {split} row {bad[0] + 1}: {column!r} is {state} ({len(bad)} such rows); fix the "
                          "data or set data.skip_invalid: true to drop them")
    invalid = set(bad)
    kept = dataset.select([index for index in range(len(dataset)) if index not in invalid])
    if len(kept) == 0:
        raise ConfigError(f"data: every {split} row lacks a question or answer; check data.question_column "
                          "and data.answer_column")
    return kept, len(bad)


def load_raw(data: DataSection) -> tuple[Dataset, Dataset | None]:
    """(train, held-out) rows with columns id, question, answer; held-out may be None for a single file."""
    train, held_out, _ = _load(data)
    return train, held_out


def _load(data: DataSection) -> tuple[Dataset, Dataset | None, int]:
    """Like :func:`load_raw`, plus the number of invalid rows dropped under ``data.skip_invalid``."""
    if data.source == "synthetic":
        return *_synthetic(data), 0
    if data.source == "gsm8k":
        train = _gsm8k_split(data.path, data.train_split, data.config)
        held_out = _gsm8k_split(data.path, data.eval_split, data.config)
    elif data.source == "file":
        train = _file(data.path, "data.path")
        held_out = _file(data.eval_path, "data.eval_path") if data.eval_path else None
    else:  # hub
        train = load_dataset(data.path, data.config, split=data.train_split, cache_dir=_datasets_cache())
        held_out = (load_dataset(data.path, data.config, split=data.eval_split, cache_dir=_datasets_cache())
                    if data.eval_split else None)
    train, invalid = _standardize(train, data, "train")
    held_out, invalid_held_out = _standardize(held_out, data, "held_out") if held_out is not None else (None, 0)
    return train, held_out, invalid + invalid_held_out


def add_prompts(dataset: Dataset, data: DataSection, tokenizer) -> tuple[Dataset, int, int]:
    """Add the conversational ``prompt`` column; drop or left-truncate prompts over ``max_prompt_tokens``.

    Returns the dataset, how many prompts were dropped or truncated, and the longest kept prompt in tokens (every
    prompt is measured here anyway; a static rollout cache is sized from it).
    """
    limit = data.max_prompt_tokens

    def fit(question: str) -> tuple[str | None, int]:
        length = prompt_tokens(tokenizer, build_messages(data.system_prompt, question))
        overflow = length - limit
        if overflow <= 0:
            return question, length
        if data.prompt_overflow == "drop":
            return None, 0
        question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
        if overflow >= len(question_ids):
            return None, 0  # the system prompt and template alone exceed the limit
        # Keep the end of the question: in math problems the actual question comes last.
        truncated = tokenizer.decode(question_ids[overflow:], skip_special_tokens=False)
        return truncated, prompt_tokens(tokenizer, build_messages(data.system_prompt, truncated))

    fitted = [fit(q) for q in dataset["question"]]
    questions = [question for question, _ in fitted]
    changed = sum(1 for new, old in zip(questions, dataset["question"]) if new != old)
    keep = [i for i, q in enumerate(questions) if q is not None]
    dataset = dataset.select(keep)
    kept_questions = [questions[i] for i in keep]
    dataset = dataset.remove_columns("question").add_column("question", kept_questions)
    prompts = [build_messages(data.system_prompt, q) for q in kept_questions]
    longest = max((fitted[i][1] for i in keep), default=0)
    return dataset.add_column("prompt", prompts), changed, longest


def curriculum(dataset: Dataset, planned_prompts: int | None) -> Dataset:
    """Rows easiest first (grpo.data.curriculum): synthetic by operations then digits, others by solution steps."""
    if {"operations", "digits"} <= set(dataset.column_names):
        difficulties = list(zip(dataset["operations"], dataset["digits"]))
    else:
        difficulties = [solution_steps(answer) for answer in dataset["answer"]]
    return dataset.select(ramp_order(difficulties, planned_prompts))


def load_splits(data: DataSection, tokenizer, max_train_samples: int | None = None,
                planned_prompts: int | None = None) -> Splits:
    """Train and held-out rows with prompts; ``planned_prompts`` (prompts the run will draw) shapes a curriculum."""
    train, held_out, invalid = _load(data)
    limit = max_train_samples or data.max_train_samples
    if limit is not None and len(train) > limit:
        train = train.select(range(limit))
    if data.order == "curriculum":
        train = curriculum(train, planned_prompts)
    train, changed, longest = add_prompts(train, data, tokenizer)
    if len(train) == 0:
        raise ConfigError(f"data.max_prompt_tokens: {data.max_prompt_tokens} leaves no training prompt; raise it")
    if held_out is not None:
        held_out, _, _ = add_prompts(held_out, data, tokenizer)
    return Splits(train=train, held_out=held_out, dropped=changed, overflow=data.prompt_overflow,
                  longest_train_prompt=longest, invalid=invalid)
