"""Several processes run one ``grpo train`` under ``accelerate launch`` (one per GPU). These helpers say which
process may write and where each one's model lives, so that the rest of the code states the rule once.

On a machine without CUDA the state is built with ``cpu=True``: only then does accelerate join the launched
processes through gloo; without it every process would train alone, on its own copy of the run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def state():
    """accelerate's process layout (a singleton; one process when started without a launcher)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def name_the_cpu_plainly() -> None:
    """Without CUDA, make accelerate call each process's device ``cpu`` rather than ``cpu:N``: transformers resumes
    an optimizer with ``torch.load(map_location=args.device)``, and torch cannot map storage to ``cpu:1``. Must run
    before the trainer arguments set up the processes (they read ``ACCELERATE_TORCH_DEVICE`` then)."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")


def launched_processes() -> int:
    """Processes the launcher started (``WORLD_SIZE``), readable before anything is initialised: config checks
    need the global batch before a process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return state().is_main_process


def local_device_index() -> int:
    """This process's GPU on its machine (``device_map={"": index}`` puts a 4-bit model there, not on GPU 0)."""
    return state().local_process_index


def wait_for_everyone() -> None:
    state().wait_for_everyone()


def main_process_says(flag: bool) -> bool:
    """The main process's ``flag``, on every process (one small broadcast; no communication in a single process).

    For decisions that every process must take at the same step although each computes its own answer, such as a
    wall-clock limit: each process's clock started at a slightly different moment, and one stopping a step
    before the others would leave them waiting in a gradient all-reduce that never comes."""
    import torch
    from accelerate.utils import broadcast

    current = state()
    if current.num_processes == 1:
        return flag
    decision = torch.tensor([1 if flag else 0], device=current.device)
    return bool(broadcast(decision, from_process=0).item())


@contextmanager
def generation_model(trainer):
    """The policy ready for ``generate`` as TRL's rollouts get it: DDP unwrapped, ZeRO-3 parameters gathered.

    Every process must enter, because gathering ZeRO-3 parameters is collective. The gather is forced on (even with
    ``ds3_gather_for_generation: false``): generation on one process with sharded parameters would wait forever
    for the others.
    """
    from trl.models import unwrap_model_for_generation

    with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                     gather_deepspeed3_params=True) as model:
        yield model


def on_main_process(trainer, work: Callable[[Any], T]) -> T | None:
    """``work(model)`` on the main process only, inside :func:`generation_model`; the other processes wait.
    Returns the result on the main process, None elsewhere. Evaluations run once this way."""
    with generation_model(trainer) as model:
        result = work(model) if trainer.accelerator.is_main_process else None
    trainer.accelerator.wait_for_everyone()
    return result
