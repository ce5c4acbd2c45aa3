"""The command line: help on every subcommand, reward listing and the reward preflight table."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.cli import main

QUICKSTART = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")


@pytest.mark.parametrize("argv", [[], ["train"], ["config"], ["eval"], ["bench"], ["bench", "kv"], ["bench", "train"],
                                  ["rewards"], ["rewards", "list"], ["rewards", "check"]])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv + ["--help"])
    assert caught.value.code == 0
    assert "usage: grpo" in capsys.readouterr().out


def test_rewards_list(capsys):
    assert main(["rewards", "list"]) == 0
    out = capsys.readouterr().out
    assert "math_correctness       correctness" in out and "repetition_penalty" in out


def test_rewards_check_prints_table(capsys):
    assert main(["rewards", "check", QUICKSTART, "--n", "8"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("on synthetic completions")
    assert out.splitlines()[1].split() == ["reward", "kind", "contract", "None", "mean", "flat", "groups", "right",
                                           "answers", "scored", "1", "ms/call"]
    assert "math_correctness  correctness  ok        0%" in out and "100%" in out


def test_rewards_check_scores_real_rollouts_of_a_model(capsys, tiny_model_dir):
    argv = ["rewards", "check", QUICKSTART, "data.system_prompt=''", "--n", "2", "--model", str(tiny_model_dir),
            "--model-rows", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # the temperature is the config's own (the quickstart samples at 0.4 since d6dab1b)
    assert f"on 8 sampled completions per row from {tiny_model_dir} (2 rows, temperature " in out
    real_table = out.split("sampled completions per row")[1]
    # a random model never states the answer: every group is flat for the correctness reward
    assert "math_correctness  correctness  ok        0%    0.000  100%" in real_table


def test_rewards_check_exits_1_on_contract_violation(tmp_path, capsys):
    plugin = tmp_path / "bad.py"
    plugin.write_text("def short(completions, **kwargs):\n    return [1.0]\n")
    assert main(["rewards", "check", QUICKSTART, f"rewards.0.name={plugin}:short", "--n", "4"]) == 1  # the quickstart has one reward
    captured = capsys.readouterr()
    assert "no: reward 'short' returned 1 values for 12 completions" in captured.out
    assert "contract violation" in captured.err


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", QUICKSTART, "train.max_steps=3"]) == 0
    assert "max_steps: 3" in capsys.readouterr().out


def test_train_stops_before_loading_when_a_reward_breaks_the_contract(tmp_path, capsys):
    plugin = tmp_path / "bad.py"
    plugin.write_text("def short(completions, **kwargs):\n    return [1.0]\n")
    code = main(["train", QUICKSTART, f"rewards.0.name={plugin}:short", f"run.output_dir={tmp_path / 'runs'}"])
    assert code == 2
    assert "rewards: preflight failed: short: reward 'short' returned 1 values" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_overrides_may_follow_flags():
    from grpo.cli import build_parser, parse_any_order

    args = parse_any_order(build_parser(), ["train", "runs/x/config.yaml", "train.seed=1", "--resume",
                                            "train.max_steps=200", "model.lora.r=8"])
    assert args.resume and args.config == "runs/x/config.yaml"
    assert args.overrides == ["train.seed=1", "train.max_steps=200", "model.lora.r=8"]


def test_unknown_arguments_are_still_refused(capsys):
    from grpo.cli import build_parser, parse_any_order

    with pytest.raises(SystemExit):
        parse_any_order(build_parser(), ["train", "c.yaml", "--resume", "--bogus", "stray"])
    assert "unrecognized arguments: --bogus stray" in capsys.readouterr().err
