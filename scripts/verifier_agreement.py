"""Agreement of math_correctness, math-verify and lm-eval's GSM8K filters with the hand labels of issue 11's
labelled set, and this reward's pass rate on Math-Verify's own test cases.

    python scripts/verifier_agreement.py > docs/results/verifier_agreement.txt

Verifiers, each judging (completion, gold) -> 1 / 0 / None (no opinion):
- ``math_correctness``: this project's reward, default params (``MathCorrectness().judge``).
- ``math-verify``: ``verify(parse(gold), parse(completion))`` with math-verify's default extraction (LaTeX and
  plain expressions; a bare gold wrapped in ``$...$`` as its README advises), in-process on the main thread with
  its own timeouts; None when the gold does not parse.
- ``lm-eval strict`` / ``lm-eval flexible``: lm-evaluation-harness's gsm8k task filters re-implemented from its
  YAML (strict: the first ``#### (-?[0-9.,]+)``; flexible: the last match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)``),
  scored by its exact_match (ignore case; ``,``, ``$``, ``.*#### `` and a final ``.`` removed from both sides).

"agree" is the share of cases where the verdict equals the label (None never does); "wrong=1" counts wrong
answers given 1; "None" counts undecided cases.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "rewards")]

from labelled_math import EDGE_CASES, all_cases  # noqa: E402
from rewards.math import MathCorrectness  # noqa: E402

IGNORE = [re.compile(p) for p in (",", r"\$", r"(?s).*#### ", r"\.$")]
STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")

# Why the Math-Verify cases this reward gets wrong are wrong (file:line -> reason), checked by hand.
MATH_VERIFY_MISSES = {
    "decimal comma": "a comma as the decimal point (1000,99; 1,22; 2,74; 0,111) or a space as thousands separator "
                     "(1 000): read as thousands separators / two numbers, deliberately (GSM8K writes 1,234)",
    "multi-line math": "math-verify refuses a formula split over lines after 'Answer'; this reward reads the 9",
}


def lm_eval_exact(extracted: str | None, gold: str) -> int:
    if extracted is None:
        return 0
    def clean(text: str) -> str:
        for pattern in IGNORE:
            text = pattern.sub("", text)
        return text.strip().lower()
    return int(clean(extracted) == clean(gold))


def lm_eval_strict(completion: str, gold: str) -> int:
    match = STRICT.search(completion)
    return lm_eval_exact(match.group(1) if match else None, gold)


def lm_eval_flexible(completion: str, gold: str) -> int:
    matches = FLEXIBLE.findall(completion)
    if not matches:
        return 0
    last = matches[-1]
    return lm_eval_exact(next(group for group in last if group) if isinstance(last, tuple) else last, gold)


def math_verify_judge(completion: str, gold: str) -> int | None:
    from math_verify import parse, verify

    bare = "$" not in gold and "\\boxed" not in gold and "####" not in gold
    gold_parsed = parse(f"${gold}$" if bare else gold)  # math-verify's README: wrap a bare LaTeX gold in $...$
    if not gold_parsed:
        return None
    return int(verify(gold_parsed, parse(completion)))


def main() -> None:
    logging.disable(logging.CRITICAL)
    reward = MathCorrectness(symbolic_timeout_s=60.0)
    verifiers = {
        "math_correctness": lambda c, g: None if (v := reward.judge(c, g)) is None else int(v),
        "math-verify": math_verify_judge,
        "lm-eval strict": lm_eval_strict,
        "lm-eval flexible": lm_eval_flexible,
    }
    cases = all_cases()
    stats: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # n, agree, wrong=1, None
    disagreements = []
    for category, completion, gold, label in cases:
        group = "GSM8K styles" if category == "gsm8k style" else (
            "edge cases" if (category, completion, gold, label) in EDGE else "LaTeX: " + category)
        for name, verifier in verifiers.items():
            verdict = verifier(completion, gold)
            for key in ((group, name), ("all", name), ("LaTeX total" if group.startswith("LaTeX") else group + " ", name)):
                row = stats[key]
                row[0] += 1
                row[1] += verdict == label
                row[2] += label == 0 and verdict == 1
                row[3] += verdict is None
            if name == "math_correctness" and verdict != label:
                disagreements.append((category, completion[-80:], gold, label, verdict))
    names = list(verifiers)
    groups = sorted({g for g, _ in stats if g not in ("all", "LaTeX total") and not g.endswith(" ")},
                    key=lambda g: (not g.startswith("LaTeX: "), g))
    print(f"labelled set: {len(cases)} cases (tests/rewards/labelled_math.py)\n")
    print("| group | n | " + " | ".join(f"{n} agree / wrong=1 / None" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for group in groups + ["LaTeX total", "all"]:
        n = stats[(group, names[0])][0]
        cells = [f"{100 * s[1] / s[0]:.1f}% / {s[2]} / {s[3]}" for s in (stats[(group, name)] for name in names)]
        print(f"| {group} | {n} | " + " | ".join(cells) + " |")
    print(f"\nmath_correctness disagreements with the labels: {len(disagreements)}")
    for row in disagreements:
        print("  ", row)

    lines = (ROOT / "tests" / "fixtures" / "math_verify" / "cases.jsonl").read_text().splitlines()
    mv_cases = [json.loads(line) for line in lines]
    failed = [c for c in mv_cases if reward.judge(c["pred"], c["gold"]) != bool(c["expected"])]
    passed = len(mv_cases) - len(failed)
    print(f"\nMath-Verify's own test cases (tests/fixtures/math_verify/cases.jsonl): {passed}/{len(mv_cases)} "
          f"= {100 * passed / len(mv_cases):.1f}% pass through math_correctness")
    for case in failed:
        verdict = reward.judge(case["pred"], case["gold"])
        print(f"  {case['file']}:{case['line']} expected {case['expected']} got {verdict}: "
              f"gold {case['gold'][:60]!r} pred {case['pred'][-60:]!r}")


EDGE = set(EDGE_CASES)

if __name__ == "__main__":
    main()
