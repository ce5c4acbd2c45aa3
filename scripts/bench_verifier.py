"""Time math_correctness: the numeric path per sample, the symbolic path per sample, and the issue's hostile
inputs on the main thread and in a worker thread. Prints a table (no assertion: the figures are for the docs).

    python scripts/bench_verifier.py > docs/results/verifier-<date>/bench_verifier.txt

The worker process of each thread is started before timing (its start-up is reported separately). The numeric
path is single-threaded and runs no subprocess, so its CPU time (``time.process_time``) is what it costs whatever
else the machine runs; wall-clock figures are shown beside it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "rewards")]

from labelled_math import GSM8K_STYLES, latex_cases  # noqa: E402
from test_symbolic import GOLDS, HOSTILE  # noqa: E402

from rewards import symbolic  # noqa: E402
from rewards.math import MathCorrectness  # noqa: E402


def numeric_batch() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (ROOT / "tests/fixtures/gsm8k/test.jsonl").read_text().splitlines()]
    completions, golds = [], []
    for row in rows:
        reasoning, answer = row["answer"].rsplit("####", 1)
        for style in GSM8K_STYLES:
            completions.append(reasoning.strip() + "\n" + style.format(answer.strip()))
            golds.append(row["answer"])
    return completions, golds


def per_sample_ms(reward, completions, golds, clock, repeats=5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        reward(completions, answer=golds)
        best = min(best, clock() - started)
    return 1000 * best / len(completions)


def hostile_times() -> dict[str, float]:
    reward = MathCorrectness()
    times = {}
    for name, completion in HOSTILE.items():
        for gold in GOLDS:
            started = time.perf_counter()
            reward.judge(completion, gold)
            times[name] = max(times.get(name, 0.0), 1000 * (time.perf_counter() - started))
    return times


def warm() -> float:
    started = time.perf_counter()
    symbolic.equal("\\frac{1}{2}", "\\sqrt{2}", 120.0)
    return time.perf_counter() - started


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; math-verify installed: {symbolic.available()}\n")
    reward = MathCorrectness()
    completions, golds = numeric_batch()
    numeric_cpu = per_sample_ms(reward, completions, golds, time.process_time)
    numeric_wall = per_sample_ms(reward, completions, golds, time.perf_counter)
    startup = warm()
    cases = latex_cases()
    samples = []
    for _, completion, gold, _ in cases:
        started = time.perf_counter()
        reward.judge(completion, gold)
        samples.append(1000 * (time.perf_counter() - started))
    samples.sort()
    print("| path | samples | per sample |")
    print("|---|---|---|")
    print(f"| numeric (GSM8K styles, tests/fixtures/gsm8k) | {len(completions)} | {numeric_cpu:.3f} ms CPU time, "
          f"{numeric_wall:.3f} ms wall (best of 5) |")
    print(f"| symbolic (labelled LaTeX set, warm worker) | {len(samples)} | median {statistics.median(samples):.1f} ms, "
          f"p95 {samples[int(0.95 * len(samples))]:.1f} ms, max {samples[-1]:.1f} ms |")
    print(f"| symbolic worker start-up (once per thread and process) | 1 | {startup:.2f} s |")
    main_thread = hostile_times()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(warm).result()
        in_thread = pool.submit(hostile_times).result()
    print("\n| hostile input (completion vs golds 42 and \\frac{\\sqrt{3}}{2}) | main thread | worker thread |")
    print("|---|---|---|")
    for name in HOSTILE:
        print(f"| {name} | {main_thread[name]:.1f} ms | {in_thread[name]:.1f} ms |")
    print(f"| **max** | {max(main_thread.values()):.1f} ms | {max(in_thread.values()):.1f} ms |")


if __name__ == "__main__":
    main()
