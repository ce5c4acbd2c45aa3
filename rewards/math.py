"""Final-answer extraction, comparison, and the math correctness reward (docs/rewards.md has the full rules).

Training and evaluation both judge answers through :func:`extract_answer` and :func:`judge`, so the two never
disagree on what counts as right.

Extraction reads the last :data:`TAIL_CHARS` characters. Order:

1. ``<answer>…</answer>`` - the tag our prompts ask for; an unclosed ``<answer>`` at the end counts to the end.
2. of ``\\boxed{…}``/``\\fbox{…}``, ``#### N`` and an answer phrase ("the (final) answer is …", ``Answer:``,
   ``A:``), the one stated last: a box in the working is overridden by a final answer stated after it.
3. with no marker, the last formula (``$…$``) when no number follows it, else the last number
   (``fallback_last_number``, default on).

Inside a marker's text a number keeps its value and drops units; a symbolic answer is kept whole (never reduced
to a number inside it); ``x = 5`` and ``5 + 3 = 8`` give the number after the last ``=``; two different answers
joined by "or" come back prefixed with :data:`HEDGE` and are never right; "the answer is correct" is not an answer.

Comparison (:func:`judge`): plain numbers as exact fractions (no subprocess; a decimal with two or more places
matches a fraction that rounds half up to it; ``50%`` is 50, and 0.5 when exactly one side has the ``%``); text
answers as text; everything else through math-verify in a killable child process (:mod:`rewards.symbolic`),
``None`` when that cannot decide.

Safety: nothing here evaluates model output; every scan is linear in the (clipped) text length (hostile input tests
in ``tests/rewards``), and numbers longer than :data:`MAX_DIGITS` digits are not parsed as numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rewards import symbolic
from rewards import symbolic as _symbolic
from rewards.registry import register
from rewards.text import completion_text

# Longer digit runs are not parsed as numbers: int() of huge strings is slow (quadratic, and refused past 4,300
# digits). 1,000 digits parse in about 10 microseconds and cover degenerate numerals a weak policy writes
# ("196 / 198 = 0.000..." for 180 characters), which at 60 were left undecided instead of judged wrong.
MAX_DIGITS = 1000
_OCCURRENCES_TRIED = 5  # how many of the last occurrences of one marker are tried before giving up on it
# Only the tail of a completion is read (verl clips to its last 300 characters for the same reason): the final
# answer is stated at the end, and a bound on the text scanned bounds every scan below, whatever the input's size.
# 4,096 characters hold the whole answer statement of a 1k-token completion and the last ~100 lines of a longer one;
# a 5 MB one-line completion otherwise costs seconds in the regex scans.
TAIL_CHARS = 4096
HEDGE = "<hedge> "  # prefix of an extracted answer that states two different answers ("42 or 43"): never right

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_NUMBER_EXPR = re.compile(
    r"(?P<lmixed>(?P<lmsign>-)?(?P<lmwhole>\d+)\s*\\[dt]?frac\s*\{\s*(?P<lmnum>\d+)\s*\}\s*\{\s*(?P<lmden>\d+)\s*\})"
    r"|(?P<latexfrac>(?P<fsign>-)?\\[dt]?frac\s*\{\s*(?P<fnum>-?" + _NUM + r")\s*\}\s*\{\s*(?P<fden>-?" + _NUM + r")\s*\})"
    r"|(?P<shortfrac>(?P<ssign>-)?\\[dt]?frac(?P<snum>\d)(?P<sden>\d))"
    r"|(?P<mixed>(?P<msign>-)?(?P<mwhole>\d+)[ \t]+(?P<mnum>\d+)\s*/\s*(?P<mden>\d+))"
    r"|(?P<slash>(?P<psign>-)?(?P<pnum>" + _NUM + r")\s*/\s*(?P<pden>" + _NUM + r"))"
    r"|(?P<plain>(?P<sign>[-+])?(?P<value>" + _NUM + r")\s*(?P<percent>%|percent\b)?)"
)
_ONES = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}
_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K's "<<48/2=24>>" calculator notes
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)\b")
_POWER_STARS = re.compile(r"(?<=[\w)}])\s*\*\*\s*(?=[\w({-])")  # 2**3 is a power; **bold** is markup
# "the answer is", "answer to the question is", "Answer:", "answer =", or an "A:" line (bounded, linear-time).
# "answer to ..." needs "is": "convert the answer to weeks: 28 / 7 = 4" is reasoning, not a final statement.
_ANSWER_PHRASE = re.compile(
    r"\banswer(?:\s+to\b[^.\n:]{0,80}?)?\s+(?:is|was|will be|would be)\b\s*:?"
    r"|\banswer\s*[:=]|(?m:^[ \t*#>-]*a\s*:)",
    re.IGNORECASE,
)
# Words that, right after "the answer is", say something about the answer rather than state it.
_NOT_ANSWERS = frozenset(
    "correct incorrect right wrong reasonable unreasonable plausible consistent valid invalid not in that this "
    "because below above given clear obvious simple straightforward as likely therefore confirmed verified "
    "indeed also still".split())
_HEDGE = re.compile(r"[\w}).]\s*,?\s*\bor\b\s*[-+\w\\($.]", re.IGNORECASE)
# Inline/display maths. A span's content cannot hold its own opener, so a scan from one opener stops at the next:
# linear in the text even for "\\(" repeated 100,000 times.
_MATH_SPAN = re.compile(r"\$\$?([^$]{1,1000}?)\$\$?|\\\(((?:[^\\]|\\(?![()])){1,1000}?)\\\)"
                        r"|\\\[((?:[^\\]|\\(?![\[\]])){1,1000}?)\\\]")
# An answer that is still a computation on numbers ("15 + 5 + 57", "3 \\times 4", "12 / 4 - 1"): literals, brackets
# and operators only, with an operator between two operands. See judge(). A power ("2^{10}") stays an answer: it is
# how an exact large number is written (and the labelled set of issue 11 counts "2^3" right for 8).
_LITERAL_ARITHMETIC = re.compile(r"(?:\\(?:times|cdot|div|left|right|[dt]?frac)|[\d\s.,()+\-*/×÷·^{}])+")
_SCIENTIFIC_FORM = re.compile(r"-?\d+(?:\.\d+)?\s*(?:[*×·]|\\cdot|\\times)\s*10\s*\^\s*\{?\s*[-+]?\d+\s*\}?")
_BINARY_OPERATOR = re.compile(r"[\d)}]\s*(?:[-+*/×÷·]|\\times|\\cdot|\\div)\s*[\d({]")
_RESTATEMENT = re.compile(r"\b(?:which|that) (?:is|equals|makes)\b|\bi\.e\.|\bor\b", re.IGNORECASE)


@dataclass(frozen=True)
class Number:
    value: Fraction
    decimals: int | None = None  # places after the point when written as a decimal
    percent: bool = False


# ------------------------------------------------------------------------------------------------- extraction


def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer stated in ``text`` (cleaned, e.g. ``"72"``, ``"3/4"``, ``"2\\sqrt{3}"``), or None.

    A statement of two different answers ("42 or 43") comes back prefixed with :data:`HEDGE` and is never right.
    """
    if not text:
        return None
    text = _CALCULATOR_ANNOTATION.sub("", text[-TAIL_CHARS:])
    found = _from_answer_tag(text)
    if found is not None:
        return found
    found = _from_markers(text)
    if found is not None:
        return found
    return _last_number(text) if fallback_last_number else None


def _from_markers(text: str, hedge: bool = True) -> str | None:
    """The answer of the marker (``\\boxed``, ``####``, answer phrase) that comes last in ``text``.

    The last statement wins: a ``\\boxed{}`` in the working is overridden by a final answer stated after it.
    """
    candidates = [found for found in (_from_boxed(text, hedge), _from_hashes(text, hedge),
                                      _from_answer_phrase(text, hedge)) if found is not None]
    return max(candidates)[1] if candidates else None


def _from_answer_tag(text: str) -> str | None:
    lowered = text.lower()
    start = lowered.rfind("<answer>")
    if start < 0:
        return None
    end = lowered.find("</answer>", start)
    content = text[start + len("<answer>") : end if end >= 0 else len(text)]
    return _from_markers(content) or _candidate(content)


_BOX_JOINER = re.compile(r"(?:\s|[,;$]|\\[()\[\]]|\\q?quad|\\text\{[^{}]{0,30}\}|and|\\!)*")


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """The last few closed boxes as (start, end, content), last first."""
    found, position = [], len(text)
    while len(found) < _OCCURRENCES_TRIED:
        position = max(text.rfind("\\boxed", 0, position), text.rfind("\\fbox", 0, position))
        if position < 0:
            break
        opening = position + (6 if text.startswith("\\boxed", position) else 5)
        content = _braced_after(text, opening)
        if content is not None:
            end = text.index("{", opening) + len(content) + 2
            found.append((position, end, content))
    return found


def _from_boxed(text: str, hedge: bool = True) -> tuple[int, str] | None:
    """The last box's answer; boxes joined only by "and", commas or spacing (``\\boxed{1}, \\boxed{2}``) are one
    answer, a list."""
    boxes = _boxes(text)
    for index, (start, _, content) in enumerate(boxes):
        contents = [content]
        for previous_start, previous_end, previous in boxes[index + 1 :]:
            gap = text[previous_end:start]
            listed = (len(gap) <= 40 and re.search(r"\band\b|,", gap) and not re.search(r"[\d\n=]|\.\s", gap))
            if not (_BOX_JOINER.fullmatch(gap) or listed):  # "\boxed{1} papers and \boxed{2} bins" is a list
                break
            contents.insert(0, previous)
            start = previous_start
        found = _candidate(", ".join(contents) if len(contents) > 1 else content, hedge)
        if found is not None:
            return boxes[index][0], found
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


def _from_hashes(text: str, hedge: bool = True) -> tuple[int, str] | None:
    start = text.rfind("####")
    if start < 0:
        return None
    found = _candidate(text[start + 4 :].split("\n", 1)[0], hedge)
    return None if found is None else (start, found)


def _from_answer_phrase(text: str, hedge: bool = True) -> tuple[int, str] | None:
    matches = list(_ANSWER_PHRASE.finditer(text))
    for match in reversed(matches[-_OCCURRENCES_TRIED:]):
        snippet = _sentence_after(text, match.end())
        if "\\boxed" in snippet or "\\fbox" in snippet:
            continue  # the box itself is a marker and is read as one
        words = re.findall(r"[A-Za-z]+", _clean_latex(snippet))
        if words and words[0].lower() in _NOT_ANSWERS:
            continue  # "the answer is correct", "the answer is not 5": about an answer, not one
        # A phrase with neither a number nor a short answer after it ("the answer: how many ...") is not a statement.
        if not any(char.isdigit() for char in snippet) and len(snippet.split()) > 4:
            continue
        found = _candidate(snippet, hedge)
        if found is not None:
            return match.start(), found
    return None


def _sentence_after(text: str, start: int) -> str:
    rest = text[start : start + 500].lstrip(" \t")
    if rest.startswith("\n"):  # "Answer:" on its own line, the answer on the next
        rest = rest.lstrip(" \t\n")
    if rest.startswith("$$") or rest.startswith("\\["):  # a display formula may span lines
        closing = rest.find("$$" if rest.startswith("$$") else "\\]", 2)
        if closing > 0:
            return rest[: closing + 2]
    rest = rest.split("\n", 1)[0]
    stop = re.search(r"\.(?:\s|$)|(?<!\\)[!?]|;(?![^$]*\$)", rest)  # a period that ends a sentence, not the one in 3.5
    return rest[: stop.start()] if stop else rest


def _last_number(text: str) -> str | None:
    """The last-number fallback: the last number of the text, unless it is ambiguous (then None).

    A restatement in compound units after the answer ("160 minutes, which is 2 hours and 40") points back to the
    number before it, the last formula (``$x \\lt 3$``) is taken whole when no number follows it,
    and a number that is an exponent (``2^3``, ``1e9``) is not an answer on its own.
    """
    spans = list(_MATH_SPAN.finditer(text))
    if spans and not any(char.isdigit() for char in text[spans[-1].end():]):
        content = next(g for g in spans[-1].groups() if g is not None)
        if not _is_prose(_clean_latex(content)):  # "... we find $x \lt 3$." - the last formula is the answer
            return _candidate(content)
        if spans[-1].group(0) == text.strip():  # the completion is one formula, in words: a text answer
            return _candidate(content) or normalize_text_answer(content) or None
    cleaned = _clean_latex(text)
    last = None
    for last in _NUMBER_EXPR.finditer(cleaned):
        pass
    if last is None:
        return None
    if last.start() > 0 and cleaned[last.start() - 1].isalpha():
        return None  # "AZYUK2A": a digit inside a word is not an answer
    sentence_start = max(cleaned.rfind(". ", 0, last.start()), cleaned.rfind("\n", 0, last.start()), 0)
    sentence = cleaned[sentence_start : last.end()]
    restated = None
    for restated in _RESTATEMENT.finditer(sentence):
        pass
    if restated is not None and len(_NUMBER_EXPR.findall(sentence[restated.end():])) >= 2:
        before = None
        for before in _NUMBER_EXPR.finditer(sentence[: restated.start()]):
            pass
        if before is not None:
            return _number_text(before)
    preceding = cleaned[max(0, last.start() - 2) : last.start()]
    if "^" in preceding or re.search(r"\d[eE]$", preceding):
        return None
    return _number_text(last)


def _candidate(snippet: str, hedge: bool = True) -> str | None:
    """The answer inside a marker's text: a number (units dropped), a number word, or the maths as written.

    A symbolic answer is never reduced to a number inside it. ``x = 5`` and ``5 + 3 = 8`` give the number after
    the last ``=``; an equation with unknowns on its left (``y = 2x + 3``) is kept whole.
    """
    unescaped = snippet.replace("\\$", "")
    spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN.finditer(unescaped)]
    if spans and not any(char.isdigit() for char in _MATH_SPAN.sub(" ", unescaped)):
        snippet = ", ".join(dict.fromkeys(span.strip() for span in spans if span.strip()))
    cleaned = re.sub(r"\s+", " ", _clean_latex(snippet)).strip(" \t\n,;:?'\"`").rstrip(".").strip()
    if not cleaned:
        return None
    if hedge and _HEDGE.search(cleaned[:200]):
        left, right = re.split(r"\s*,?\s*\bor\b\s*", cleaned, maxsplit=1, flags=re.IGNORECASE)
        if left and right and normalize_text_answer(left) != normalize_text_answer(right):
            return HEDGE + cleaned[:200]
    if not _is_prose(cleaned) and re.search(r"\band\b", cleaned):
        cleaned = re.sub(r"\s*,?\s*\band\b\s*", ", ", cleaned)  # "6 and 8", "x = 1 and x = 2": a list
    if "=" in cleaned and not _RELATION.search(cleaned):
        parts = _top_level_split(cleaned)
        if len(parts) > 1 and all("=" in part for part in parts):  # "AB = 4, CD = 5" -> "4, 5"
            reduced = [_equation_value(part) for part in parts]
            if all(reduced):
                return ", ".join(reduced)
        value = _equation_value(cleaned)
        if value is not None:
            return value
    number = _number_with_units(cleaned)
    if number is not None:
        return number
    words = _word_number(cleaned)
    if words is not None:
        return words
    if _is_prose(cleaned):
        lead = _leading_maths(cleaned)
        if lead and re.match(r"[-+\d\\(\[{.]", lead):  # "2x + 5 because we add": the formula it starts with
            return _number_with_units(lead) or lead
        return _from_prose(cleaned)
    return _leading_maths(cleaned) or None


_RELATION = re.compile(r"[<>]|!=|\\(?:le|ge|leq|geq|neq|ne|lt|gt|in|approx|subset)\b")


def _equation_value(text: str) -> str | None:
    """``x = 5`` / ``5 + 3 = 8`` -> the number after the last ``=``; None when that side is not a plain number
    or the left side is an expression in unknowns (``x + y = 5`` is an equation, kept whole by the caller)."""
    left, right = text.rsplit("=", 1)
    previous = left.rsplit("=", 1)[-1]
    if re.search(r"[A-Za-z]", previous) and re.search(r"[-+*/^]", previous):
        return None
    return _number_with_units(right.strip())


def _top_level_split(text: str) -> list[str]:
    """``text`` split at commas outside brackets (bounded: the text is a marker's snippet)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _number_with_units(text: str) -> str | None:
    """``72``, ``$18.00``, ``3/4 of a cup``, ``5 cm``: the number when the rest is unit words, else None."""
    match = _NUMBER_EXPR.match(text)
    if not match:
        return None
    rest = text[match.end() :].strip(" .,")
    if rest and not re.fullmatch(r"(?:(?:[A-Za-z]{2,}|[mgslh])\.?'?s?\s*)+", rest):
        return None
    if rest and re.match(r"(?:or|and|to|plus|minus|times|over)\b", rest, re.IGNORECASE):
        return None
    return _number_text(match)


def _word_number(text: str) -> str | None:
    """``forty-two``, ``one hundred and five``, ``eighteen apples`` -> the number; None for other text."""
    tokens = re.findall(r"[a-z]+", text.lower())
    total = current = 0
    used = 0
    for token in tokens:
        if token in _ONES:
            current += _ONES[token]
        elif token in _TENS:
            current += _TENS[token]
        elif token == "hundred" and used:
            current *= 100
        elif token in ("thousand", "million") and used:
            total += current * _SCALES[token]
            current = 0
        elif token == "and" and used:
            continue
        else:
            break
        used += 1
    if not used or len(tokens) - used > 3 or any(char.isdigit() for char in text):
        return None
    return str(total + current)


def _is_prose(text: str) -> bool:
    """Text with two or more ordinary words (not LaTeX commands, not unit-free maths like ``2x + 5``)."""
    text = re.sub(r"\\(?:begin|end)\s*\{\w*\*?\}", " ", text)  # matrix environments are maths
    return len(re.findall(r"(?<![\\A-Za-z])[A-Za-z]{3,}\b", re.sub(r"\\[A-Za-z]+", " ", text))) >= 2


def _from_prose(text: str) -> str | None:
    """An answer stated in a sentence: what follows the last "is"/"are"/"equals", else the only number in it."""
    clause = re.split(r"\b(?:is|are|equals|was|were|be|get|gives?)\b", text)[-1].strip(" ,:")
    if clause and clause != text:
        found = _number_with_units(clause) or _word_number(clause)
        if found is not None:
            return found
        if not _is_prose(clause):
            return _leading_maths(clause)
    numbers = list(_NUMBER_EXPR.finditer(text))
    if numbers:
        return _number_text(numbers[0])
    return normalize_text_answer(text) if len(text.split()) <= 3 else None


def _leading_maths(text: str) -> str:
    """The formula at the start of ``text``, up to the first ordinary word ("2x + 5 because ..." -> "2x + 5")."""
    kept = []
    for token in text.split(" "):
        bare = re.sub(r"\\[A-Za-z]+", "", token)
        if kept and re.fullmatch(r"[A-Za-z]{2,}[.,:]?", bare) and not token.startswith("\\"):
            break
        kept.append(token)
    return " ".join(kept).strip(" .,;:")


def _clean_latex(text: str) -> str:
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = re.sub(r"(?<=\d),\s*\\!\s*(?=\d)", ",", text)  # 11,\! 111 (MATH's thousands separator)
    text = re.sub(r"(?<!\\)\\ ", " ", text)  # "\ " is a space; "\\ " (a matrix row break) is kept
    text = _POWER_STARS.sub("^", text)
    text = _SCIENTIFIC.sub(r"\1\\cdot10^{\2}", text)
    for old, new in (("\\$", ""), ("$", ""), ("\\%", "%"), ("\\left", ""), ("\\right", ""), ("\\!", ""),
                     ("{,}", ","), ("\\,", ""), ("\\;", " "), ("\\displaystyle", ""), ("\\qquad", " "), ("\\quad", " "),
                     ("^\\circ", ""), ("^{\\circ}", ""), ("°", ""), ("−", "-"), ("**", ""), ("\\dfrac", "\\frac"),
                     ("\\tfrac", "\\frac"), ("\\cdot", "*"), ("\\times", "*")):
        text = text.replace(old, new)
    return text


def _number_text(match: re.Match) -> str:
    return re.sub(r"\s+", " ", match.group(0)).strip().rstrip(".")


# ------------------------------------------------------------------------------------------------- comparison


def parse_number(text: str) -> Number | None:
    """Parse one cleaned answer (as :func:`extract_answer` returns it) into a :class:`Number`, or None."""
    match = _NUMBER_EXPR.fullmatch(_clean_latex(text).strip().rstrip("."))
    if not match or sum(char.isdigit() for char in match.group(0)) > MAX_DIGITS:
        return None
    groups = match.groupdict()
    if groups["lmixed"]:
        part = _ratio(None, groups["lmnum"], groups["lmden"])
        if part is None or part.value >= 1:  # 2\frac{3}{2} is not a mixed number
            return None
        value = _decimal(groups["lmwhole"]).value + part.value
        return Number(-value if groups["lmsign"] else value)
    if groups["latexfrac"]:
        return _ratio(groups["fsign"], groups["fnum"], groups["fden"])
    if groups["shortfrac"]:
        return _ratio(groups["ssign"], groups["snum"], groups["sden"])
    if groups["mixed"]:
        whole = _decimal(groups["mwhole"])
        part = _ratio(None, groups["mnum"], groups["mden"])
        if part is None or part.value >= 1:
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


def _same_text(first: str, second: str) -> bool:
    """Equal as written up to case, spacing and a final period (brackets kept: ``(0,9)`` is not ``[0,9)``)."""
    def plain(text: str) -> str:
        return re.sub(r"\s+", "", _clean_latex(text)).rstrip(".").lower()
    return plain(first) == plain(second)


def _is_text(answer: str) -> bool:
    """An answer in words only ("yes", "Monday", "(A)"): compared as text, never handed to the symbolic verifier."""
    return re.fullmatch(r"[A-Za-z][A-Za-z '\-]*", normalize_text_answer(answer)) is not None and (
        len(normalize_text_answer(answer)) == 1 or _is_prose(answer) or " " not in normalize_text_answer(answer))


def _unevaluated_arithmetic(answer: str) -> bool:
    """Whether an answer that is not a number (:func:`parse_number` gave None, so not "3/4" or "\\frac{3}{4}")
    is arithmetic on number literals still to be done ("15 + 5 + 57", "3 \\times 4")."""
    cleaned = _clean_latex(answer).strip().rstrip(".")
    if _SCIENTIFIC_FORM.fullmatch(cleaned):  # "1e3" reaches here as "1\\cdot10^{3}": a number, written exactly
        return False
    return _LITERAL_ARITHMETIC.fullmatch(cleaned) is not None and _BINARY_OPERATOR.search(cleaned) is not None


def judge(predicted: str | None, reference: str | None, symbolic_timeout_s: float = symbolic.DEFAULT_TIMEOUT_S,
          use_symbolic: bool = True) -> bool | None:
    """Whether an extracted answer equals the reference: True, False, or None when this cannot be decided.

    Plain numbers on both sides take the exact-fraction path (no subprocess, ~0.05 ms). Anything else that is not
    settled by text equality goes to math-verify in a bounded subprocess (:mod:`rewards.symbolic`); when that is
    unavailable, refuses the input, fails or runs out of time, the answer is None - never True by default.

    A numeric reference is answered by a number, not by arithmetic still to be done: "15 + 5 + 57" equals 77 in
    value, but paying for it pays a policy for copying the question into its answer line, which one did on the CPU
    (the mixed-difficulty quickstart with a warm start: "The answer is 15 + 5 + 57" on every problem, judged 100%
    right by math-verify). Such an answer is wrong (False), not undecided.
    """
    if reference is None:
        return None
    if predicted is None or predicted.startswith(HEDGE):
        return False
    predicted_number, reference_number = parse_number(predicted), parse_number(reference)
    if predicted_number is not None and reference_number is not None:
        return numbers_match(predicted_number, reference_number)
    if reference_number is not None and _unevaluated_arithmetic(predicted):  # predicted_number is None here
        return False
    if _same_text(predicted, reference):
        return True
    predicted_text, reference_text = _is_text(predicted), _is_text(reference)
    if predicted_text and reference_text:  # "yes" vs "no"; "(C)" is "C"
        return normalize_text_answer(predicted) == normalize_text_answer(reference)
    if (predicted_text and reference_number is not None) or (reference_text and predicted_number is not None):
        return False  # a number never equals a word
    if not use_symbolic:
        return None
    return symbolic.equal(reference, predicted, symbolic_timeout_s)


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Whether an extracted answer equals the reference answer (both as :func:`extract_answer` cleans them);
    an undecided comparison (:func:`judge` gives None) is not a match."""
    return judge(predicted, reference) is True


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
        found = _from_hashes(text, hedge=False)
        return found[1] if found else None
    found = _from_boxed(text, hedge=False)  # a MATH-style solution ending in \boxed{...}
    if found:
        return found[1]
    # a bare answer; one in words ("The midpoints form a regular hexagon") is compared as text
    return _candidate(text, hedge=False) or (normalize_text_answer(text) or None if len(text) <= 200 else None)


# ------------------------------------------------------------------------------------------------- the reward


@register("math_correctness", kind="correctness")
@dataclass(frozen=True)
class MathCorrectness:
    """1.0 when the completion's final answer equals the reference ``answer`` column, 0.0 when it does not, None
    when that cannot be decided.

    ``None`` when the reference cannot be parsed (counted in ``math_correctness/unparseable_reference``) or the
    comparison is undecided: a symbolic answer without math-verify installed, or one refused, failed or timed out
    (counted in ``math_correctness/undecided``). ``fallback_last_number`` lets the last number stand in for an
    answer when no explicit marker is present; ``reference_column`` names the dataset column;
    ``symbolic`` (default true) enables math-verify for non-numeric answers, bounded by ``symbolic_timeout_s``.
    """

    fallback_last_number: bool = True
    reference_column: str = "answer"
    symbolic: bool = True
    symbolic_timeout_s: float = _symbolic.DEFAULT_TIMEOUT_S
    __name__ = "math_correctness"

    def judge(self, completion: Any, reference: Any) -> bool | None:
        """The verdict on one completion against one raw reference (as :meth:`__call__` scores it)."""
        expected = parse_reference(reference)
        if expected is None:
            return None
        found = extract_answer(completion_text(completion), self.fallback_last_number)
        return judge(found, expected, self.symbolic_timeout_s, self.symbolic)

    def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        if self.reference_column not in kwargs:
            raise KeyError(f"math_correctness needs the dataset column {self.reference_column!r}")
        references = kwargs[self.reference_column]
        scores: list[float | None] = []
        unparseable = undecided = 0
        for completion, reference in zip(completions, references, strict=True):
            expected = parse_reference(reference)
            if expected is None:
                unparseable += 1
                scores.append(None)
                continue
            found = extract_answer(completion_text(completion), self.fallback_last_number)
            verdict = judge(found, expected, self.symbolic_timeout_s, self.symbolic)
            undecided += verdict is None
            scores.append(None if verdict is None else float(verdict))
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("math_correctness/unparseable_reference", float(unparseable))
            log_metric("math_correctness/undecided", float(undecided))
        return scores
