"""The synthetic arithmetic generator: determinism, disjoint splits, correct answers, knobs honoured."""

from __future__ import annotations

import random
import re

import pytest

from grpo.data.synthetic import SyntheticSizeError, generate_splits, make_problem

KNOBS = dict(min_digits=1, max_digits=2, num_operations=2, operations=["+", "-", "*"], word_problems=0.0)


def test_same_seed_same_problems_other_seed_other_problems():
    first = generate_splits(200, 50, seed=7, **KNOBS)
    again = generate_splits(200, 50, seed=7, **KNOBS)
    other = generate_splits(200, 50, seed=8, **KNOBS)
    assert first == again
    assert first[0] != other[0]


def test_train_and_held_out_never_share_a_problem():
    train, held_out = generate_splits(500, 200, seed=3, **KNOBS)
    assert len(train) == 500 and len(held_out) == 200
    assert not {p.expression for p in train} & {p.expression for p in held_out}
    assert len({p.expression for p in train}) == 500  # no duplicates inside a split either


def test_held_out_does_not_depend_on_train_size():
    # growing the training set must not change what is held out (results stay comparable across runs)
    assert generate_splits(50, 30, seed=1, **KNOBS)[1] == generate_splits(400, 30, seed=1, **KNOBS)[1]


@pytest.mark.parametrize("seed", range(20))
def test_answers_follow_standard_precedence(seed):
    problem = make_problem(random.Random(seed), 1, 2, 3, ["+", "-", "*"], 0.0)
    tokens = problem.expression.split()
    # recompute independently: fold multiplications first, then add/subtract left to right
    values, ops = [int(tokens[0])], []
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        if op == "*":
            values[-1] *= int(operand)
        else:
            values.append(int(operand)), ops.append(op)
    total = values[0]
    for op, value in zip(ops, values[1:]):
        total += value if op == "+" else -value
    assert problem.answer == total
    assert problem.question == f"What is {problem.expression}?"


def test_digits_and_operations_knobs():
    train, _ = generate_splits(100, 10, min_digits=3, max_digits=3, num_operations=1, operations=["*"],
                               word_problems=0.0, seed=0)
    for problem in train:
        a, op, b = problem.expression.split()
        assert op == "*" and len(a) == 3 and len(b) == 3
        assert problem.answer == int(a) * int(b)


def test_word_problems_carry_the_operands_and_answer():
    train, _ = generate_splits(60, 10, min_digits=2, max_digits=2, num_operations=1, operations=["+", "-"],
                               word_problems=1.0, seed=0)
    for problem in train:
        a, op, b = problem.expression.split()
        assert problem.question.endswith("?") and not problem.question.startswith("What is")
        assert re.findall(r"\d+", problem.question) == [a, b]
        assert problem.answer == (int(a) + int(b) if op == "+" else int(a) - int(b)) >= 0


def test_asking_for_more_problems_than_exist_is_a_clear_error():
    # one-digit additions: only 100 distinct expressions exist
    with pytest.raises(SyntheticSizeError, match="found only .* distinct problems"):
        generate_splits(150, 10, min_digits=1, max_digits=1, num_operations=1, operations=["+"],
                        word_problems=0.0, seed=0)


def test_both_splits_keep_the_mix_of_operation_counts_when_a_stratum_is_small():
    # one-digit +, - and *: about 255 distinct one-operation problems exist and the held-out split takes about 100;
    # the training split still draws its one-operation problems at the same rate (it drifted to 31%, seeds 5-7)
    train, held_out = generate_splits(250, 200, min_digits=1, max_digits=1, min_operations=1, num_operations=2,
                                      operations=["+", "-", "*"], word_problems=0.0, seed=5)
    train_share = sum(p.operations == 1 for p in train) / len(train)
    held_out_share = sum(p.operations == 1 for p in held_out) / len(held_out)
    assert 0.42 < train_share < 0.58 and 0.42 < held_out_share < 0.58
    assert not {p.expression for p in train} & {p.expression for p in held_out}


def test_a_used_up_stratum_is_named():
    with pytest.raises(SyntheticSizeError, match="with 1 operation"):
        generate_splits(400, 100, min_digits=1, max_digits=1, min_operations=1, num_operations=2,
                        operations=["+", "-"], word_problems=0.0, seed=5)
