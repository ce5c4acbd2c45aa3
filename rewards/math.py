"""Final-answer extraction, numeric comparison, and the math correctness reward.

Training and evaluation both judge answers through :func:`extract_answer` and :func:`answers_match`, so the two
never disagree on what counts as right.

Extraction order (the first class that is present wins; inside a class the *last* occurrence wins, because a model
that restates its answer ends with the one it settled on):

1. ``<answer>…</answer>`` - the tag our prompts ask for; an unclosed ``<answer>`` at the end counts to the end.
2. ``\\boxed{…}`` / ``\\fbox{…}`` - the math convention (nested braces are matched).
3. ``#### N`` - GSM8K's marker.
4. an answer phrase: "the (final) answer is …", an ``Answer:`` line, or an ``A:`` line.
5. optionally the last number in the text (``fallback_last_number``, default on).

Explicit markers beat the fallback because a stray number in reasoning must never override a stated answer.
A tag outranks ``\\boxed`` because it is what the run's prompt requested, and ``\\boxed`` outranks phrases
because it is unambiguous about where the answer starts and ends. Inside a marker's text, the part after the
last ``=`` is taken (``5 + 3 = 8`` -> ``8``), then the first number there (``72 dollars`` -> ``72``).

Numbers compare as exact fractions after normalisation (thousands separators, currency, ``\\$``, ``\\text{}``,
``^\\circ``, ``\\frac``/``\\dfrac``, ``a/b``, trailing ``.`` and ``.00``, unicode minus). Tolerance: a decimal with
at least two places matches a fraction that rounds (half up) to it, so ``0.33`` matches ``1/3`` but ``0.3`` does
not; otherwise values must be equal. ``50%`` is the number 50; it also matches ``0.5`` when exactly one side
carries the percent sign. Non-numeric answers compare as lower-cased text with spaces and punctuation at the ends
trimmed.

Safety: nothing here evaluates model output; every scan is linear in the text length (hostile input tests in
``tests/rewards``), and numbers longer than :data:`MAX_DIGITS` digits are treated as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rewards.registry import register
from rewards.text import completion_text

MAX_DIGITS = 60  # longer digit runs are not parsed as numbers (int() of huge strings is slow and pointless)
_OCCURRENCES_TRIED = 5  # how many of the last occurrences of one marker are tried before giving up on it

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_NUMBER_EXPR = re.compile(
    r"(?P<latexfrac>(?P<fsign>-)?\\[dt]?frac\s*\{\s*(?P<fnum>-?" + _NUM + r")\s*\}\s*\{\s*(?P<fden>-?" + _NUM + r")\s*\})"
    r"|(?P<shortfrac>(?P<ssign>-)?\\[dt]?frac(?P<snum>\d)(?P<sden>\d))"
    r"|(?P<mixed>(?P<msign>-)?(?P<mwhole>\d+)\s+(?P<mnum>\d+)\s*/\s*(?P<mden>\d+))"
    r"|(?P<slash>(?P<psign>-)?(?P<pnum>" + _NUM + r")\s*/\s*(?P<pden>" + _NUM + r"))"
    r"|(?P<plain>(?P<sign>[-+])?(?P<value>" + _NUM + r")\s*(?P<percent>%|percent\b)?)"
)
_WORD_NUMBERS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100}
_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K's "<<48/2=24>>" calculator notes
# "the answer is", "answer to the question is", "Answer:", "answer =", or an "A:" line (bounded, linear-time).
# "answer to ..." needs "is": "convert the answer to weeks: 28 / 7 = 4" is reasoning, not a final statement.
_ANSWER_PHRASE = re.compile(
    r"\banswer(?:\s+to\b[^.\n:]{0,80}?)?\s+(?:is|was|will be|would be)\b\s*:?"
    r"|\banswer\s*[:=]|(?m:^[ \t*#>-]*a\s*:)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Number:
    value: Fraction
    decimals: int | None = None  # places after the point when written as a decimal
    percent: bool = False


# ------------------------------------------------------------------------------------------------- extraction


def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer stated in ``text`` (cleaned, e.g. ``"72"``, ``"3/4"``), or None when there is none."""
    if not text:
        return None
    text = _CALCULATOR_ANNOTATION.sub("", text)
    for finder in (_from_answer_tag, _from_boxed, _from_hashes, _from_answer_phrase):
        found = finder(text)
        if found is not None:
            return found
    if fallback_last_number:
        last = None
        for last in _NUMBER_EXPR.finditer(_clean_latex(text)):
            pass
        return _number_text(last) if last else None
    return None


def _from_answer_tag(text: str) -> str | None:
    lowered = text.lower()
    start = lowered.rfind("<answer>")
    if start < 0:
        return None
    end = lowered.find("</answer>", start)
    content = text[start + len("<answer>") : end if end >= 0 else len(text)]
    inner = _from_boxed(content) or _from_answer_phrase(content)
    return inner or _candidate(content)


def _from_boxed(text: str) -> str | None:
    position = len(text)
    for _ in range(_OCCURRENCES_TRIED):
        position = max(text.rfind("\\boxed", 0, position), text.rfind("\\fbox", 0, position))
        if position < 0:
            return None
        content = _braced_after(text, position + (6 if text.startswith("\\boxed", position) else 5))
        if content is not None:
            found = _candidate(content)
            if found is not None:
                return found
    return None


def _braced_after(text: str, index: int) -> str | None:
    """Content of the brace group opening at ``index`` (after spaces), matching nested braces; None if unclosed."""
    while index < len(text) and text[index] == " ":
        index += 1
    if index >= len(text) or text[index] != "{":
        return None
    depth = 0
    for cursor in range(index, len(text)):
        char = text[cursor]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1 : cursor]
    return None


def _from_hashes(text: str) -> str | None:
    start = text.rfind("####")
    if start < 0:
        return None
    line = text[start + 4 :].split("\n", 1)[0]
    return _candidate(line)


def _from_answer_phrase(text: str) -> str | None:
    matches = list(_ANSWER_PHRASE.finditer(text))
    for match in reversed(matches[-_OCCURRENCES_TRIED:]):
        snippet = _sentence_after(text, match.end())
        # A phrase with neither a number nor a short answer after it ("the answer: how many ...") is not a statement.
        if not any(char.isdigit() for char in snippet) and len(snippet.split()) > 4:
            continue
        found = _candidate(snippet)
        if found is not None:
            return found
    return None


def _sentence_after(text: str, start: int) -> str:
    rest = text[start : start + 500].lstrip(" \t")
    if rest.startswith("\n"):  # "Answer:" on its own line, the answer on the next
        rest = rest.lstrip(" \t\n")
    rest = rest.split("\n", 1)[0]
    stop = re.search(r"\.(?:\s|$)|[;!?]", rest)  # a period that ends a sentence, not the one in 3.5
    return rest[: stop.start()] if stop else rest


def _candidate(snippet: str) -> str | None:
    """The answer inside a marker's text: after the last '=', the first number, or else the cleaned text."""
    cleaned = _clean_latex(snippet)
    if "=" in cleaned:
        cleaned = cleaned.rsplit("=", 1)[1]
    number = _NUMBER_EXPR.search(cleaned)
    if number:
        return _number_text(number)
    words = re.sub(r"\s+", " ", cleaned).strip(" \t\n.,;:!?'\"()[]{}*`").lower()
    if not words:
        return None
    return str(_WORD_NUMBERS[words]) if words in _WORD_NUMBERS else words


def _clean_latex(text: str) -> str:
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    for old, new in (("\\$", ""), ("$", ""), ("\\%", "%"), ("\\left", ""), ("\\right", ""), ("\\!", ""),
                     ("\\,", ""), ("\\;", ""), ("^\\circ", ""), ("^{\\circ}", ""), ("°", ""), ("−", "-"),
                     ("**", ""), ("\\cdot", "*"), ("\\times", "*")):
        text = text.replace(old, new)
    return text


def _number_text(match: re.Match) -> str:
    return re.sub(r"\s+", "", match.group(0)).rstrip(".")


# ------------------------------------------------------------------------------------------------- comparison


def parse_number(text: str) -> Number | None:
    """Parse one cleaned answer (as :func:`extract_answer` returns it) into a :class:`Number`, or None."""
    match = _NUMBER_EXPR.fullmatch(_clean_latex(text).strip().rstrip("."))
    if not match or sum(char.isdigit() for char in match.group(0)) > MAX_DIGITS:
        return None
    groups = match.groupdict()
    if groups["latexfrac"]:
        return _ratio(groups["fsign"], groups["fnum"], groups["fden"])
    if groups["shortfrac"]:
        return _ratio(groups["ssign"], groups["snum"], groups["sden"])
    if groups["mixed"]:
        whole = _decimal(groups["mwhole"])
        part = _ratio(None, groups["mnum"], groups["mden"])
        if part is None:
            return None
        value = whole.value + part.value
        return Number(-value if groups["msign"] else value)
    if groups["slash"]:
        return _ratio(groups["psign"], groups["pnum"], groups["pden"])
    number = _decimal(groups["value"])
    value = -number.value if groups["sign"] == "-" else number.value
    return Number(value, number.decimals, percent=bool(groups["percent"]))


def _decimal(text: str) -> Number:
    text = text.replace(",", "")
    decimals = len(text.split(".", 1)[1]) if "." in text else None
    return Number(Fraction(text), decimals)


def _ratio(sign: str | None, numerator: str, denominator: str) -> Number | None:
    den = _decimal(denominator.lstrip("-")).value * (-1 if denominator.startswith("-") else 1)
    if den == 0:
        return None
    num = _decimal(numerator.lstrip("-")).value * (-1 if numerator.startswith("-") else 1)
    value = num / den
    return Number(-value if sign else value)


def _rounds_to(exact: Fraction, decimal: Number) -> bool:
    """True when ``exact`` rounded half-up to ``decimal``'s places equals it (places >= 2)."""
    if decimal.decimals is None or decimal.decimals < 2:
        return False
    scale = 10**decimal.decimals
    magnitude = (abs(exact) * scale + Fraction(1, 2)).__floor__()
    return Fraction(magnitude, scale) * (1 if exact >= 0 else -1) == decimal.value


def numbers_match(predicted: Number, reference: Number) -> bool:
    if predicted.value == reference.value:
        return True
    if predicted.percent != reference.percent:  # exactly one side says "%": 50% == 0.5
        as_percent, plain = (predicted, reference) if predicted.percent else (reference, predicted)
        if as_percent.value / 100 == plain.value:
            return True
    return _rounds_to(reference.value, predicted) or _rounds_to(predicted.value, reference)


def normalize_text_answer(text: str) -> str:
    return re.sub(r"\s+", " ", _clean_latex(text)).strip(" \t\n.,;:!?'\"()[]{}*`").lower()


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Whether an extracted answer equals the reference answer (both as :func:`extract_answer` cleans them)."""
    if predicted is None or reference is None:
        return False
    predicted_number, reference_number = parse_number(predicted), parse_number(reference)
    if predicted_number is not None and reference_number is not None:
        return numbers_match(predicted_number, reference_number)
    if (predicted_number is None) != (reference_number is None):
        return False
    return normalize_text_answer(predicted) == normalize_text_answer(reference)


def answer_key(answer: str | None) -> Any:
    """A hashable canonical form for majority voting: the exact value for numbers, else normalised text."""
    if answer is None:
        return None
    number = parse_number(answer)
    return number.value if number is not None else normalize_text_answer(answer)


def parse_reference(reference: Any) -> str | None:
    """The reference answer: a bare answer (``72``, ``\\frac{3}{4}``) or a GSM8K solution ending in ``#### 72``."""
    if reference is None:
        return None
    text = str(reference)
    if "####" in text:
        return _from_hashes(text)
    return _from_boxed(text) or _candidate(text)


# ------------------------------------------------------------------------------------------------- the reward


@register("math_correctness", kind="correctness")
@dataclass(frozen=True)
class MathCorrectness:
    """1.0 when the completion's final answer equals the reference ``answer`` column, else 0.0.

    ``None`` only when the reference itself cannot be parsed; such rows are counted in the metric
    ``math_correctness/unparseable_reference``. ``fallback_last_number`` lets the last number stand in for an
    answer when no explicit marker is present; ``reference_column`` names the dataset column.
    """

    fallback_last_number: bool = True
    reference_column: str = "answer"
    __name__ = "math_correctness"

    def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        if self.reference_column not in kwargs:
            raise KeyError(f"math_correctness needs the dataset column {self.reference_column!r}")
        references = kwargs[self.reference_column]
        scores: list[float | None] = []
        for completion, reference in zip(completions, references, strict=True):
            expected = parse_reference(reference)
            if expected is None:
                scores.append(None)
                continue
            found = extract_answer(completion_text(completion), self.fallback_last_number)
            scores.append(1.0 if answers_match(found, expected) else 0.0)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("math_correctness/unparseable_reference", float(scores.count(None)))
        return scores
