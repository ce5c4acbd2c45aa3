"""Read-checks for local data files, so a broken file is one line naming the file, the line and the fix.

``datasets.load_dataset`` reports an empty file as ``StopIteration`` and a torn line, a non-UTF-8 byte or a file
that is not parquet as a long traceback from inside its builders; these checks run first and name the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

from grpo.config import ConfigError


def check_data_file(path: Path, key: str) -> None:
    """Raise ConfigError (naming ``key``, the file and the line) unless ``path`` holds at least one readable row."""
    if path.suffix == ".parquet":
        _check_parquet(path, key)
    else:
        _check_json(path, key)


def _check_parquet(path: Path, key: str) -> None:
    import pyarrow.parquet as parquet

    try:
        rows = parquet.read_metadata(path).num_rows
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for "not parquet"
        raise ConfigError(f"{key}: {path} is not a readable parquet file ({err}); "
                          "write it with pandas/pyarrow .to_parquet or use .jsonl") from None
    if rows == 0:
        raise ConfigError(f"{key}: {path} has no rows; point {key} at a file with data")


def _check_json(path: Path, key: str) -> None:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{key}: {path} line {line}: byte {raw[err.start]:#x} is not UTF-8; "
                          "re-save the file as UTF-8") from None
    if not text.strip():
        raise ConfigError(f"{key}: {path} is empty; point {key} at a file with one JSON object per line")
    if path.suffix == ".json" and _is_json_document(text):
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ConfigError(f"{key}: {path} line {number}: not valid JSON ({err.msg}); a torn or unfinished "
                              "line? fix or delete it (JSONL: one complete object per line)") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{key}: {path} line {number}: expected a JSON object with question and answer "
                              f"fields, got {type(row).__name__}")


def _is_json_document(text: str) -> bool:
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return isinstance(document, (list, dict))
