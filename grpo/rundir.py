"""The run directory: refuse to clobber, record what ran (resolved config, versions, git commit)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from grpo.config import ConfigError, RunConfig, load_config, to_yaml

CONFIG_FILE = "config.yaml"
ENVIRONMENT_FILE = "environment.json"
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "grpo-pipeline")
# Keys that may change between a run and its resumption (everything else must match).
RESUMABLE_CHANGES = {"train.max_steps", "train.save_steps", "train.logging_steps", "train.time_limit_minutes",
                     "eval.before_after"}


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str | None:
    """The commit of the code that runs (the package's checkout), with '+dirty' when it has local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def environment_info(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "versions": library_versions(),
        **(extra or {}),
    }


def check_target(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Before any work: a new run needs a free directory; --resume needs an existing one."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"run.name: nothing to resume in {run_dir} (no {CONFIG_FILE})")
        return
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"run.name: {run_dir} already exists; pass --resume to continue it, --overwrite to replace it, "
            "or choose another run.name"
        )


def check_resume_matches(run_dir: Path, config: RunConfig) -> None:
    saved = _flatten(load_config(run_dir / CONFIG_FILE).model_dump(mode="json"))
    current = _flatten(config.model_dump(mode="json"))
    changed = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    blocking = [key for key in changed if key not in RESUMABLE_CHANGES]
    if blocking:
        raise ConfigError(
            f"--resume: the config differs from {run_dir / CONFIG_FILE} in {', '.join(blocking)}; "
            f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change when resuming"
        )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat |= _flatten(value, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): data}


def create(run_dir: Path, config: RunConfig, environment: dict[str, Any], *, overwrite: bool) -> None:
    """Create (or replace, with --overwrite) the run directory and write the resolved config into it."""
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG_FILE, to_yaml(config))
    write_atomic(run_dir / ENVIRONMENT_FILE, json.dumps(environment, indent=2, default=str))


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers see the old file or the complete new one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------- layout, and who may write it
# Every file and folder of a run directory besides config.yaml and environment.json (above); other modules import
# the names from here, so that the layout lives in one place.
ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
GRPO_ARGS_FILE = "grpo_args.json"
TENSORBOARD_DIR = "tensorboard"
EVAL_SAMPLES_DIR = "eval_samples"  # per-problem outputs of the periodic held-out evals, one file per step
COMPLETIONS_FILE = "completions.jsonl"
BEFORE_AFTER_JSON = "before_after.json"
BEFORE_AFTER_MD = "before_after.md"
EVAL_AFTER_SAMPLES = "eval_after_samples.jsonl"
MODEL_CARD = "README.md"


def create_once(run_dir: Path, config: RunConfig, environment: dict[str, Any], *, overwrite: bool) -> None:
    """:func:`create` under ``accelerate launch``: every process calls it, the main process alone creates (or, with
    --overwrite, deletes and recreates) the directory. The barrier before means no process is still checking the
    old directory while it is deleted; the one after, that none writes into it before it exists."""
    from grpo import distributed

    distributed.wait_for_everyone()
    if distributed.is_main_process():
        create(run_dir, config, environment, overwrite=overwrite)
    distributed.wait_for_everyone()


def write_on_main(path: Path, text: str) -> None:
    """:func:`write_atomic` from the main process only (every process holds the same text)."""
    from grpo import distributed

    if distributed.is_main_process():
        write_atomic(path, text)
