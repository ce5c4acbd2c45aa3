"""Two processes through `accelerate launch` with the shipped DDP config (gloo on a CPU): one run directory
written by the main process, one metrics file without duplicate steps, evaluations once, --overwrite over an
existing directory, --resume at the next step. And the rule itself, in one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from grpo.train import distributed
from grpo import rundir
from grpo.config import load_config

DDP_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "accelerate" / "ddp.yaml"


def test_only_the_main_process_creates_or_deletes_the_run_directory(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "old.txt").write_text("from an earlier run")
    monkeypatch.setattr(distributed, "wait_for_everyone", lambda: None)
    config = load_config(None, [f"run.output_dir={tmp_path}"])
    monkeypatch.setattr(distributed, "is_main_process", lambda: False)
    rundir.create_once(run_dir, config, {}, overwrite=True)
    rundir.write_on_main(run_dir / "x.txt", "not written")
    assert sorted(p.name for p in run_dir.iterdir()) == ["old.txt"]
    monkeypatch.setattr(distributed, "is_main_process", lambda: True)
    rundir.create_once(run_dir, config, {}, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([rundir.MARKER, rundir.CONFIG_FILE, rundir.ENVIRONMENT_FILE])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(config: Path, *arguments: str) -> str:
    """``accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m grpo train ...``."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP_CONFIG),
               "--num_processes", "2", "--main_process_port", str(_free_port()), "-m", "grpo", "train", str(config),
               *arguments]
    environment = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "LOCAL_RANK", "RANK")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / rundir.METRICS_FILE).read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_write_one_run_and_resume_it(tmp_path, tiny_model_dir):
    config = tmp_path / "ddp.yaml"
    config.write_text(f"""
run: {{name: ddp, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}}}
data: {{source: synthetic, system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 16, eval_size: 4}}}}
rewards: [{{name: math_correctness}}, {{name: answer_line, weight: 0.5}}]
train: {{max_steps: 2, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
        learning_rate: 0.01, save_steps: 1, report_to: [none]}}
eval: {{before_after: true, num_problems: 4, max_new_tokens: 8, batch_size: 4, every_n_steps: 1}}
""")
    run_dir = tmp_path / "runs" / "ddp"
    run_dir.mkdir(parents=True)
    (run_dir / rundir.MARKER).write_text("{}")  # an earlier grpo run: --overwrite replaces it, one process, once
    (run_dir / "stale.txt").write_text("an earlier run")

    out = _launch(config, "--overwrite")
    assert out.count("[grpo] done:") == 1 and out.count("held-out problems: 4") == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]
    assert not (run_dir / "stale.txt").exists()
    assert json.loads((run_dir / rundir.ENVIRONMENT_FILE).read_text())["processes"] == 2  # joined, not alone
    records = _records(run_dir)
    assert [r["step"] for r in records if "reward" in r] == [1, 2]
    assert [r["step"] for r in records if "eval/accuracy" in r] == [0, 1, 2]  # each eval once
    assert (run_dir / rundir.BEFORE_AFTER_MD).is_file() and (run_dir / "checkpoint-2" / "rng_state_1.pth").is_file()

    out = _launch(config, "--resume", "train.max_steps=3")
    assert out.count("resuming from checkpoint-2 (step 2 of 3)") == 1
    records = _records(run_dir)
    assert [r["step"] for r in records if "reward" in r] == [1, 2, 3]
    assert [r["step"] for r in records if "eval/accuracy" in r] == [0, 1, 2, 3]
    assert (run_dir / "checkpoint-3").is_dir()

    # a time limit already passed when the first step ends: both processes stop after that step, together
    out = _launch(config, "--resume", "train.max_steps=6", "train.time_limit_minutes=0.00001")
    assert out.count("time limit of 1e-05 min reached at step 4") == 1
    assert [r["step"] for r in _records(run_dir) if "reward" in r] == [1, 2, 3, 4]
    assert (run_dir / "checkpoint-4").is_dir() and not (run_dir / "checkpoint-5").exists()
