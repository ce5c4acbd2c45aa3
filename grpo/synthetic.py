"""A seeded generator of arithmetic problems: the quickstart's data, and a controllable difficulty ladder.

Knobs: digits per operand, number of operations, which operators, and the share phrased as short word problems
(one-operation problems only; longer chains stay symbolic). The held-out split is drawn first from its own
random stream and the training split skips every expression it contains, so the two never share a problem,
whatever the sizes. Answers are computed from the generated operands (standard precedence), never by evaluating
text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam"]
ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards"]


class SyntheticSizeError(ValueError):
    """The knobs allow fewer distinct problems than the sizes ask for."""


@dataclass(frozen=True)
class Problem:
    expression: str  # canonical key, e.g. "12 + 7 * 3"; two problems are the same iff their expressions are
    question: str
    answer: int


def _operand(rng: random.Random, min_digits: int, max_digits: int) -> int:
    digits = rng.randint(min_digits, max_digits)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def _value(operands: list[int], operators: list[str]) -> int:
    """Standard precedence: multiplications first, then additions and subtractions left to right."""
    terms, signs = [operands[0]], []
    for operator, operand in zip(operators, operands[1:]):
        if operator == "*":
            terms[-1] *= operand
        else:
            terms.append(operand)
            signs.append(operator)
    total = terms[0]
    for sign, term in zip(signs, terms[1:]):
        total = total + term if sign == "+" else total - term
    return total


def _word_problem(rng: random.Random, a: int, operator: str, b: int) -> str:
    name, other = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    if operator == "+":
        return f"{name} has {a} {item}. {other} gives {name} {b} more {item}. How many {item} does {name} have now?"
    if operator == "-":
        return f"{name} has {a} {item} and gives {b} of them to {other}. How many {item} does {name} have left?"
    return f"{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy in total?"


def make_problem(rng: random.Random, min_digits: int, max_digits: int, num_operations: int,
                 operations: list[str], word_problems: float) -> Problem:
    operands = [_operand(rng, min_digits, max_digits) for _ in range(num_operations + 1)]
    operators = [rng.choice(operations) for _ in range(num_operations)]
    if num_operations == 1 and operators[0] == "-" and operands[0] < operands[1]:
        operands.reverse()  # keep single subtractions non-negative so word problems make sense
    expression = str(operands[0]) + "".join(f" {op} {value}" for op, value in zip(operators, operands[1:]))
    if num_operations == 1 and rng.random() < word_problems:
        question = _word_problem(rng, operands[0], operators[0], operands[1])
    else:
        question = f"What is {expression}?"
    return Problem(expression=expression, question=question, answer=_value(operands, operators))


def generate_splits(train_size: int, eval_size: int, *, min_digits: int, max_digits: int, num_operations: int,
                    operations: list[str], word_problems: float, seed: int) -> tuple[list[Problem], list[Problem]]:
    """(train, held_out): deterministic for a seed, no duplicates, no expression shared between them."""
    knobs = dict(min_digits=min_digits, max_digits=max_digits, num_operations=num_operations,
                 operations=list(operations), word_problems=word_problems)
    held_out = _unique(random.Random(f"{seed}-held-out"), eval_size, set(), knobs)
    train = _unique(random.Random(f"{seed}-train"), train_size, {p.expression for p in held_out}, knobs)
    return train, held_out


def _unique(rng: random.Random, size: int, excluded: set[str], knobs: dict) -> list[Problem]:
    seen = set(excluded)
    problems: list[Problem] = []
    attempts = 0
    while len(problems) < size:
        attempts += 1
        if attempts > 50 * size + 1000:
            raise SyntheticSizeError(
                f"data.synthetic: found only {len(problems)} distinct problems of the {size} asked for with these "
                "knobs; lower train_size/eval_size or widen max_digits, num_operations or operations"
            )
        problem = make_problem(rng, **knobs)
        if problem.expression not in seen:
            seen.add(problem.expression)
            problems.append(problem)
    return problems
