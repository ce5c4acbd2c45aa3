"""The run directory: refuse to clobber, record what ran (resolved config, versions, git commit).

A run directory carries :data:`MARKER`, written by ``grpo`` when it creates the run; ``--overwrite`` replaces only
directories that carry it, and keeps the old run whole (moved aside) until the new one has written its first files.
"""

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

# The layout: every file and folder of a run directory; other modules import the names from here, so that the
# layout lives in one place.
CONFIG_FILE = "config.yaml"
MARKER = ".grpo-run"  # ownership: only a directory grpo created may be replaced by --overwrite
CONFIG_HISTORY_FILE = "config_history.jsonl"
ENVIRONMENT_FILE = "environment.json"
ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
GRPO_ARGS_FILE = "grpo_args.json"
TENSORBOARD_DIR = "tensorboard"
EVAL_SAMPLES_DIR = "eval_samples"  # per-problem outputs of the periodic held-out evals, one file per step
COMPLETIONS_FILE = "completions.jsonl"
BEFORE_EVAL_JSON = "eval_before.json"  # the before-training eval, kept so a resumed run reports the same baseline
BEFORE_AFTER_JSON = "before_after.json"
BEFORE_AFTER_MD = "before_after.md"
EVAL_AFTER_SAMPLES = "eval_after_samples.jsonl"
WARM_START_JSON = "warm_start.json"  # counts of the rejection-sampling warm start and its fine-tuning loss
WARM_START_EXAMPLES = "warm_start_examples.jsonl"  # the verified answers it fine-tuned on
MODEL_CARD = "README.md"

LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "grpo-pipeline")
# Keys that may change between a run and its resumption (everything else must match).
RESUMABLE_CHANGES = {"train.max_steps", "train.save_steps", "train.logging_steps", "train.time_limit_minutes",
                     "train.stall_report_minutes", "eval.before_after"}


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
    root = Path(__file__).resolve().parents[1]
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
    """Before any work: a new run needs a free directory; --resume needs an existing one; --overwrite needs ours."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"run.name: nothing to resume in {run_dir} (no {CONFIG_FILE})")
        return
    check_writable(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"run.name: {run_dir} already exists; pass --resume to continue it, --overwrite to replace it, "
                "or choose another run.name"
            )
        check_replaceable(run_dir)


def check_replaceable(run_dir: Path) -> None:
    """--overwrite deletes only a run directory grpo created, never a working directory, home or a checkout."""
    resolved = run_dir.resolve()
    here = Path.cwd().resolve()
    if resolved == here or resolved in here.parents or resolved == Path.home().resolve() or (resolved / ".git").exists():
        raise ConfigError(f"--overwrite: refusing to replace {resolved}: it is the current directory, one of its "
                          "parents, the home directory or a repository; choose another run.output_dir/run.name")
    if not (run_dir / MARKER).is_file():
        raise ConfigError(f"--overwrite: {run_dir} is not a grpo run directory (no {MARKER} marker), so nothing in "
                          "it was touched; choose another run.name or remove it yourself")


def check_writable(run_dir: Path) -> None:
    """An unwritable run.output_dir is named now, not after minutes of model loading."""
    existing = next(path for path in (run_dir, *run_dir.parents) if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run.output_dir: cannot create {run_dir}: {existing} is not a writable folder; "
                          "choose another run.output_dir")


def check_resume_matches(run_dir: Path, config: RunConfig, *, allow_changes: bool = False
                         ) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose config changes what the checkpoint means (unless ``allow_changes``: the user asked);
    return the changes (old, new) so they can be recorded."""
    saved = _flatten(load_config(run_dir / CONFIG_FILE).model_dump(mode="json"))
    current = _flatten(config.model_dump(mode="json"))
    changed = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    blocking = [key for key in changed if key not in RESUMABLE_CHANGES]
    if blocking and not allow_changes:
        raise ConfigError(
            f"--resume: the config differs from {run_dir / CONFIG_FILE} in {', '.join(blocking)}; "
            f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change when resuming (or pass --allow-changes)"
        )
    return {key: (saved.get(key), current.get(key)) for key in changed}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat |= _flatten(value, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): data}


def create(run_dir: Path, config: RunConfig, environment: dict[str, Any], *, overwrite: bool) -> None:
    """Create (or replace, with --overwrite) the run directory and write the marker and the resolved config.

    Called once the new run has validated its config and loaded model and data. An old run is moved aside first
    and deleted only once the new run's first files are written; if writing fails, it is put back.
    """
    aside = _move_aside(run_dir) if overwrite and run_dir.exists() else None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / MARKER, json.dumps({"created_by": "grpo", "started": environment.get("started")}))
        write_atomic(run_dir / CONFIG_FILE, to_yaml(config))
        write_atomic(run_dir / ENVIRONMENT_FILE, json.dumps(environment, indent=2, default=str))
    except BaseException:
        if aside is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
            os.replace(aside, run_dir)
        raise
    if aside is not None:
        shutil.rmtree(aside)


def _move_aside(run_dir: Path) -> Path:
    """Rename the old run to a hidden sibling (same file system, so the rename is atomic)."""
    aside = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}")
    os.replace(run_dir, aside)
    return aside


def record_config_change(run_dir: Path, config: RunConfig, changed: dict[str, tuple[Any, Any]]) -> None:
    """On a resume with changed settings: append them to the config history, then rewrite config.yaml, so the
    run directory always describes the run that continues and how it got there."""
    if not changed:
        return
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
             "changes": {key: {"from": old, "to": new} for key, (old, new) in sorted(changed.items())}}
    with open(run_dir / CONFIG_HISTORY_FILE, "a") as stream:
        stream.write(json.dumps(entry) + "\n")
    write_atomic(run_dir / CONFIG_FILE, to_yaml(config))


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers see the old file or the complete new one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _FILE_MODE)  # mkstemp creates 0600; run files get the usual umask-based mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_file_mode()


def replace_dir(staging: Path, final: Path) -> None:
    """Move a completely written folder into place; an existing ``final`` is kept until the new one is there."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}") if final.exists() else None
    if old is not None:
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old)


# --------------------------------------------------------------------------------- who may write the run directory
def create_once(run_dir: Path, config: RunConfig, environment: dict[str, Any], *, overwrite: bool) -> None:
    """:func:`create` under ``accelerate launch``: every process calls it, the main process alone creates (or, with
    --overwrite, deletes and recreates) the directory. The barrier before means no process is still checking the
    old directory while it is deleted; the one after, that none writes into it before it exists."""
    from grpo.train import distributed

    distributed.wait_for_everyone()
    if distributed.is_main_process():
        create(run_dir, config, environment, overwrite=overwrite)
    distributed.wait_for_everyone()


def write_on_main(path: Path, text: str) -> None:
    """:func:`write_atomic` from the main process only (every process holds the same text)."""
    from grpo.train import distributed

    if distributed.is_main_process():
        write_atomic(path, text)
