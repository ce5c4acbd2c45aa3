"""The ``grpo`` command line: parse, call the library, print. Config mistakes exit with code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from grpo.config import ConfigError, load_config

EXIT_CONFIG_ERROR = 2


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML run config, e.g. configs/quickstart.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="dotted overrides applied after the YAML, e.g. train.max_steps=5 model.lora.r=8")


def cmd_train(args: argparse.Namespace) -> int:
    from grpo.train import train

    config = load_config(args.config, args.overrides)
    run_dir = train(config, resume=args.resume, overwrite=args.overwrite)
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
        print(f"{name:22s} {entry.kind:12s} {entry.summary}")
    return 0


def cmd_rewards_check(args: argparse.Namespace) -> int:
    from grpo import preflight

    stats = preflight.run(load_config(args.config, args.overrides), n=args.n)
    print(preflight.table(stats))
    problems = preflight.violations(stats)
    for problem in problems:
        print(f"grpo: contract violation: {problem}", file=sys.stderr)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo", description="Config-driven GRPO reasoning fine-tuning.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train with GRPO from a YAML config",
                                description="Train a LoRA adapter with GRPO; writes runs/<run.name>/.")
    _config_arguments(train)
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run directory from its last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="delete an existing run directory first")
    train.set_defaults(handler=cmd_train)

    config = commands.add_parser("config", help="validate a config and print it resolved",
                                 description="Validate a config (with overrides) and print the resolved YAML.")
    _config_arguments(config)
    config.set_defaults(handler=cmd_config)

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
    check.set_defaults(handler=cmd_rewards_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as err:
        for line in str(err).splitlines():
            print(f"grpo: error: {line}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
