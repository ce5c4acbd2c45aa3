"""A real training process killed while writing a checkpoint resumes from the previous complete one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from grpo.cli import main

KILLABLE = Path(__file__).resolve().parents[1] / "killable_train.py"


def write_config(tmp_path: Path, model_dir: Path) -> Path:
    config = tmp_path / "crash.yaml"
    config.write_text(f"""
run: {{name: crash, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}}}
data: {{source: synthetic, system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 16, eval_size: 4}}}}
rewards: [{{name: math_correctness}}]
train: {{max_steps: 3, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8,
         learning_rate: 0.01, save_steps: 1, save_total_limit: 3, report_to: [none]}}
""")
    return config


def test_kill_during_checkpoint_write_then_resume(tmp_path, tiny_model_dir, capsys):
    config, ready = write_config(tmp_path, tiny_model_dir), tmp_path / "ready"
    process = subprocess.Popen([sys.executable, str(KILLABLE), "2", str(ready), "--", "train", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "training never reached the checkpoint write"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)  # mid-write: checkpoint-2 has weights, no trainer_state.json
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    run_dir = tmp_path / "runs" / "crash"
    assert (run_dir / "checkpoint-2").is_dir() and not (run_dir / "checkpoint-2" / "trainer_state.json").exists()
    assert not (run_dir / "adapter").exists()

    assert main(["train", str(config), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "skipping checkpoint-2: it was cut mid-write" in out
    assert "resuming from checkpoint-1 (step 1 of 3)" in out
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if "reward" in json.loads(line)]
    assert steps == [1, 2, 3]  # step 2 was logged before the kill, cut back on resume, logged once again
    state = json.loads((run_dir / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and (run_dir / "adapter" / "adapter_model.safetensors").is_file()
