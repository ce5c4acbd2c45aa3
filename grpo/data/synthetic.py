"""A seeded generator of arithmetic problems: the quickstart's data, and a controllable difficulty ladder.

Knobs: digits per operand, number of operations (a range, for a curriculum), which operators, and the share
phrased as word problems. A one-operation word problem is one sentence; a longer one is a short story told in
order ("Ava has 12 coins. Ben gives her 5 more. She trades each coin for 3 stickers..."), so it is evaluated left
to right and its key is parenthesised ("(12 + 5) * 3") to keep it apart from the symbolic "12 + 5 * 3". The
held-out split is drawn first from its own random stream and the training split skips every expression it
contains, so the two never share a problem, whatever the sizes. Both splits follow the same mix of operation
counts: each problem's count is drawn first and a duplicate is redrawn with the same count, so a small stratum
(one-digit, one-operation problems: a few hundred exist) that the held-out split mostly used up cannot push the
training split towards the harder strata. A stratum with too few distinct problems left is an error that names it.
Answers are computed from the generated operands (standard precedence), never by evaluating text.
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
    operations: int = 1
    digits: int = 1  # digits of the longest operand

    @property
    def difficulty(self) -> tuple[int, int]:
        """Curriculum order: more operations is harder, then longer operands."""
        return (self.operations, self.digits)


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


def _story(rng: random.Random, operands: list[int], operators: list[str]) -> tuple[str, str, int]:
    """A several-step word problem told in order: (question, parenthesised expression, answer).

    Steps are evaluated left to right, as a reader would. So that every story makes sense: amounts are at least 2,
    a subtraction larger than the running total becomes an addition (nobody gives away coins they do not have), and
    a multiplier is 2 to 5 ("trades each for 3 new ones"). The key and the answer follow the story as told.
    """
    name, other = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    total = max(operands[0], 2)
    sentences, expression = [f"{name} has {total} {item}."], str(total)
    for step, (operator, value) in enumerate(zip(operators, operands[1:])):
        value = max(value, 2)
        if operator == "-" and value > total:
            operator = "+"
        if operator == "*":
            value = 2 + value % 4
            sentences.append(f"{name} trades each of them for {value} new {item}.")
            total *= value
        elif operator == "-":
            sentences.append(f"{name} gives {value} {item} to {other}.")
            total -= value
        else:
            sentences.append(f"{other} gives {name} {value} more {item}.")
            total += value
        expression = f"({expression}) {operator} {value}" if step else f"{expression} {operator} {value}"
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences), expression, total


QUESTION_TEMPLATE = "What is {expression}?"


def make_problem(rng: random.Random, min_digits: int, max_digits: int, num_operations: int,
                 operations: list[str], word_problems: float, min_operations: int | None = None,
                 question_template: str = QUESTION_TEMPLATE) -> Problem:
    """One problem with between ``min_operations`` (default: ``num_operations``) and ``num_operations`` steps;
    symbolic ones are phrased with ``question_template`` (its ``{expression}`` is replaced)."""
    if min_operations is not None and min_operations < num_operations:
        num_operations = rng.randint(min_operations, num_operations)
    operands = [_operand(rng, min_digits, max_digits) for _ in range(num_operations + 1)]
    operators = [rng.choice(operations) for _ in range(num_operations)]
    if num_operations == 1 and operators[0] == "-" and operands[0] < operands[1]:
        operands.reverse()  # keep single subtractions non-negative so word problems make sense
    shape = dict(operations=num_operations, digits=max(len(str(value)) for value in operands))
    expression = str(operands[0]) + "".join(f" {op} {value}" for op, value in zip(operators, operands[1:]))
    if word_problems and rng.random() < word_problems:
        if num_operations == 1:
            question = _word_problem(rng, operands[0], operators[0], operands[1])
        else:
            question, expression, answer = _story(rng, operands, operators)
            return Problem(expression=expression, question=question, answer=answer, **shape)
    else:
        question = question_template.replace("{expression}", expression)
    return Problem(expression=expression, question=question, answer=_value(operands, operators), **shape)


def generate_splits(train_size: int, eval_size: int, *, min_digits: int, max_digits: int, num_operations: int,
                    operations: list[str], word_problems: float, seed: int, min_operations: int | None = None,
                    question_template: str = QUESTION_TEMPLATE) -> tuple[list[Problem], list[Problem]]:
    """(train, held_out): deterministic for a seed, no duplicates, no expression shared between them."""
    knobs = dict(min_digits=min_digits, max_digits=max_digits, num_operations=num_operations,
                 operations=list(operations), word_problems=word_problems, min_operations=min_operations,
                 question_template=question_template)
    held_out = _unique(random.Random(f"{seed}-held-out"), eval_size, set(), knobs)
    train = _unique(random.Random(f"{seed}-train"), train_size, {p.expression for p in held_out}, knobs)
    return train, held_out


# Redraws of one problem before its stratum counts as used up: when 99% of a stratum is taken, a false alarm has odds
# of 0.99^1000, about 4e-5.
REDRAWS = 1000


def _unique(rng: random.Random, size: int, excluded: set[str], knobs: dict) -> list[Problem]:
    """``size`` distinct problems not in ``excluded``; each one's operation count drawn before its operands.

    Redrawing a duplicate with a fresh operation count (as an earlier version did) skews the split towards the
    strata that still have room: the GPU recipe's held-out split came out 36% one-operation problems and its
    training split 5%, so training and evaluation measured different tasks.
    """
    low, high = knobs["min_operations"] or knobs["num_operations"], knobs["num_operations"]
    fixed = {key: value for key, value in knobs.items() if key not in ("min_operations", "num_operations")}
    seen = set(excluded)
    problems: list[Problem] = []
    while len(problems) < size:
        operations = rng.randint(low, high) if low < high else high
        for _ in range(REDRAWS):
            problem = make_problem(rng, num_operations=operations, **fixed)
            if problem.expression not in seen:
                break
        else:
            found = sum(p.operations == operations for p in problems)
            raise SyntheticSizeError(
                f"data.synthetic: found only {len(problems)} distinct problems of the {size} asked for with these "
                f"knobs ({found} with {operations} operation(s), whose distinct problems ran out); lower "
                "train_size/eval_size or widen max_digits, num_operations or operations"
            )
        seen.add(problem.expression)
        problems.append(problem)
    return problems
