"""RunConfig -> ``trl.GRPOTrainer`` (its arguments: :mod:`grpo.train.trl_args`); the run directory; resume; before/after
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
from grpo.train import checkpoints
from grpo.train import distributed
from grpo.models import hub_check
from grpo.eval import kvcache
from grpo.models import portable
from grpo.train import preflight
from grpo import rundir
from grpo.train import trackers
from grpo.train.callbacks import HeldOutEval, MetricsJsonl, StallReport, TimeLimit
from grpo.train.collapse_guard import CollapseGuard
from grpo.train.completions_log import CompletionsJsonl
from grpo.train.console import (UnscoredCompletionWarnings, config_summary, filter_harmless_warnings,
                                use_compact_progress)
from grpo.config import ConfigError, ModelSection, RunConfig
from grpo.data.splits import load_splits, longest_prompt_tokens
from grpo.train.dynamic_sampling import with_dynamic_sampling
from grpo.errors import RunError
from grpo.eval.evaluate import Scorer, greedy_eval
from grpo.models.model_card import write_run_card
from grpo.models.loading import (LoadedModel, cuda_available, load, load_tokenizer, prepare_backend, resolve_path,
                         torch_dtype)
from grpo.train.nonfinite_guard import NonFiniteGuard
from grpo.train import off_policy
from grpo.eval.report import before_after_table
from grpo.train import warm_start
from grpo.train.rollout import enable_compiled_decoding, install_static_loop, static_loop_unsupported
from grpo.train.step_phases import with_step_phases
from grpo.train.trl_args import build_grpo_args, planned_prompts, rollout_sequences

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


def train(config: RunConfig, *, resume: bool = False, overwrite: bool = False, allow_changes: bool = False) -> Path:
    """Run GRPO as configured; returns the run directory. Config problems raise ConfigError before any write.
    ``allow_changes``: resume even with settings that change what the checkpoint means (recorded in the history).

    Under ``accelerate launch`` every process runs this: each checks, loads its model onto its own device and
    trains; the main process alone creates and writes the run directory and runs the evaluations
    (:mod:`grpo.train.distributed`, :func:`grpo.rundir.create_once`).
    """
    run_dir = config.run_dir
    rundir.check_target(run_dir, resume=resume, overwrite=overwrite)
    checkpoint, changes = None, {}
    if resume:
        changes = rundir.check_resume_matches(run_dir, config, allow_changes=allow_changes)
        checkpoint = _resume_point(run_dir, config.train.max_steps)
        if checkpoint is None:  # finished: nothing to do, nothing changed
            return run_dir
    check_trl_runs_here()
    backend = prepare_backend(config.model)  # a clear error now, not after minutes of loading; Unsloth before TRL
    if backend == "unsloth" and config.train.rollout_decoder == "static_loop":
        raise ConfigError("train.rollout_decoder: static_loop needs model.backend hf, and model.backend auto chose "
                          "unsloth on this machine; set model.backend=hf")
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

    # The data and the reward check before the model, which may take minutes to load; the tokenizer measures prompts.
    with distributed.state().main_process_first():  # an embedded or GGUF model is converted into the cache once
        tokenizer = load_tokenizer(resolve_path(config.model.name))
    splits = load_splits(config.data, tokenizer, planned_prompts=planned_prompts(args))
    _reward_preflight(config, reward_functions, splits.train)
    loaded: LoadedModel = load(_model_to_load(config, checkpoint), config.run.seed)
    _kv_preflight(config, args, loaded, splits.train)
    held_out = _held_out_rows(config, splits) if config.eval.before_after else []  # checked before any write
    if resume:
        if distributed.is_main_process():
            _prepare_resume(run_dir, config, checkpoint, changes)
    else:
        environment |= {"backend": loaded.backend, "model_path": loaded.path, "processes": args.world_size}
        rundir.create_once(run_dir, config, environment, overwrite=overwrite)
    trainer, scorer = _build_trainer(config, args, loaded, splits, reward_functions)
    handler = _log_to_file(run_dir)
    try:
        rundir.write_on_main(run_dir / rundir.GRPO_ARGS_FILE, json.dumps(trainer.args.to_dict(), indent=2, default=str))
        _say(f"run directory: {run_dir}  (backend {loaded.backend}, model {loaded.path})")
        _say(f"data: {len(splits.train)} training prompts; {splits.dropped} prompts over "
             f"{config.data.max_prompt_tokens} tokens {'dropped' if splits.overflow == 'drop' else 'truncated'}"
             + (f"; {splits.invalid} invalid rows skipped (data.skip_invalid)" if splits.invalid else ""))
        before = _before_eval(trainer, run_dir, held_out, scorer, config) if held_out else None
        if config.train.warm_start.enabled and checkpoint is None:  # a checkpoint already holds warmed weights
            warm_start.run(loaded.model, loaded.tokenizer, splits.train, scorer, config, run_dir, say=_say)
        _train_or_explain_oom(trainer, checkpoint, config, loaded, splits)
        _stop_if_nonfinite(trainer, run_dir)
        _save_adapter(trainer, loaded, run_dir, config)
        if held_out:
            after = _eval_once(trainer, config, held_out, scorer, "eval after")
            if after is not None:
                _write_before_after(run_dir, before, *after)
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
        description, decoder=config.eval.decoder))


def _before_eval(trainer, run_dir: Path, held_out, scorer: Scorer, config: RunConfig) -> dict[str, Any] | None:
    """The base model's held-out eval (main process; None on the others); a resumed run reuses the first session's
    (the model before ``trainer.train`` loads the checkpoint is the base again, so rerunning would only cost time)."""
    saved = run_dir / rundir.BEFORE_EVAL_JSON
    if saved.is_file():
        _say(f"eval before: reusing {saved.name} from the first session")
        return json.loads(saved.read_text())
    result = _eval_once(trainer, config, held_out, scorer, "eval before")
    if result is None:
        return None
    rundir.write_atomic(saved, json.dumps(result[0], indent=2))
    return result[0]


def _save_adapter(trainer, loaded: LoadedModel, run_dir: Path, config: RunConfig) -> None:
    """Written to a staging folder, then renamed into place: a kill leaves the previous adapter or the new one.
    Every process calls ``save_model`` (ZeRO-3 gathers the weights); the main process writes and renames."""
    staging = run_dir / f".{rundir.ADAPTER_DIR}.partial"
    trainer.save_model(str(staging))
    if distributed.is_main_process():
        loaded.tokenizer.save_pretrained(staging)
        rundir.replace_dir(staging, run_dir / rundir.ADAPTER_DIR)
        portable.name_base_model(run_dir, config.model.name)
    _say(f"adapter saved to {run_dir / rundir.ADAPTER_DIR}")


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
    step = checkpoints.checkpoint_step(Path(checkpoint))
    dropped = checkpoints.cut_metrics(run_dir / rundir.METRICS_FILE, step, rundir.write_atomic)
    if dropped:
        _say(f"{rundir.METRICS_FILE}: dropped {dropped} records after step {step} (they are trained again)")
    if changes:
        rundir.record_config_change(run_dir, config, changes)
        _say(f"resumed with changed settings (recorded in {rundir.CONFIG_HISTORY_FILE}): "
             + ", ".join(f"{key} {old} -> {new}" for key, (old, new) in sorted(changes.items())))


def _write_before_after(run_dir: Path, before: dict[str, Any], after: dict[str, Any], samples) -> None:
    table = before_after_table(before, after)
    rundir.write_atomic(run_dir / rundir.BEFORE_AFTER_JSON, json.dumps({"before": before, "after": after}, indent=2))
    rundir.write_atomic(run_dir / rundir.BEFORE_AFTER_MD, table + "\n")
    rundir.write_atomic(run_dir / rundir.EVAL_AFTER_SAMPLES, "".join(json.dumps(s.to_json()) + "\n" for s in samples))
    print("\n" + table + "\n", flush=True)


def _build_trainer(config: RunConfig, args, loaded: LoadedModel, splits, reward_functions):
    """The GRPOTrainer with the pipeline's callbacks; files are written by the main process only."""
    from trl import GRPOTrainer  # after grpo.models.loading: with Unsloth, its patches must precede TRL's import

    run_dir = config.run_dir
    scorer = Scorer.from_functions(reward_functions, config.rewards)
    callbacks = [NonFiniteGuard(), MetricsJsonl(run_dir / rundir.METRICS_FILE)]
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
                                    run_dir / rundir.EVAL_SAMPLES_DIR, decoder=config.eval.decoder)
        callbacks.append(held_out_eval)
    if config.train.stall_report_minutes:  # after the held-out eval: its clock restarts once a step's eval is done
        callbacks.append(StallReport(config.train.stall_report_minutes))
    completions_log = None
    if config.logging.completions_every:
        completions_log = CompletionsJsonl(run_dir / rundir.COMPLETIONS_FILE, config.logging.completions_every)
        callbacks.append(completions_log)
    dynamic = config.train.dynamic_sampling
    sampling = with_dynamic_sampling if dynamic.enabled else None
    if config.train.rollout_off_policy_correction:  # its weights apply to the batch dynamic sampling assembles
        trainer_class = off_policy.with_off_policy_correction(GRPOTrainer, inside=sampling)
    else:
        trainer_class = sampling(GRPOTrainer) if sampling else GRPOTrainer
    trainer_class = with_step_phases(trainer_class)  # outermost: its rollout time includes the correction's forward
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
    _set_up_rollouts(trainer, config, loaded, splits)
    return trainer, scorer


def _set_up_rollouts(trainer, config: RunConfig, loaded: LoadedModel, splits) -> None:
    """The rollouts' decoder, said in one line. One cache length for the whole run (the longest training prompt
    plus max_completion_length), so that compiled decoding compiles once.

    ``train.rollout_decoder: static_loop`` puts the static decode loop in front of ``model.generate``
    (:func:`grpo.train.rollout.install_static_loop`); ``train.cache_implementation: static`` still enables
    transformers' compiled decoding, which then serves the calls the loop hands to ``model.generate``. Where the
    loop cannot decode TRL's rollouts (another architecture, a setting it does not implement) the line says why and
    ``model.generate`` decodes them as without it.
    """
    cache_len = splits.longest_train_prompt + config.train.max_completion_length
    compiled = loaded.backend == "hf" and enable_compiled_decoding(trainer, config.train.cache_implementation,
                                                                   cache_len)
    if config.train.rollout_decoder == "static_loop":
        if install_static_loop(trainer, cache_len, merge_lora=config.train.rollout_merged_lora,
                               logprobs=config.train.rollout_off_policy_correction):
            on_cuda = trainer.accelerator.device.type == "cuda"  # where training puts the model (DeepSpeed moves
            # it there only when the trainer prepares it, after this line)
            _say(f"rollouts: static decode loop with a static KV cache of {cache_len} tokens, "
                 + ("compiled (the first step includes compilation)" if on_cuda else "eager (no CUDA)")
                 + ("; what it passes on to model.generate uses transformers' compiled static cache" if compiled
                    else "")
                 + ("; off-policy correction: each token's advantage weighted by min(p_train / p_sampler, "
                    f"{off_policy.CAP:g})" if config.train.rollout_off_policy_correction else ""))
            return
        _say(f"rollouts: model.generate, not the static decode loop: {static_loop_unsupported(trainer)}"
             + ("; train.rollout_off_policy_correction does nothing without the loop"
                if config.train.rollout_off_policy_correction else ""))
    if compiled:
        _say(f"rollouts: static KV cache of {cache_len} tokens with compiled decoding (the first step "
             "includes compilation)")


def _reward_preflight(config: RunConfig, functions, train_rows) -> None:
    """Fast mode of `grpo rewards check`, on the rewards and training rows this run built: a broken reward stops
    the run before any generation."""
    rows = train_rows.select(range(min(PREFLIGHT_ROWS, len(train_rows)))).to_list()
    stats = preflight.on_rows(functions, config.rewards, rows)
    problems = preflight.violations(stats)
    if problems:
        raise ConfigError("\n".join(f"rewards: preflight failed: {problem}" for problem in problems))
    _say(preflight.summary_line(stats))


def _model_to_load(config: RunConfig, checkpoint) -> ModelSection:
    """The model section to load: on a resume the checkpoint holds the adapter's weights, so the adapter the run
    started from (``model.lora.init_from``) is not needed, and may be absent on the machine that resumes."""
    if checkpoint is None or not config.model.lora.init_from:
        return config.model
    return config.model.model_copy(update={"lora": config.model.lora.model_copy(update={"init_from": None})})


def _rollout_plan(config: RunConfig, args, loaded: LoadedModel, train_rows) -> kvcache.Plan:
    """The KV-cache arithmetic for this process's rollouts, on the device they run on (its GPU under accelerate
    launch, wherever the model was loaded)."""
    dtype = str(torch_dtype(config.model)).removeprefix("torch.")
    sample = train_rows.select(range(min(256, len(train_rows))))["prompt"]
    longest_prompt = longest_prompt_tokens(loaded.tokenizer, sample)
    return kvcache.plan(loaded.model.config, rollout_sequences(args), longest_prompt,
                        config.train.max_completion_length, dtype, str(args.device))


def _fitting_batch_hint(config: RunConfig, plan: kvcache.Plan) -> str:
    """The largest generation batch (a multiple of num_generations) whose KV cache fits the free memory."""
    train = config.train
    fitting = [n for n in range(train.num_generations, plan.largest_batch() + 1, train.num_generations)]
    return (f"lower train.per_device_train_batch_size x gradient_accumulation_steps to {fitting[-1]} or less"
            if fitting else "lower train.num_generations or train.max_completion_length")


def _kv_preflight(config: RunConfig, args, loaded: LoadedModel, train_rows) -> None:
    """Refuse a rollout whose KV cache alone cannot fit (weights and activations need memory on top of it). vLLM
    rollouts keep their cache in vLLM's own memory budget, so there is nothing to check."""
    if args.use_vllm:
        return
    plan = _rollout_plan(config, args, loaded, train_rows)
    _say(f"rollout {plan.message()}")
    if not plan.fits:
        raise ConfigError(f"train: the rollout's {plan.message()} does not fit; {_fitting_batch_hint(config, plan)}")


def _train_or_explain_oom(trainer, checkpoint: str | None, config: RunConfig, loaded: LoadedModel, splits) -> None:
    """``trainer.train``, where an out-of-memory step becomes one line with settings that would fit, from the
    KV-cache arithmetic on the memory free once the failed step's tensors are released. Around it: TRL's
    unscored-completion warnings are said once and counted, and the stall report's watcher is stopped however the
    training ends."""
    import torch

    unscored = UnscoredCompletionWarnings()
    try:
        with unscored.installed():
            trainer.train(resume_from_checkpoint=checkpoint)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        plan = _rollout_plan(config, trainer.args, loaded, splits.train)
        raise RunError(f"out of memory at step {trainer.state.global_step + 1}; the rollout's {plan.message()}; "
                       f"{_fitting_batch_hint(config, plan)} (weights and activations need memory too: halve it if "
                       "that is not enough), or set model.gradient_checkpointing: true") from None
    finally:
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, StallReport):  # a failed step skips on_train_end: no watcher outlives the run
                callback.close()
        if unscored.count:
            _say(f"{unscored.count} rollout batches held a completion that no reward function scored (TRL gives "
                 "it no advantage; the first is in train.log)")


def _resume_point(run_dir: Path, max_steps: int) -> str | None:
    """The newest complete checkpoint to continue from; None (after saying so) when the run already finished."""
    checkpoint = checkpoints.newest_complete(run_dir, say=_say)
    if checkpoint is None:
        raise ConfigError(f"--resume: {run_dir} has no complete checkpoint-* folder yet "
                          "(train.save_steps sets how often)")
    step = checkpoints.checkpoint_step(checkpoint)
    if step >= max_steps and (run_dir / rundir.ADAPTER_DIR).is_dir():
        print(f"[grpo] {run_dir} finished at step {step}; raise train.max_steps above {step} to continue "
              "(nothing was changed)", flush=True)
        return None
    _say(f"resuming from {checkpoint.name} (step {step} of {max_steps})")
    return str(checkpoint)
