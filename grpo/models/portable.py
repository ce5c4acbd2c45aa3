"""Settings normalised when a config is read, so a run directory's saved config.yaml means the same thing from
any working directory and after the run is copied elsewhere: ``~`` expanded in every path, a reward given as a
relative ``file.py:function`` made absolute (importable ``package.module:function`` specs stay as they are)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import AfterValidator

T = TypeVar("T", str, Path, None)


def expand_home(value: T) -> T:
    """``~/data`` -> ``/home/me/data``; hub ids and embedded names do not start with ``~`` and pass unchanged."""
    if isinstance(value, Path):
        return value.expanduser()
    if isinstance(value, str) and value.startswith("~"):
        return str(Path(value).expanduser())
    return value


def absolute_reward_file(spec: str) -> str:
    """``my_rewards.py:concise`` -> ``/abs/path/my_rewards.py:concise``, resolved against the working directory
    at load time, which is where the user meant it."""
    target, separator, attribute = spec.rpartition(":")
    if separator and target.endswith(".py"):
        return f"{Path(target).expanduser().resolve()}:{attribute}"
    return spec


HomePath = Annotated[Path, AfterValidator(expand_home)]
HomeStr = Annotated[str, AfterValidator(expand_home)]
OptionalHomeStr = Annotated["str | None", AfterValidator(expand_home)]
RewardName = Annotated[str, AfterValidator(absolute_reward_file)]


def name_base_model(run_dir: Path, model_name: str) -> None:
    """Write ``model.name`` (hub id, embedded name such as ``smollm2-135m-instruct``, or folder) as the
    ``base_model_name_or_path`` of the run's adapter and checkpoints: PEFT records the folder it loaded from,
    which for embedded and GGUF models is a cache path on this machine. ``grpo`` resolves the name anywhere."""
    import json

    from grpo.rundir import ADAPTER_DIR  # here: grpo.rundir imports grpo.config, which imports this module

    for file in [run_dir / ADAPTER_DIR / "adapter_config.json", *run_dir.glob("checkpoint-*/adapter_config.json")]:
        if file.is_file():
            adapter_config = json.loads(file.read_text())
            adapter_config["base_model_name_or_path"] = model_name
            staging = file.with_name(f".{file.name}.partial")  # renamed into place: a kill never tears it
            staging.write_text(json.dumps(adapter_config, indent=2) + "\n")
            staging.replace(file)
