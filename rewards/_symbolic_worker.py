"""Child process of :mod:`rewards.symbolic`: reads ``{"gold", "pred"}`` JSON lines, writes ``{"equal"}`` lines.

math-verify's own signal-based timeouts are switched off here: on a timeout it answers False ("not equal"), which
would turn "too slow to decide" into a wrong verdict. The parent's deadline and kill are the bound, and a kill is
None (undecided). Both answers arrive already extracted by
:mod:`rewards.math` and are parsed as ``$answer$`` by math-verify's LaTeX extraction only (see ``latex_only``), with the gold's parse
cached because one gold is compared with a whole group of completions.
"""

from __future__ import annotations

import functools
import json
import logging
import sys


def main() -> None:
    logging.disable(logging.CRITICAL)  # math-verify logs every parse failure and timeout warning
    from math_verify import LatexExtractionConfig, parse, verify

    # LaTeX only: math-verify's plain-expression extraction (ExprExtractionConfig) hands the text to sympy's
    # parse_expr, which eval()s it; the LaTeX parser (latex2sympy2, an ANTLR grammar) builds sympy objects
    # without evaluating any text. Plain answers such as 2x+3 or (2, 5) are valid LaTeX too.
    latex_only = [LatexExtractionConfig()]

    @functools.lru_cache(maxsize=4096)
    def parsed(answer: str) -> list:
        return parse(f"${answer}$", extraction_config=latex_only, parsing_timeout=None)

    def equal(gold: str, pred: str) -> bool | None:
        gold_parsed, pred_parsed = parsed(gold), parsed(pred)
        if not gold_parsed or not pred_parsed:
            return None  # one side is not maths math-verify can read: no opinion
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))

    equal("\\frac{1}{2}", "0.5")  # warm sympy and the LaTeX parser before saying ready
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            verdict = equal(str(request["gold"]), str(request["pred"]))
        except Exception:  # noqa: BLE001 - any failure inside sympy is "undecided", reported as null
            verdict = None
        out.write(json.dumps({"equal": verdict}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
