"""RunConfig -> ``trl.GRPOTrainer`` (its arguments: :mod:`grpo.trl_args`); the run directory; resume; before/after
evaluation; the same under ``accelerate launch`` with several processes."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from packaging.version import Version

import rewards
from grpo import distributed, hub_check, kvcache, portable, preflight, rundir, trackers
from grpo.callbacks import HeldOutEval, MetricsJsonl, TimeLimit
from grpo.collapse_guard import CollapseGuard
from grpo.completions_log import CompletionsJsonl
from grpo.console import config_summary, filter_harmless_warnings, use_compact_progress
from grpo.config import ConfigError, RunConfig
from grpo.data import load_splits, longest_prompt_tokens
from grpo.dynamic_sampling import with_dynamic_sampling
from grpo.evaluate import Scorer, greedy_eval
from grpo.model_card import write_run_card
from grpo.models import (LoadedModel, cuda_available, load, load_tokenizer, prepare_backend, resolve_path,
                         torch_dtype)
from grpo.report import before_after_table
from grpo.rollout import enable_compiled_decoding
from grpo.trl_args import build_grpo_args, planned_prompts, rollout_sequences

logger = logging.getLogger("grpo")
PREFLIGHT_ROWS = 8


def check_trl_runs_here() -> None:
    """TRL 1.15's GRPOTrainer computes log-probs with Triton kernels only; 1.16 falls back to torch on a CPU."""
    trl_version = Version(version("trl"))
    if trl_version < Version("1.16") and not cuda_available():
        raise ConfigError(
            f"trl {trl_version}: its GRPOTrainer needs Triton (a CUDA GPU); on a CPU install trl>=1.16 "
            "(pip install 'trl>=1.16,<1.17')"
        )


@contextmanager
def _tensorboard_dir(path: Path):
    """TRL/transformers' TensorBoard callback reads its folder from this variable when it is built."""
    previous = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous


def _log_to_file(run_dir: Path) -> logging.Handler | None:
    """``train.log`` of the main process (the others log to their console only)."""
    if not distributed.is_main_process():
        return None
    handler = logging.FileHandler(run_dir / rundir.LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("grpo", "transformers", "trl"):
        logging.getLogger(name).addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _say(message: str) -> None:
    """A line on the console and in train.log, once (from the main process)."""
    if distributed.is_main_process():
        print(f"[grpo] {message}", flush=True)
        logger.info(message)


def _held_out_rows(config: RunConfig, splits) -> list[dict[str, Any]]:
    if splits.held_out is None:
        raise ConfigError("eval.before_after: the data has no held-out split (set data.eval_path or eval_split)")
    count = min(config.eval.num_problems, len(splits.held_out))
    return splits.held_out.select(range(count)).to_list()


def train(config: RunConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Run GRPO as configured; returns the run directory. Config problems raise ConfigError before any write.

    Under ``accelerate launch`` every process runs this: each checks, loads its model onto its own device and
    trains; the main process alone creates and writes the run directory and runs the evaluations
    (:mod:`grpo.distributed`, :func:`grpo.rundir.create_once`).
    """
    run_dir = config.run_dir
    rundir.check_target(run_dir, resume=resume, overwrite=overwrite)
    checkpoint = None
    if resume:
        rundir.check_resume_matches(run_dir, config)
        checkpoint = _last_checkpoint(run_dir)
    check_trl_runs_here()
    prepare_backend(config.model)  # a clear error now, not after minutes of loading; Unsloth before TRL
    trackers.check_installed(config.train.report_to)
    hub_check.check_model_name(config.model.name)
    filter_harmless_warnings()
    reward_functions, weights = rewards.resolve(config.rewards, config.reward_context())
    # Before the model: under DeepSpeed ZeRO-3 the arguments tell transformers to load the weights partitioned.
    args = build_grpo_args(config, run_dir, weights)
    if distributed.is_main_process():
        print(config_summary(config), flush=True)  # the full resolved config is saved as RUN/config.yaml
    environment = rundir.environment_info()
    versions = ", ".join(f"{name} {v}" for name, v in environment["versions"].items() if v)
    _say(f"git commit {environment['git_commit'] or 'unknown'}; {versions}; {args.world_size} process(es)")
    if resume:
        step = Path(checkpoint).name.removeprefix("checkpoint-")
        _say(f"resuming from {Path(checkpoint).name} (step {step} of {config.train.max_steps})")

    # The data and the reward check before the model, which may take minutes to load; the tokenizer measures prompts.
    with distributed.state().main_process_first():  # an embedded or GGUF model is converted into the cache once
        tokenizer = load_tokenizer(resolve_path(config.model.name))
    splits = load_splits(config.data, tokenizer, planned_prompts=planned_prompts(args))
    _reward_preflight(config, reward_functions, splits.train)
    loaded: LoadedModel = load(config.model, config.run.seed)
    _kv_preflight(config, args, loaded, splits.train)
    if not resume:
        environment |= {"backend": loaded.backend, "model_path": loaded.path, "processes": args.world_size}
        rundir.create_once(run_dir, config, environment, overwrite=overwrite)
    trainer, scorer = _build_trainer(config, args, loaded, splits, reward_functions)
    handler = _log_to_file(run_dir)
    try:
        rundir.write_on_main(run_dir / rundir.GRPO_ARGS_FILE, json.dumps(trainer.args.to_dict(), indent=2, default=str))
        _say(f"run directory: {run_dir}  (backend {loaded.backend}, model {loaded.path})")
        _say(f"data: {len(splits.train)} training prompts; {splits.dropped} prompts over "
             f"{config.data.max_prompt_tokens} tokens {'dropped' if splits.overflow == 'drop' else 'truncated'}")
        held_out = _held_out_rows(config, splits) if config.eval.before_after else []
        before = _eval_once(trainer, config, held_out, scorer, "eval before") if held_out and not resume else None
        trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model(str(run_dir / rundir.ADAPTER_DIR))  # every process: ZeRO-3 gathers; the main one writes
        if distributed.is_main_process():
            portable.name_base_model(run_dir, config.model.name)
            loaded.tokenizer.save_pretrained(run_dir / rundir.ADAPTER_DIR)
        _say(f"adapter saved to {run_dir / rundir.ADAPTER_DIR}")
        if held_out and not resume:
            after = _eval_once(trainer, config, held_out, scorer, "eval after")
            if after is not None:
                _write_before_after(run_dir, before[0], *after)
        if distributed.is_main_process():
            write_run_card(run_dir, config)
    finally:
        if handler is not None:
            for name in ("grpo", "transformers", "trl"):
                logging.getLogger(name).removeHandler(handler)
            handler.close()
    return run_dir


def _eval_once(trainer, config: RunConfig, rows, scorer: Scorer, description: str):
    """Greedy eval of the policy on the main process ((summary, samples)); None on the others."""
    return distributed.on_main_process(trainer, lambda model: greedy_eval(
        model, trainer.processing_class, rows, scorer, config.eval.max_new_tokens, config.eval.batch_size,
        description))


def _write_before_after(run_dir: Path, before: dict[str, Any], after: dict[str, Any], samples) -> None:
    table = before_after_table(before, after)
    rundir.write_atomic(run_dir / rundir.BEFORE_AFTER_JSON, json.dumps({"before": before, "after": after}, indent=2))
    rundir.write_atomic(run_dir / rundir.BEFORE_AFTER_MD, table + "\n")
    rundir.write_atomic(run_dir / rundir.EVAL_AFTER_SAMPLES, "".join(json.dumps(s.to_json()) + "\n" for s in samples))
    print("\n" + table + "\n", flush=True)


def _build_trainer(config: RunConfig, args, loaded: LoadedModel, splits, reward_functions):
    """The GRPOTrainer with the pipeline's callbacks; files are written by the main process only."""
    from trl import GRPOTrainer  # after grpo.models: with Unsloth, its patches must precede TRL's import

    run_dir = config.run_dir
    scorer = Scorer.from_functions(reward_functions, config.rewards)
    callbacks = [MetricsJsonl(run_dir / rundir.METRICS_FILE)]
    if config.train.collapse_guard.enabled:  # before MetricsJsonl, so its warning count is recorded
        kinds = {spec.name: rewards.kind_of(spec.name) for spec in config.rewards}
        callbacks.insert(0, CollapseGuard(
            config.train.collapse_guard,
            correctness=[rewards.display_name(n) for n, kind in kinds.items() if kind == "correctness"],
            shaping=[rewards.display_name(n) for n, kind in kinds.items() if kind != "correctness"]))
    if config.train.time_limit_minutes:
        callbacks.append(TimeLimit(config.train.time_limit_minutes))
    held_out_eval = None
    if config.eval.every_n_steps:
        held_out_eval = HeldOutEval(_held_out_rows(config, splits), scorer, config.eval.max_new_tokens,
                                    config.eval.batch_size, config.eval.every_n_steps,
                                    run_dir / rundir.EVAL_SAMPLES_DIR)
        callbacks.append(held_out_eval)
    completions_log = None
    if config.logging.completions_every:
        completions_log = CompletionsJsonl(run_dir / rundir.COMPLETIONS_FILE, config.logging.completions_every)
        callbacks.append(completions_log)
    dynamic = config.train.dynamic_sampling
    trainer_class = with_dynamic_sampling(GRPOTrainer) if dynamic.enabled else GRPOTrainer
    with _tensorboard_dir(run_dir / rundir.TENSORBOARD_DIR):
        trainer = trainer_class(model=loaded.model, reward_funcs=reward_functions, args=args,
                                train_dataset=splits.train, processing_class=loaded.tokenizer, callbacks=callbacks)
    if dynamic.enabled:
        trainer.dynamic_max_rounds = dynamic.max_rounds
    if held_out_eval is not None:
        held_out_eval.attach(trainer)
    if completions_log is not None:
        completions_log.attach(trainer)
    use_compact_progress(trainer)
    if loaded.backend == "hf" and enable_compiled_decoding(trainer, config.train.cache_implementation):
        _say("rollouts: static KV cache with compiled decoding (the first step includes compilation)")
    return trainer, scorer


def _reward_preflight(config: RunConfig, functions, train_rows) -> None:
    """Fast mode of `grpo rewards check`, on the rewards and training rows this run built: a broken reward stops
    the run before any generation."""
    rows = train_rows.select(range(min(PREFLIGHT_ROWS, len(train_rows)))).to_list()
    stats = preflight.on_rows(functions, config.rewards, rows)
    problems = preflight.violations(stats)
    if problems:
        raise ConfigError("\n".join(f"rewards: preflight failed: {problem}" for problem in problems))
    _say(preflight.summary_line(stats))


def _kv_preflight(config: RunConfig, args, loaded: LoadedModel, train_rows) -> None:
    """Refuse a rollout whose KV cache alone cannot fit (weights and activations need memory on top of it), on the
    device this process's rollouts run on (its GPU under accelerate launch, wherever the model was loaded). vLLM
    rollouts keep their cache in vLLM's own memory budget, so there is nothing to check."""
    if args.use_vllm:
        return
    dtype = str(torch_dtype(config.model)).removeprefix("torch.")
    sample = train_rows.select(range(min(256, len(train_rows))))["prompt"]
    longest_prompt = longest_prompt_tokens(loaded.tokenizer, sample)
    sequences = rollout_sequences(args)
    plan = kvcache.plan(loaded.model.config, sequences, longest_prompt, config.train.max_completion_length, dtype,
                        str(args.device))
    _say(f"rollout {plan.message()}")
    if not plan.fits:
        largest = plan.largest_batch()
        fitting = [n for n in range(config.train.num_generations, largest + 1, config.train.num_generations)]
        hint = (f"lower train.per_device_train_batch_size x gradient_accumulation_steps to {fitting[-1]}"
                if fitting else "lower train.num_generations or train.max_completion_length")
        raise ConfigError(f"train: the rollout's {plan.message()} does not fit; {hint}")


def _last_checkpoint(run_dir: Path) -> str:
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(str(run_dir))
    if checkpoint is None:
        raise ConfigError(f"--resume: {run_dir} has no checkpoint-* folder yet (train.save_steps sets how often)")
    return checkpoint
