"""Greedy accuracy by number of operations (and by operations and digits) on a synthetic held-out split, the
splits' mix, and how far two evals of the same problems agree: the breakdowns docs/learning.md quotes for the GPU
synthetic runs.

    python scripts/synthetic_eval_breakdown.py configs/gpu/smollm2-135m-synthetic.yaml \\
        docs/results/h200x2-2026-11-30/base-512/samples.jsonl.gz \\
        docs/results/h200x2-2026-11-30/syn-recipe/eval/samples.jsonl.gz \\
        --compare docs/results/h200x2-2026-11-30/syn-recipe/eval_samples/step-000000.jsonl.gz \\
                  docs/results/h200x2-2026-11-30/syn-16gen/eval_samples/step-000000.jsonl.gz

Samples files are the per-problem answers `grpo eval` and the in-training evals write (``id``, ``completion``,
``correct``), plain or gzipped; problems are matched by id to the config's regenerated held-out split.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

from grpo.config import load_config
from grpo.data.splits import load_raw


def read_samples(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("samples", nargs="*", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args()
    train, held_out = load_raw(load_config(args.config).data)
    for name, split in (("train", train), ("held-out", held_out)):
        mix = Counter(split["operations"])
        print(f"{name}: {len(split)} problems; " + ", ".join(
            f"{count} with {ops} operation(s) ({count / len(split):.1%})" for ops, count in sorted(mix.items())))
    shapes = {pid: (ops, digits) for pid, ops, digits in zip(held_out["id"], held_out["operations"],
                                                              held_out["digits"])}
    for path in args.samples:
        by_count: dict[int, list[bool]] = defaultdict(list)
        by_shape: dict[tuple[int, int], list[bool]] = defaultdict(list)
        for sample in read_samples(path):
            right = sample["correct"] is True
            by_count[shapes[sample["id"]][0]].append(right)
            by_shape[shapes[sample["id"]]].append(right)
        print(f"{path}: " + "; ".join(f"{ops} operation(s): {sum(v)}/{len(v)} = {sum(v) / len(v):.1%}"
                                       for ops, v in sorted(by_count.items())))
        print("  by operations and largest number's digits: " + "; ".join(
            f"{ops} op, {digits} digit(s): {sum(v)}/{len(v)} = {sum(v) / len(v):.1%}"
            for (ops, digits), v in sorted(by_shape.items())))
    if args.compare:
        first, second = (read_samples(path) for path in args.compare)
        assert [s["id"] for s in first] == [s["id"] for s in second], "the two evals cover different problems"
        same = sum(a["completion"] == b["completion"] for a, b in zip(first, second))
        right = [sum(bool(s["correct"]) for s in samples) for samples in (first, second)]
        both = sum(bool(a["correct"]) and bool(b["correct"]) for a, b in zip(first, second))
        diverged = sorted(next((i for i, (x, y) in enumerate(zip(a["completion"], b["completion"])) if x != y),
                               min(len(a["completion"]), len(b["completion"])))
                          for a, b in zip(first, second) if a["completion"] != b["completion"])
        print(f"compare: {same}/{len(first)} identical completions; right {right[0]} and {right[1]}, {both} in both;"
              f" the others first differ at character {diverged[len(diverged) // 2] if diverged else '-'} (median)")


if __name__ == "__main__":
    main()
