"""RunConfig -> ``trl.GRPOConfig`` + ``trl.GRPOTrainer``; the run directory; resume; before/after evaluation."""

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
from grpo import checkpoints, kvcache, preflight, rundir
from grpo import hub_check, portable, trackers
from grpo.callbacks import HeldOutEval, MetricsJsonl, TimeLimit
from grpo.collapse_guard import CollapseGuard
from grpo.completions_log import COMPLETIONS_FILE, CompletionsJsonl
from grpo.console import config_summary, filter_harmless_warnings, use_compact_progress
from grpo.config import ConfigError, RunConfig
from grpo.errors import RunError
from grpo.nonfinite_guard import NonFiniteGuard
from grpo.dynamic_sampling import with_dynamic_sampling
from grpo.model_card import write_run_card
from grpo.data import load_splits, longest_prompt_tokens
from grpo.evaluate import Scorer, greedy_eval
from grpo.rollout import enable_compiled_decoding
from grpo.models import LoadedModel, cuda_available, device_name, dtype_name, load, resolve_backend
from grpo.report import before_after_table

logger = logging.getLogger("grpo")
ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.jsonl"
EVAL_SAMPLES_DIR = "eval_samples"  # per-problem outputs of the periodic held-out evals, one file per step
PREFLIGHT_ROWS = 8
BEFORE_FILE = "eval_before.json"  # the before-training eval, kept so a resumed run reports the same baseline


def check_trl_runs_here() -> None:
    """TRL 1.15's GRPOTrainer computes log-probs with Triton kernels only; 1.16 falls back to torch on a CPU."""
    trl_version = Version(version("trl"))
    if trl_version < Version("1.16") and not cuda_available():
        raise ConfigError(
            f"trl {trl_version}: its GRPOTrainer needs Triton (a CUDA GPU); on a CPU install trl>=1.16 "
            "(pip install 'trl>=1.16,<1.17')"
        )


def build_grpo_args(config: RunConfig, output_dir: Path, weights: list[float], dtype_name: str):
    from trl import GRPOConfig

    train = config.train
    return GRPOConfig(
        output_dir=str(output_dir),
        seed=config.run.seed,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        optim=train.optim,
        per_device_train_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        num_generations=train.num_generations,
        max_completion_length=train.max_completion_length,
        temperature=train.temperature,
        top_p=train.top_p,
        top_k=train.top_k,
        beta=train.beta,
        epsilon=train.epsilon,
        epsilon_high=train.epsilon_high,
        num_iterations=train.num_iterations,
        loss_type=train.loss_type,
        scale_rewards=train.scale_rewards,
        mask_truncated_completions=train.mask_truncated_completions,
        cache_implementation=train.cache_implementation,
        generation_kwargs=train.generation_kwargs or None,
        reward_weights=weights,
        logging_steps=train.logging_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        report_to=[r for r in train.report_to if r != "none"] or "none",
        bf16=dtype_name == "bfloat16",
        fp16=dtype_name == "float16",
        gradient_checkpointing=False,  # applied (or not) by grpo.models when the model is loaded
        dataloader_num_workers=0,
        log_completions=False,
        shuffle_dataset=config.data.order != "curriculum",  # a curriculum's order is the point
    )


def planned_prompts(config: RunConfig) -> int:
    """Prompts the dataloader hands out over the whole run (what a curriculum ramps over)."""
    train = config.train
    per_step = train.per_device_train_batch_size * train.gradient_accumulation_steps // train.num_generations
    return train.max_steps * per_step


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


def _log_to_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("grpo", "transformers", "trl"):
        logging.getLogger(name).addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _say(message: str) -> None:
    print(f"[grpo] {message}", flush=True)
    logger.info(message)


def _held_out_rows(config: RunConfig, splits) -> list[dict[str, Any]]:
    if splits.held_out is None:
        raise ConfigError("eval.before_after: the data has no held-out split (set data.eval_path or eval_split)")
    count = min(config.eval.num_problems, len(splits.held_out))
    return splits.held_out.select(range(count)).to_list()


def train(config: RunConfig, *, resume: bool = False, overwrite: bool = False, allow_changes: bool = False) -> Path:
    """Run GRPO as configured; returns the run directory. Config problems raise ConfigError before any write.
    ``allow_changes``: resume even with settings that change what the checkpoint means (recorded in the history)."""
    run_dir = config.run_dir
    rundir.check_target(run_dir, resume=resume, overwrite=overwrite)
    checkpoint, changes = None, {}
    if resume:
        changes = rundir.check_resume_matches(run_dir, config, allow_changes=allow_changes)
        checkpoint = _resume_point(run_dir, config.train.max_steps)
        if checkpoint is None:  # finished: nothing to do, nothing changed
            return run_dir
    check_trl_runs_here()
    resolve_backend(config.model)  # a clear error now, not after minutes of loading
    trackers.check_installed(config.train.report_to)
    hub_check.check_model_name(config.model.name)
    filter_harmless_warnings()
    print(config_summary(config), flush=True)  # the full resolved config is saved as RUN/config.yaml
    environment = rundir.environment_info()
    versions = ", ".join(f"{name} {v}" for name, v in environment["versions"].items() if v)
    _say(f"git commit {environment['git_commit'] or 'unknown'}; {versions}")

    _reward_preflight(config)
    trainer, loaded, splits, scorer = _build_trainer(config, run_dir)
    held_out = _held_out_rows(config, splits) if config.eval.before_after else []  # checked before any write

    if resume:
        _prepare_resume(run_dir, config, checkpoint, changes)
    else:
        environment |= {"backend": loaded.backend, "model_path": loaded.path}
        rundir.create(run_dir, config, environment, overwrite=overwrite)
    handler = _log_to_file(run_dir)
    try:
        rundir.write_atomic(run_dir / "grpo_args.json", json.dumps(trainer.args.to_dict(), indent=2, default=str))
        _say(f"run directory: {run_dir}  (backend {loaded.backend}, model {loaded.path})")
        _say(f"data: {len(splits.train)} training prompts; {splits.dropped} prompts over "
             f"{config.data.max_prompt_tokens} tokens {'dropped' if splits.overflow == 'drop' else 'truncated'}"
             + (f"; {splits.invalid} invalid rows skipped (data.skip_invalid)" if splits.invalid else ""))
        before = _before_eval(run_dir, loaded, held_out, scorer, config) if held_out else None
        _train_or_explain_oom(trainer, checkpoint, config, loaded, splits)
        _stop_if_nonfinite(trainer, run_dir)
        _save_adapter(trainer, loaded, run_dir, config)
        if before is not None:
            after, samples = greedy_eval(loaded.model, loaded.tokenizer, held_out, scorer, config.eval.max_new_tokens,
                                         config.eval.batch_size, "eval after")
            table = before_after_table(before, after)
            rundir.write_atomic(run_dir / "before_after.json", json.dumps({"before": before, "after": after}, indent=2))
            rundir.write_atomic(run_dir / "before_after.md", table + "\n")
            rundir.write_atomic(run_dir / "eval_after_samples.jsonl",
                                "".join(json.dumps(s.to_json()) + "\n" for s in samples))
            print("\n" + table + "\n", flush=True)
        write_run_card(run_dir, config)
    finally:
        for name in ("grpo", "transformers", "trl"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()
    return run_dir


def _before_eval(run_dir: Path, loaded: LoadedModel, held_out, scorer, config: RunConfig) -> dict[str, Any]:
    """The base model's held-out eval; a resumed run reuses the first session's (the model before
    ``trainer.train`` loads the checkpoint is the base again, so rerunning would only cost time)."""
    saved = run_dir / BEFORE_FILE
    if saved.is_file():
        _say(f"eval before: reusing {saved.name} from the first session")
        return json.loads(saved.read_text())
    before, _ = greedy_eval(loaded.model, loaded.tokenizer, held_out, scorer, config.eval.max_new_tokens,
                            config.eval.batch_size, "eval before")
    rundir.write_atomic(saved, json.dumps(before, indent=2))
    return before


def _save_adapter(trainer, loaded: LoadedModel, run_dir: Path, config: RunConfig) -> None:
    """Written to a staging folder, then renamed into place: a kill leaves the previous adapter or the new one."""
    staging = run_dir / f".{ADAPTER_DIR}.partial"
    trainer.save_model(str(staging))
    loaded.tokenizer.save_pretrained(staging)
    rundir.replace_dir(staging, run_dir / ADAPTER_DIR)
    portable.name_base_model(run_dir, config.model.name)
    _say(f"adapter saved to {run_dir / ADAPTER_DIR}")


def _stop_if_nonfinite(trainer, run_dir: Path) -> None:
    guard = next((c for c in trainer.callback_handler.callbacks if isinstance(c, NonFiniteGuard)), None)
    if guard is None or guard.problem is None:
        return
    last = checkpoints.newest_complete(run_dir, say=_say)
    kept = f"the last good checkpoint is {last.name}" if last else "no checkpoint was saved before it"
    raise RunError(f"training stopped: {guard.problem}; nothing from that step was saved and {kept}; lower "
                   "train.learning_rate or check the rewards' values, then continue with --resume")


def _prepare_resume(run_dir: Path, config: RunConfig, checkpoint: str, changes: dict) -> None:
    """Once model and data loaded: metrics cut back to the checkpoint, changed settings recorded."""
    step = int(Path(checkpoint).name.rsplit("-", 1)[-1])
    dropped = checkpoints.cut_metrics(run_dir / METRICS_FILE, step, rundir.write_atomic)
    if dropped:
        _say(f"{METRICS_FILE}: dropped {dropped} records after step {step} (they are trained again)")
    if changes:
        rundir.record_config_change(run_dir, config, changes)
        _say("resumed with changed settings (recorded in config_history.jsonl): "
             + ", ".join(f"{key} {old} -> {new}" for key, (old, new) in sorted(changes.items())))


def _build_trainer(config: RunConfig, run_dir: Path):
    """Model, data, rewards and callbacks -> a ready GRPOTrainer (nothing is written to the run directory yet)."""
    loaded: LoadedModel = load(config.model, config.run.seed)
    from trl import GRPOTrainer  # after grpo.models: with Unsloth, its patches must precede TRL's import

    splits = load_splits(config.data, loaded.tokenizer, planned_prompts=planned_prompts(config))
    reward_functions, weights = rewards.resolve(config.rewards, config.reward_context())
    args = build_grpo_args(config, run_dir, weights, dtype_name(loaded.model))
    _kv_preflight(config, loaded, splits.train)
    scorer = Scorer.from_functions(reward_functions, config.rewards)
    callbacks = [NonFiniteGuard(), MetricsJsonl(run_dir / METRICS_FILE)]
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
                                    config.eval.batch_size, config.eval.every_n_steps, run_dir / EVAL_SAMPLES_DIR)
        callbacks.append(held_out_eval)
    completions_log = None
    if config.logging.completions_every:
        completions_log = CompletionsJsonl(run_dir / COMPLETIONS_FILE, config.logging.completions_every)
        callbacks.append(completions_log)
    dynamic = config.train.dynamic_sampling
    trainer_class = with_dynamic_sampling(GRPOTrainer) if dynamic.enabled else GRPOTrainer
    with _tensorboard_dir(run_dir / "tensorboard"):
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
    return trainer, loaded, splits, scorer


def _reward_preflight(config: RunConfig) -> None:
    """Fast mode of `grpo rewards check`: a broken reward stops the run before any generation."""
    stats = preflight.run(config, n=PREFLIGHT_ROWS)
    problems = preflight.violations(stats)
    if problems:
        raise ConfigError("\n".join(f"rewards: preflight failed: {problem}" for problem in problems))
    _say(preflight.summary_line(stats))


def _rollout_plan(config: RunConfig, loaded: LoadedModel, train_rows) -> kvcache.Plan:
    device, dtype = device_name(loaded.model), dtype_name(loaded.model)
    sample = train_rows.select(range(min(256, len(train_rows))))["prompt"]
    longest_prompt = longest_prompt_tokens(loaded.tokenizer, sample)
    train = config.train
    sequences = train.per_device_train_batch_size * train.gradient_accumulation_steps
    return kvcache.plan(loaded.model.config, sequences, longest_prompt, train.max_completion_length, dtype, device)


def _fitting_batch_hint(config: RunConfig, plan: kvcache.Plan) -> str:
    """The largest generation batch (a multiple of num_generations) whose KV cache fits the free memory."""
    train = config.train
    fitting = [n for n in range(train.num_generations, plan.largest_batch() + 1, train.num_generations)]
    return (f"lower train.per_device_train_batch_size x gradient_accumulation_steps to {fitting[-1]} or less"
            if fitting else "lower train.num_generations or train.max_completion_length")


def _kv_preflight(config: RunConfig, loaded: LoadedModel, train_rows) -> None:
    """Refuse a rollout whose KV cache alone cannot fit (weights and activations need memory on top of it)."""
    plan = _rollout_plan(config, loaded, train_rows)
    _say(f"rollout {plan.message()}")
    if not plan.fits:
        raise ConfigError(f"train: the rollout's {plan.message()} does not fit; {_fitting_batch_hint(config, plan)}")


def _train_or_explain_oom(trainer, checkpoint: str | None, config: RunConfig, loaded: LoadedModel, splits) -> None:
    """An out-of-memory step becomes one line with settings that would fit, from the KV-cache arithmetic on the
    memory free once the failed step's tensors are released."""
    import torch

    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        plan = _rollout_plan(config, loaded, splits.train)
        raise RunError(f"out of memory at step {trainer.state.global_step + 1}; the rollout's {plan.message()}; "
                       f"{_fitting_batch_hint(config, plan)} (weights and activations need memory too: halve it if "
                       "that is not enough), or set model.gradient_checkpointing: true") from None


def _resume_point(run_dir: Path, max_steps: int) -> str | None:
    """The newest complete checkpoint to continue from; None (after saying so) when the run already finished."""
    checkpoint = checkpoints.newest_complete(run_dir, say=_say)
    if checkpoint is None:
        raise ConfigError(f"--resume: {run_dir} has no complete checkpoint-* folder yet "
                          "(train.save_steps sets how often)")
    step = checkpoints.checkpoint_step(checkpoint)
    if step >= max_steps and (run_dir / ADAPTER_DIR).is_dir():
        print(f"[grpo] {run_dir} finished at step {step}; raise train.max_steps above {step} to continue "
              "(nothing was changed)", flush=True)
        return None
    _say(f"resuming from {checkpoint.name} (step {step} of {max_steps})")
    return str(checkpoint)
