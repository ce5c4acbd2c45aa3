"""The three headline figures of the rollout-speed work, from one session's `grpo bench train` and `grpo bench kv`
rows: what `perf_summary.json` holds, each figure with the rows it came from so a reader can check it.

- ``rollout_tokens_per_s``: the fastest rollout of this project's rows (not ``trl-baseline``) on the baseline's
  model shape, completion tokens generated per second of generation inside the GRPO step;
- ``step_speedup_vs_trl``: the baseline's seconds per 64 completions over the fastest project row's, same shape,
  same session (a figure from another session would compare machines, not code);
- ``eval_decode_ms_per_step``: the fastest greedy decode step at the given batch, ``model.generate`` with the
  cache or the static decode loop, whichever the rows hold.
"""

from __future__ import annotations

from typing import Any

from grpo.bench.train_step import same_workload
from grpo.config import ConfigError

BASELINE = "trl-baseline"


class SummaryError(ConfigError):
    """The rows cannot give a headline figure (no baseline, no project row, no row at the batch): a one-line error
    of the command line, like a bad option."""


def perf_summary(train_rows: list[dict[str, Any]], kv_rows: list[dict[str, Any]], batch: int = 64) -> dict[str, Any]:
    ok = [row for row in train_rows if "error" not in row]
    baselines = [row for row in ok if row["backend"] == BASELINE]
    if not baselines:
        raise SummaryError("bench train rows hold no trl-baseline row: the speedup needs one from the same session")
    baseline = baselines[0]
    ours = [row for row in ok if row["backend"] != BASELINE and same_workload(row, baseline)]
    if not ours:
        raise SummaryError(f"bench train rows hold no project row for the baseline's workload ({baseline['shape']}, "
                           f"{baseline.get('generations')} generations, {baseline.get('completion_tokens')} tokens)")
    fastest_step = min(ours, key=lambda row: row["seconds_per_64_completions"])
    fastest_rollout = max(ours, key=lambda row: row["generation_tokens_per_s"])
    at_batch = [row for row in kv_rows if row["batch"] == batch]
    if not at_batch:
        raise SummaryError(f"bench kv rows hold no row at batch {batch}")
    decodes = [(row["ms_per_decode_step"], "generate", row) for row in at_batch]
    decodes += [(row["loop_ms_per_decode_step"], "static_loop", row) for row in at_batch
                if row.get("loop_ms_per_decode_step")]
    decode_ms, decoder, decode_row = min(decodes, key=lambda entry: entry[0])
    return {
        "rollout_tokens_per_s": fastest_rollout["generation_tokens_per_s"],
        "step_speedup_vs_trl": baseline["seconds_per_64_completions"] / fastest_step["seconds_per_64_completions"],
        "eval_decode_ms_per_step": decode_ms,
        "sources": {
            "rollout_tokens_per_s": fastest_rollout["label"],
            "step_speedup_vs_trl": f"{baseline['label']} / {fastest_step['label']}",
            "eval_decode_ms_per_step": f"{decoder}, batch {batch}, {decode_row['new_tokens']} new tokens",
        },
    }


def table(summary: dict[str, Any]) -> str:
    sources = summary["sources"]
    return "\n".join([
        "| figure | value | from |", "|---|---:|---|",
        f"| rollout tokens/s | {summary['rollout_tokens_per_s']:,.0f} | {sources['rollout_tokens_per_s']} |",
        f"| step speedup vs TRL | {summary['step_speedup_vs_trl']:.2f}x | {sources['step_speedup_vs_trl']} |",
        f"| eval decode ms/step | {summary['eval_decode_ms_per_step']:.2f} | {sources['eval_decode_ms_per_step']} |",
    ])
