"""Extract Math-Verify's own (gold, prediction, expected) test triples from a checkout of
github.com/huggingface/Math-Verify (Apache-2.0; the test files carry an MIT header) into JSON lines.

Usage: python scripts/math_verify_cases.py GIT_DIR_OR_WORKTREE [--out tests/fixtures/math_verify/cases.jsonl]

Every ``@pytest.mark.parametrize`` whose names start with ``gold, pred`` and include ``expected`` (in any of the
test files), with literal rows, is read with ``ast`` (nothing is imported or executed). Rows that set ``strict``,
``allow_set_relation_comp`` or ``precision`` to a value other than math-verify's default are skipped; the
tests' match types are not kept: the cases are run with this project's defaults, as the issue asks.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path


def read_tests(source: Path) -> dict[str, str]:
    """{path: text} of tests/*.py in a work tree or a bare git directory (HEAD)."""
    if (source / "tests").is_dir():
        return {str(p.relative_to(source)): p.read_text() for p in sorted((source / "tests").glob("*.py"))}
    names = subprocess.run(["git", "--git-dir", str(source), "ls-tree", "-r", "--name-only", "HEAD", "tests/"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {name: subprocess.run(["git", "--git-dir", str(source), "show", f"HEAD:{name}"], capture_output=True,
                                 text=True, check=True).stdout for name in names if name.endswith(".py")}


# math-verify's defaults for the settings some test tables vary
NON_DEFAULT = {"strict": True, "allow_set_relation_comp": False, "precision": 6}


def triples(path: str, text: str) -> list[dict]:
    found = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize" and len(node.args) >= 2):
            continue
        try:
            names = ast.literal_eval(node.args[0])
        except ValueError:
            continue
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if names[:2] != ["gold", "pred"] or "expected" not in names:
            continue
        for row in getattr(node.args[1], "elts", []):
            try:
                value = dict(zip(names, ast.literal_eval(row)))
            except (ValueError, TypeError):
                continue
            # rows written for a non-default setting say nothing about the defaults: skipped
            if any(value.get(name, default) != default for name, default in NON_DEFAULT.items()):
                continue
            if isinstance(value["gold"], str) and isinstance(value["pred"], str):
                found.append({"file": path, "line": row.lineno, "gold": value["gold"], "pred": value["pred"],
                              "expected": int(value["expected"])})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cases = [case for path, text in read_tests(args.source).items() for case in triples(path, text)]
    lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(lines)
    else:
        sys.stdout.write(lines)
    by_file: dict[str, int] = {}
    for case in cases:
        by_file[case["file"]] = by_file.get(case["file"], 0) + 1
    print(f"{len(cases)} cases: {by_file}", file=sys.stderr)


if __name__ == "__main__":
    main()
