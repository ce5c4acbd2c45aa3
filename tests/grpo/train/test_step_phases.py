"""grpo.train.step_phases: torch.compile's counters as the metrics log them (the per-step timing is checked end to
end in test_train_e2e.py)."""

from __future__ import annotations

import torch

from grpo.train.step_phases import compilation_counters


def test_compilation_counters_count_graphs_and_breaks():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    def split(x):
        x = x + 1
        torch._dynamo.graph_break()
        return x * 2

    compiled = torch.compile(split, backend="eager")
    assert compiled(torch.ones(2)).tolist() == [4.0, 4.0]
    compiled(torch.ones(2))  # the same graphs again: nothing new
    assert compilation_counters() == {"unique_graphs": 2, "graph_breaks": 1, "cudagraph_skips": 0}
    torch._dynamo.reset()


def test_each_step_logs_its_rollout_seconds_once_and_zero_when_it_reuses_a_generation(tmp_path, tiny_model_dir):
    """With num_iterations 2, TRL generates on every other step and trains twice on each batch: the steps that
    reuse one log 0 s of rollouts, and every step logs the counters."""
    import json

    from grpo.cli import main
    from tests.grpo.train.tiny_runs import tiny_run_config

    config, _ = tiny_run_config(tmp_path, tiny_model_dir, "phases", "train.max_steps=4", "train.num_iterations=2")
    assert main(["train", str(config)]) == 0
    lines = (tmp_path / "phases" / "metrics.jsonl").read_text().splitlines()
    steps = [record for record in map(json.loads, lines) if "step_time" in record]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    generated = [s["time/rollouts_s"] > 0 for s in steps]
    assert generated == [True, False, True, False]
    assert all(s["time/rollouts_s"] < s["step_time"] for s in steps)
    assert all("compile/graphs" in s for s in steps)
