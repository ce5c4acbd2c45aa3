"""Experiment trackers named in `train.report_to`, checked before the model loads: a tracker that is not installed
is one line naming what to install, not an ImportError from inside transformers' callback setup minutes later."""

from __future__ import annotations

from transformers.integrations import is_tensorboard_available, is_trackio_available, is_wandb_available

from grpo.config import ConfigError

# the same availability checks transformers makes when it builds the tracker callbacks
AVAILABLE = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available, "trackio": is_trackio_available}
INSTALL = {"tensorboard": "pip install tensorboard", "wandb": "pip install 'grpo-pipeline[wandb]'",
           "trackio": "pip install 'grpo-pipeline[trackio]'"}


def check_installed(report_to: list[str]) -> None:
    """Raise ConfigError naming every requested tracker whose package is missing."""
    missing = [name for name in report_to if name != "none" and not AVAILABLE[name]()]
    if missing:
        how = "; ".join(INSTALL[name] for name in missing)
        raise ConfigError(f"train.report_to: {', '.join(missing)} not installed ({how}, or set train.report_to=[none])")
