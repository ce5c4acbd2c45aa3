"""The ``grpo`` command line: parse, call the library, print. Config mistakes exit with code 2."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Callable

from grpo.config import ConfigError, load_config
from grpo.errors import RunError, debug_requested, describe

EXIT_CONFIG_ERROR = 2
EXIT_RUNTIME_ERROR = 1


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML run config, e.g. configs/quickstart.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="dotted overrides applied after the YAML, e.g. train.max_steps=5 model.lora.r=8")


def cmd_train(args: argparse.Namespace) -> int:
    from grpo.models.loading import prepare_backend

    config = load_config(args.config, args.overrides)
    prepare_backend(config.model)  # Unsloth, when chosen, is imported before grpo.train.trainer loads transformers/TRL
    from grpo.train.trainer import train

    if args.allow_changes and not args.resume:
        raise ConfigError("--allow-changes: only with --resume")
    from grpo.train.distributed import is_main_process

    run_dir = train(config, resume=args.resume, overwrite=args.overwrite, allow_changes=args.allow_changes)
    if is_main_process():  # under accelerate launch, once
        print(f"[grpo] done: {run_dir}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from grpo.config import to_yaml

    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def cmd_rewards_list(args: argparse.Namespace) -> int:
    import rewards

    for name in rewards.available():
        entry = rewards.entry(name)
        first_sentence = entry.summary.split(". ")[0].rstrip(".") + "."
        print(f"{name:22s} {entry.kind:12s} {first_sentence}")
    return 0


def cmd_rewards_check(args: argparse.Namespace) -> int:
    from grpo.train import preflight

    config = load_config(args.config, args.overrides)
    stats = preflight.run(config, n=args.n)
    print("on synthetic completions (the reference in 5 formats, 2 wrong answers, 5 broken texts per row):")
    print(preflight.table(stats))
    if args.model:
        from grpo.eval.eval_run import Target, load_target

        name = config.model.name if args.model == "config" else args.model
        model, tokenizer = load_target(Target(name, name, None, config))
        real = preflight.run_on_model(config, model, tokenizer, n=args.model_rows)
        print(f"\non {config.train.num_generations} sampled completions per row from {name} "
              f"({args.model_rows} rows, temperature {config.train.temperature}):")
        print(preflight.table(real))
        stats += real
    problems = preflight.violations(stats)
    for problem in problems:
        print(f"grpo: contract violation: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from grpo.eval import eval_run
    from grpo.eval.generation import SamplingParams

    if args.compare:
        result = eval_run.compare(Path(args.compare[0]).expanduser(), Path(args.compare[1]).expanduser())
        print(json.dumps(result, indent=2) if args.json else eval_run.compare_table(result))
        return 0
    if not args.targets:
        raise ConfigError("grpo eval: give a model, run directory or checkpoint (or --compare A B)")
    _check_sampling_flags(args)
    if args.loop_runner and args.decoder != "static_loop":
        raise ConfigError("--loop-runner: only with --decoder static_loop (model.generate has no runner to set)")
    if args.loop_runner == "graph":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--loop-runner graph: needs CUDA, and torch sees no GPU here; leave it out (eager)")
    targets = eval_run.expand_targets(args.targets, load_config(args.config, []), args.set)
    sampled = args.samples > 1 or args.temperature > 0
    params = SamplingParams(max_new_tokens=args.max_new_tokens, do_sample=sampled,
                            temperature=args.temperature if args.temperature > 0 else 1.0, top_p=args.top_p,
                            num_samples=args.samples, seed=args.seed, cache_implementation=args.cache_implementation,
                            decoder=args.decoder, loop_runner=args.loop_runner)
    ks = sorted({1, *(int(k) for k in args.k.split(",") if k)}) if args.k else [1, args.samples]
    request = eval_run.EvalRequest(split=args.split, limit=args.limit, params=params, batch_size=args.batch_size,
                                   ks=tuple(ks), resume=args.resume, command_started=args.command_started)
    out = Path(args.out) if args.out else None
    summaries = {}
    for target in targets:
        folder = eval_run.output_dir(target, out, len(targets))
        summaries[target.label] = eval_run.evaluate_target(target, folder, request)
        print(eval_run.markdown({target.label: summaries[target.label]}), flush=True)
        request = replace(request, command_started=None)  # the next target's startup is not the command's
    if len(targets) > 1:
        from grpo.eval import plots
        from grpo.rundir import write_atomic

        out = out or Path("evals")
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "summary.md", eval_run.markdown(summaries) + "\n")
        plots.accuracy_plot(summaries, {t.label: t.step for t in targets}, out / "accuracy.png")
        print(f"[grpo] comparison table and plot in {out}")
    return 0


def _check_sampling_flags(args: argparse.Namespace) -> None:
    """argparse's float accepts nan and inf; sampling needs 0 <= temperature and 0 < top_p <= 1, finite."""
    import math

    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ConfigError(f"--temperature: {args.temperature} must be a finite number >= 0 (0 = greedy)")
    if not (math.isfinite(args.top_p) and 0 < args.top_p <= 1):
        raise ConfigError(f"--top-p: {args.top_p} must be in (0, 1]")
    for flag, value in (("--samples", args.samples), ("--max-new-tokens", args.max_new_tokens)):
        if value < 1:
            raise ConfigError(f"{flag}: {value} must be at least 1")


def cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grpo.eval.learning_plots import learning_plot, read_metrics
    from grpo.rundir import METRICS_FILE

    labels = args.labels.split(",") if args.labels else [Path(run).name for run in args.runs]
    if len(labels) != len(args.runs):
        raise ConfigError(f"grpo plot: --labels has {len(labels)} names for {len(args.runs)} runs")
    runs = {}
    for label, run in zip(labels, args.runs):
        path = Path(run)
        if not (path / METRICS_FILE).is_file() and not path.is_file():
            raise ConfigError(f"grpo plot: {run} is neither a run directory with metrics.jsonl nor a metrics file")
        runs[label] = read_metrics(path)
    print(f"[grpo] learning curves written to {learning_plot(runs, Path(args.out), args.smooth)}")
    return 0


def cmd_bench_kv(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from grpo.bench import decode as bench
    from grpo.eval.eval_run import Target, load_target
    from grpo.eval.fused_projections import is_fused
    from grpo.eval.grouped_attention import applies_to, split_kv_refusal
    from grpo.eval.static_decode import default_runner

    if args.loop_runner and not args.static_loop:
        raise ConfigError("--loop-runner: only with --static-loop (generate has no runner to set)")
    target = Target(args.model, args.model, None, load_config(None, [f"model.dtype={args.dtype}"]))
    model, tokenizer = load_target(target, fused=not args.unfused)
    device = next(model.parameters()).device
    fused = is_fused(model)
    # what the loop's decode steps attend through
    split_kv = (args.static_loop and not args.no_split_kv and device.type == "cuda" and applies_to(model)
                and split_kv_refusal(model) is None)
    print(f"[grpo] KV-cache benchmark: {args.model} on {device}, {args.dtype}, projections "
          f"{'fused' if fused else 'not fused'}, loop decode attention "
          f"{'split-KV kernel' if split_kv else 'SDPA'}", flush=True)
    print(bench.HEADER)
    rows = bench.kv_cache_table(model, tokenizer, args.batches, args.lengths, uncached=not args.cached_only,
                                cache_implementation=args.cache_implementation, static_loop=args.static_loop,
                                loop_repeated_kv=args.loop_repeated_kv, split_kv=not args.no_split_kv,
                                loop_runner=args.loop_runner)
    print("\n" + bench.markdown(rows))
    if args.out:
        extra = {"fused_projections": fused, "split_kv_attention": split_kv,
                 "loop_runner": (args.loop_runner or default_runner(device)) if args.static_loop else None}
        Path(args.out).write_text(json.dumps([row.to_json() | extra for row in rows], indent=2))
    return 0


def cmd_bench_summary(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from grpo.bench import summary

    result = summary.perf_summary(json.loads(Path(args.train).read_text()), json.loads(Path(args.kv).read_text()),
                                  args.batch)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(summary.table(result))
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from grpo.bench import train_step as bench_train
    from grpo.bench.phases import phase_table
    from grpo.models.loading import resolve_path

    try:
        cases = bench_train.parse_cases(args.case, args.steps, args.generations, args.completion_tokens)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    tokenizer_path = resolve_path(args.tokenizer)
    print(bench_train.HEADER, flush=True)
    rows = []
    for case in cases:
        rows = bench_train.with_speedups([*rows, bench_train.run_in_subprocess(case, Path(args.model_root),
                                                                                tokenizer_path)])
        print(bench_train.format_row(rows[-1]), flush=True)
        if args.out:  # after every case, so a run cut short keeps the rows it finished
            Path(args.out).write_text(json.dumps(rows, indent=2, default=str))
    print("\n" + bench_train.markdown(rows))
    print("\nWhere each step's time goes (medians over the measured steps):\n" + phase_table(rows))
    return 0 if all("error" not in row for row in rows) else 1


def _add_train_commands(commands) -> None:
    train = commands.add_parser("train", help="train with GRPO from a YAML config",
                                description="Train a LoRA adapter with GRPO; writes runs/<run.name>/.")
    _config_arguments(train)
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run directory from its last checkpoint")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace an existing run directory (only one grpo created; the old run is kept until "
                           "the new one has started)")
    train.add_argument("--allow-changes", action="store_true",
                       help="with --resume: accept settings that change what the checkpoint means (model, LoRA, "
                            "rewards, optimizer); they are recorded in RUN/config_history.jsonl")
    train.set_defaults(handler=cmd_train)

    config = commands.add_parser("config", help="validate a config and print it resolved",
                                 description="Validate a config (with overrides) and print the resolved YAML.")
    _config_arguments(config)
    config.set_defaults(handler=cmd_config)


def _add_eval_command(commands) -> None:
    evaluate = commands.add_parser(
        "eval", help="evaluate a model, a run directory or checkpoints",
        description="Evaluate with KV-cached batched sampling. TARGET: a run directory (runs/x), checkpoints "
                    "(runs/x/checkpoint-*), an adapter folder, a model folder, an embedded name or a hub id. Runs "
                    "and checkpoints reuse their saved prompt format and rewards.")
    evaluate.add_argument("targets", nargs="*", metavar="TARGET")
    evaluate.add_argument("--config", help="config for bare models (data, prompt, rewards); default: built-in")
    evaluate.add_argument("--set", action="append", default=[], metavar="key.sub=value",
                          help="override the target's config, e.g. --set data.source=gsm8k (repeatable)")
    evaluate.add_argument("--split", choices=["eval", "train"], default="eval", help="held-out (default) or train")
    evaluate.add_argument("--limit", type=int, help="evaluate the first N problems only")
    evaluate.add_argument("--samples", type=int, default=1, help="samples per problem (default 1: greedy)")
    evaluate.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples")
    evaluate.add_argument("--top-p", type=float, default=1.0)
    evaluate.add_argument("--k", help="comma-separated k for pass@k and maj@k (default: 1 and --samples)")
    evaluate.add_argument("--max-new-tokens", type=int, default=256)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--batch-size", type=int, help="default: the largest that fits (KV-cache arithmetic)")
    evaluate.add_argument("--cache-implementation", choices=["dynamic", "static"], default=None,
                          help="KV cache: dynamic (default) or static (compilable on GPU)")
    evaluate.add_argument("--decoder", choices=["generate", "static_loop"], default="generate",
                          help="model.generate (default) or grpo.eval.static_decode's fixed-shape loop (Llama/Qwen2, "
                               "others fall back to generate)")
    evaluate.add_argument("--loop-runner", choices=["compiled", "graph", "eager"], default=None,
                          help="with --decoder static_loop: how its step runs (grpo.eval.static_decode.RUNNERS; "
                               "default graph on CUDA, which starts in a second where compiled takes 40, eager "
                               "elsewhere)")
    evaluate.add_argument("--out", help="output folder (default: <run>/evals/final or <run>/evals/checkpoint-N, or evals/<model>)")
    evaluate.add_argument("--resume", action="store_true", help="continue an interrupted eval from its samples")
    evaluate.add_argument("--compare", nargs=2, metavar=("EVAL_A", "EVAL_B"),
                          help="paired pass@1 difference (B - A) with a 95%% CI over shared problems")
    evaluate.add_argument("--json", action="store_true", help="with --compare: print JSON instead of a table")
    evaluate.set_defaults(handler=cmd_eval)


def _add_plot_command(commands) -> None:
    plot = commands.add_parser("plot", help="learning curves of runs (metrics.jsonl) as one PNG",
                               description="Held-out accuracy with 95% bands, rewards, entropy, length and flat-group "
                                           "share per step, every run overlaid.")
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or metrics.jsonl files)")
    plot.add_argument("--labels", help="comma-separated legend names (default: the folder names)")
    plot.add_argument("--out", default="learning.png", help="PNG path (default learning.png)")
    plot.add_argument("--smooth", type=int, default=5, help="moving-average window for training signals")
    plot.set_defaults(handler=cmd_plot)


def _add_bench_commands(commands) -> None:
    bench = commands.add_parser("bench", help="benchmarks", description="Benchmarks that print a table.")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    kv = bench_commands.add_parser(
        "kv", help="generation with and without the KV cache",
        description="Greedy generation of exactly N new tokens (min_new_tokens = max_new_tokens) with and "
                    "without the KV cache: time, tokens/s, ms per decode step, uncached/cached ratio.")
    kv.add_argument("--model", default="smollm2-135m-instruct", help="model name, folder or hub id")
    kv.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    kv.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    kv.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    kv.add_argument("--cached-only", action="store_true", help="skip the uncached runs")
    kv.add_argument("--cache-implementation", choices=["dynamic", "static"], default=None)
    kv.add_argument("--static-loop", action="store_true",
                    help="also time grpo.eval.static_decode's fixed-shape loop (compiled on CUDA unless --loop-runner "
                         "says otherwise) next to generate")
    kv.add_argument("--loop-repeated-kv", action="store_true",
                    help="with --static-loop: time the loop a second time with transformers' repeated key/value "
                         "heads instead of the grouped-query attention read in place")
    kv.add_argument("--loop-runner", choices=["compiled", "graph", "eager"], default=None,
                    help="with --static-loop: how its step runs (grpo.eval.static_decode.RUNNERS; default compiled on "
                         "CUDA, eager elsewhere)")
    kv.add_argument("--unfused", action="store_true",
                    help="decode with the model's own q/k/v and gate/up projections instead of one product each "
                         "(grpo eval fuses them; this measures what fusing saves)")
    kv.add_argument("--no-split-kv", action="store_true",
                    help="the loop's decode attention through SDPA's kernels instead of grpo.eval.split_kv_attention's "
                         "(which it uses on CUDA with Triton; this measures what the kernel saves)")
    kv.add_argument("--out", help="write the rows as JSON here")
    kv.set_defaults(handler=cmd_bench_kv)
    summary = bench_commands.add_parser(
        "summary", help="the three headline figures of a bench train and a bench kv run, as perf_summary.json",
        description="Reads the JSON of `grpo bench train --out` (with a trl-baseline row) and `grpo bench kv --out` "
                    "from the same session and writes rollout_tokens_per_s, step_speedup_vs_trl and "
                    "eval_decode_ms_per_step (at --batch), each with the rows it came from.")
    summary.add_argument("--train", required=True, help="grpo bench train --out JSON")
    summary.add_argument("--kv", required=True, help="grpo bench kv --out JSON")
    summary.add_argument("--batch", type=int, default=64, help="eval decode batch of the headline (default 64)")
    summary.add_argument("--out", default="perf_summary.json")
    summary.set_defaults(handler=cmd_bench_summary)
    train_bench = bench_commands.add_parser(
        "train", help="GRPO step time per backend and rollout setting (GPU)",
        description="Fixed workload: 8 prompts x 8 generations x 256 forced completion tokens (change with "
                    "--generations, --completion-tokens), LoRA r=16, random weights of real architectures. CASE is "
                    "SHAPE:BACKEND[:ROLLOUT][:4bit][:mbN][:SETTING...], e.g. smollm2-135m:trl-baseline, "
                    "smollm2-135m:hf:static, smollm2-135m:hf:loop:mb64:nogc, qwen2.5-1.5b:unsloth:dynamic:4bit. "
                    "Shapes: smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b; backends: trl-baseline, hf, unsloth; "
                    "rollouts: dynamic, static, loop (the static decode loop, hf only), continuous (transformers' "
                    "continuous batching through TRL, hf only); mbN: N completions per "
                    "forward/backward of the update (default 8, transformers' default per-device batch); settings: "
                    "nogc (gradient checkpointing off), liger (use_liger_kernel), compile (torch_compile), merged "
                    "(loop rollouts through a merged LoRA copy), repeatkv (loop decode steps with transformers' "
                    "repeated key/value heads), offpolicy (train.rollout_off_policy_correction), graph (loop decode "
                    "steps captured by hand into a CUDA graph instead of compiled). "
                    "Every row shows its speedup over the trl-baseline row of the same workload in the same run.")
    train_bench.add_argument("case", nargs="+", metavar="CASE")
    train_bench.add_argument("--steps", type=int, default=3, help="steps per case; the first is warm-up")
    train_bench.add_argument("--generations", type=int, nargs="+", default=[8],
                             help="completions per prompt, 8 prompts a step (several: every case at each)")
    train_bench.add_argument("--completion-tokens", type=int, nargs="+", default=[256],
                             help="tokens of every completion (several: every case at each)")
    train_bench.add_argument("--model-root", default="/tmp/grpo-bench-models", help="where random models are saved")
    train_bench.add_argument("--tokenizer", default="smollm2-135m-instruct", help="tokenizer for every shape")
    train_bench.add_argument("--out", help="write the rows as JSON here")
    train_bench.set_defaults(handler=cmd_bench_train)


def _add_reward_commands(commands) -> None:
    reward_parser = commands.add_parser("rewards", help="list or check reward functions",
                                        description="Inspect the reward registry.")
    reward_commands = reward_parser.add_subparsers(dest="rewards_command", required=True, metavar="SUBCOMMAND")
    listing = reward_commands.add_parser("list", help="list registered rewards", description="List rewards.")
    listing.set_defaults(handler=cmd_rewards_list)
    check = reward_commands.add_parser(
        "check", help="call the config's rewards on synthetic completions and print a table",
        description="Preflight: call each configured reward on N dataset rows with synthetic completions (the "
                    "reference in every supported format, wrong answers, empty and malformed text). Exits 1 on a "
                    "contract violation.")
    _config_arguments(check)
    check.add_argument("--n", type=int, default=64, help="dataset rows to use (default 64)")
    check.add_argument("--model", nargs="?", const="config", metavar="NAME",
                       help="also score real rollouts sampled from a model (default: the config's model)")
    check.add_argument("--model-rows", type=int, default=4, help="rows to sample rollouts for (default 4)")
    check.set_defaults(handler=cmd_rewards_check)


def cmd_export(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from grpo.models import export

    if not (args.merged or args.gguf or args.push_to_hub):
        raise ConfigError("export: say what to write: --merged DIR, --gguf FILE and/or --push-to-hub REPO")
    with tempfile.TemporaryDirectory(prefix="grpo-merged-") as scratch:
        merged = export.merge(args.run, Path(args.merged).expanduser() if args.merged else Path(scratch))
        if args.merged:
            print(f"[grpo] merged model written to {merged}")
        if args.gguf:
            from grpo.models.gguf_export import write_gguf

            written = write_gguf(merged, Path(args.gguf).expanduser(), args.gguf_type)
            print(f"[grpo] GGUF ({args.gguf_type}) written to {written}")
        if args.push_to_hub:
            print(f"[grpo] uploaded to {export.push_to_hub(merged, args.push_to_hub, private=not args.public)}")
    return 0


def _add_export_command(commands) -> None:
    export = commands.add_parser("export", help="write a run's model: merged folder, GGUF, Hub upload",
                                 description="Merge a run's LoRA adapter into its base model, then write it as a "
                                             "model folder, a GGUF file (Llama architecture) and/or a Hub repo.")
    export.add_argument("run", metavar="RUN", help="run directory, checkpoint or adapter folder")
    export.add_argument("--merged", metavar="DIR",
                        help="write the merged model (base dtype, tokenizer, chat template, generation config) here")
    export.add_argument("--gguf", metavar="FILE", help="write a GGUF file for llama.cpp / Ollama / LM Studio")
    export.add_argument("--gguf-type", choices=["f16", "q8_0"], default="f16", help="GGUF tensor type (default f16)")
    export.add_argument("--push-to-hub", metavar="REPO", help="upload the merged folder with a model card")
    export.add_argument("--public", action="store_true", help="make the Hub repository public (default private)")
    export.set_defaults(handler=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo", description="Config-driven GRPO reasoning fine-tuning.")
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of an error (also GRPO_DEBUG=1); accepted anywhere")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train_commands, _add_eval_command, _add_plot_command, _add_bench_commands,
                _add_reward_commands, _add_export_command):
        add(commands)
    return parser


def parse_any_order(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like parse_args, but ``key.sub=value`` overrides may also follow flags (``CONFIG --resume a.b=1``), as
    users of other trainers type them; argparse alone stops collecting the positional list at the first flag."""
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if overrides and hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *overrides]
        extra = [item for item in extra if item not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()  # the heavy imports (torch, transformers) come later: `grpo eval` reports them
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested("--debug" in argv)  # accepted anywhere on the line, like the overrides
    parser = build_parser()
    args = parse_any_order(parser, [item for item in argv if item != "--debug"])
    handler: Callable[[argparse.Namespace], int] = args.handler
    args.command_started = started
    try:
        return handler(args)
    except ConfigError as err:
        for line in str(err).splitlines():
            print(f"grpo: error: {line}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except Exception as err:  # noqa: BLE001 - every other failure is one line; --debug shows the traceback
        if debug:
            raise
        hint = "" if isinstance(err, RunError) else " (full traceback: --debug or GRPO_DEBUG=1)"
        print(f"grpo: error: {describe(err)}{hint}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR


if __name__ == "__main__":
    sys.exit(main())
