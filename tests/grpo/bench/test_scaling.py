"""The scaling summary from run directories shaped like real ones (numbers chosen to check the arithmetic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.bench import scaling


def fake_run(folder: Path, processes: int, step_times: list[float], mean_length: float, per_device: int = 16) -> Path:
    folder.mkdir(parents=True)
    records = [{"step": 0, "eval/accuracy": 0.5}]
    records += [{"step": i + 1, "step_time": t, "completions/mean_length": mean_length, "reward": 0.1}
                for i, t in enumerate(step_times)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    # per_device x processes x 4 accumulation steps, one generation per step
    grpo_args = {"generation_batch_size": per_device * processes * 4, "steps_per_generation": 4, "num_iterations": 1,
                 "gradient_accumulation_steps": 4, "per_device_train_batch_size": per_device}
    (folder / "grpo_args.json").write_text(json.dumps(grpo_args))
    (folder / "environment.json").write_text(json.dumps({"processes": processes}))
    return folder


def test_scaling_efficiency_from_two_runs(tmp_path):
    one = fake_run(tmp_path / "one", 1, [30.0, 4.0, 5.0, 6.0], 100.0)   # warm-up step left out: median 5 s
    four = fake_run(tmp_path / "four", 4, [40.0, 6.0, 6.25, 6.5], 100.0)  # median 6.25 s for 4x the work
    summary = scaling.summarize([four, one])
    first, second = summary["runs"]
    assert (first["gpus"], second["gpus"]) == (1, 4)
    assert first["completions_per_step"] == 64 and first["step_time_s"] == 5.0
    assert first["rollout_tokens_per_s"] == pytest.approx(6400 / 5.0)
    assert second["rollout_tokens_per_s"] == pytest.approx(25600 / 6.25)
    (result,) = summary["scaling"]
    assert result["throughput_speedup"] == pytest.approx(3.2)
    assert result["scaling_efficiency"] == pytest.approx(0.8) and result["step_time_ratio"] == pytest.approx(0.8)


def test_command_line_writes_the_json(tmp_path, capsys):
    run = fake_run(tmp_path / "one", 1, [9.0, 2.0], 50.0)
    assert scaling.main([str(run), "--out", str(tmp_path / "s.json")]) == 0
    written = json.loads((tmp_path / "s.json").read_text())
    assert written == json.loads(capsys.readouterr().out) and written["scaling"] == []
    assert written["runs"][0]["steps_measured"] == 1


def test_a_run_without_steps_is_an_error(tmp_path):
    run = fake_run(tmp_path / "empty", 1, [], 0.0)
    with pytest.raises(ValueError, match="no training step with step_time"):
        scaling.run_summary(run)


def test_strong_scaling_keeps_the_completions_per_step(tmp_path):
    one = fake_run(tmp_path / "scaling-1gpu-ddp", 1, [30.0, 8.0, 8.0], 256.0)
    two = fake_run(tmp_path / "scaling-2gpu-ddp", 2, [30.0, 5.0, 5.0], 256.0, per_device=8)  # half the batch each
    summary = scaling.summarize([one, two])
    assert [run["completions_per_step"] for run in summary["runs"]] == [64, 64]
    assert [run["per_device_train_batch_size"] for run in summary["runs"]] == [16, 8]
    (result,) = summary["scaling"]
    assert result["run"] == "scaling-2gpu-ddp"
    assert result["throughput_speedup"] == pytest.approx(1.6) and result["scaling_efficiency"] == pytest.approx(0.8)


def test_peak_memory_per_gpu_from_nvidia_smi_samples(tmp_path):
    run = fake_run(tmp_path / "two", 2, [9.0, 2.0], 50.0)
    (run / scaling.MEMORY_FILE).write_text("0, 1200\n1, 900\n0, 5400\n1, 5300\nnot a sample\n0, 3000\n")
    assert scaling.run_summary(run)["peak_memory_mib_per_gpu"] == {"0": 5400, "1": 5300}
    assert scaling.run_summary(fake_run(tmp_path / "none", 1, [9.0, 2.0], 50.0))["peak_memory_mib_per_gpu"] is None
