"""grpo.train.step_phases: dynamo's graph count as the metrics log it (the per-step timing is checked end to end in
test_train_e2e.py)."""

from __future__ import annotations

import torch

from grpo.train.step_phases import compiled_graphs


def test_compiled_graphs_counts_each_new_graph_once():
    def double(x):
        return x * 2

    compiled = torch.compile(double, backend="eager")
    before = compiled_graphs()
    compiled(torch.ones(3))
    compiled(torch.ones(3))  # the same graph again: nothing new
    assert compiled_graphs() == before + 1
