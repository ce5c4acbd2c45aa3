"""The hand-labelled set of issue 11: (category, completion, gold, label), label 1 = the completion's final answer is
right, 0 = wrong. Built from hand-written (gold, equivalent forms, wrong forms) rows, each form stated in two
conventions (a box and a final-answer sentence), plus hand-written edge cases and GSM8K answer styles.

Used by tests/rewards/test_labelled_math.py and scripts/verifier_agreement.py (the table in docs/rewards.md)."""

from __future__ import annotations

# (category, gold, [right forms], [wrong forms]) -- every form is a hand judgement against the gold
LATEX_ROWS = [
    ("fraction", r"\frac{3}{4}", [r"\frac34", "3/4", "0.75", r"\dfrac{3}{4}", r"\frac{6}{8}"], ["4/3", "0.7", r"\frac{3}{5}"]),
    ("fraction", r"-\frac{1}{2}", [r"\frac{-1}{2}", "-0.5", "-1/2"], [r"\frac{1}{2}", "0.5"]),
    ("fraction", r"\frac{7}{3}", [r"2\frac{1}{3}", r"\tfrac{7}{3}"], [r"\frac{3}{7}", "2.3"]),
    ("mixed number", r"1\frac{1}{2}", [r"\frac{3}{2}", "1.5", "1 1/2"], ["11/2", r"\frac{1}{2}", "2"]),
    ("mixed number", r"3\frac{2}{5}", ["17/5", "3.4"], ["3", r"\frac{2}{5}", "6/5"]),
    ("radical", r"2\sqrt{3}", [r"\sqrt{12}", r"2 \sqrt 3", r"\sqrt{3} \cdot 2"], ["2", r"\sqrt{3}", r"3\sqrt{2}"]),
    ("radical", r"\frac{\sqrt{3}}{2}", [r"\frac{1}{2}\sqrt{3}", r"\sqrt{3}/2", r"\frac{\sqrt3}{2}"], [r"\sqrt{3}", r"\frac{\sqrt{2}}{2}", "0.87"]),
    ("radical", r"5\sqrt{2}", [r"\sqrt{50}"], ["5", r"5\sqrt{3}", "7.07"]),
    ("radical", r"\sqrt[3]{2}", [r"2^{1/3}"], [r"\sqrt{2}", "2"]),
    ("pi", r"4\pi", [r"4 \pi", r"\pi \cdot 4"], ["4", r"2\pi", "12.57"]),
    ("pi", r"\frac{\pi}{6}", [r"\pi/6", r"\frac{1}{6}\pi"], [r"\frac{\pi}{3}", "30"]),
    ("pi", r"25\pi", [r"25 \pi"], [r"5\pi", "25"]),
    ("percent", r"25\%", ["25", "25%", r"25 \%"], ["0.25%", "2.5", "30"]),
    ("percent", "12.5", [r"12.5\%", "12.50"], ["12", "125"]),
    ("interval", "[2,5)", ["[2, 5)", r"\left[2,5\right)"], ["(2, 5)", "[2,5]", "(2,5]"]),
    ("interval", r"(-\infty, 3]", [r"(-\infty,3]"], [r"(-\infty, 3)", r"[3, \infty)"]),
    ("interval", r"(0,1) \cup (2,\infty)", [r"(0, 1)\cup(2, \infty)"], [r"(0,1)", r"(0,2) \cup (2,\infty)"]),
    ("set/tuple", "(2, 5)", ["(2,5)"], ["(5, 2)", "[2,5)", "2"]),
    ("set/tuple", r"\{1, 2, 3\}", [r"\{3, 2, 1\}", r"\{1,2,3\}"], [r"\{1, 2\}", r"\{1, 2, 4\}"]),
    ("set/tuple", "(1, -2, 3)", ["(1,-2,3)"], ["(1, 2, 3)", "(3, -2, 1)"]),
    ("set/tuple", "-2, 3", ["3, -2", "-2,3"], ["-2", "3", "2, 3"]),
    ("matrix", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", [r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}"], [r"\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}"]),
    ("matrix", r"\begin{pmatrix} 3 \\ -1 \end{pmatrix}", [r"\begin{pmatrix}3\\-1\end{pmatrix}"], [r"\begin{pmatrix} -1 \\ 3 \end{pmatrix}", "3"]),
    ("polynomial", "2x+3", ["3+2x", "2 x + 3"], ["2x+5", "2x", "3"]),
    ("polynomial", "x^2+2x+1", ["(x+1)^2", "x^2 + 2x + 1"], ["(x-1)^2", "x^2+1", "x^2+2x"]),
    ("polynomial", "(x-2)(x+3)", ["x^2+x-6", "(x+3)(x-2)"], ["x^2-x-6", "(x+2)(x-3)"]),
    ("equation", "y = 2x + 3", ["y=2x+3", "y = 3 + 2x"], ["y = 2x - 3", "y = 3x + 2"]),
    ("equation", "x = 5", ["5", "x=5"], ["x = -5", "6"]),
    ("equation", "x^2+y^2=25", ["x^2 + y^2 = 25"], ["x^2+y^2=5", "x^2-y^2=25"]),
    ("units/degrees", r"90^\circ", ["90", r"90^{\circ}", r"90 \text{ degrees}"], ["180", "45"]),
    ("units/degrees", r"12\text{ cm}", ["12", r"12 \text{cm}", "12 cm"], ["13", r"12\text{ cm}^2 + 1"]),
    ("units/degrees", r"\$18.90", ["18.90", r"\$18.9", "18.9"], ["18", "19.80"]),
    ("text", r"\text{(C)}", ["C", "(C)", r"\text{C}"], ["B", "(D)"]),
    ("text", r"\text{Monday}", ["Monday", r"\text{monday}"], ["Tuesday"]),
    ("text", r"\text{odd}", ["odd"], ["even"]),
    ("thousands", "1234", [r"1{,}234", "1,234", r"1,\!234"], ["1", "234", "123"]),
    ("thousands", "1000000", [r"1{,}000{,}000", "1,000,000"], ["1000", r"1{,}000"]),
    ("exponent", "8", ["2^3", "2**3"], ["23", "6"]),
    ("exponent", "1000", ["10^3", "1e3"], ["1", "103"]),
    ("decimal", "0.1", [r"\frac{1}{10}", ".1"], ["1", "0.01"]),
    ("decimal", r"\frac{1}{3}", ["1/3", "0.33"], ["0.3", "3"]),
]
CONVENTIONS = ("So the result is $\\boxed{{{}}}$.", "After simplifying.\nFinal Answer: The final answer is ${}$. I hope it is correct.")


def latex_cases() -> list[tuple[str, str, str, int]]:
    cases = []
    for category, gold, right, wrong in LATEX_ROWS:
        for forms, label in ((right, 1), (wrong, 0)):
            for form in forms:
                for convention in CONVENTIONS:
                    cases.append((category, convention.format(form), gold, label))
    return cases


# (category, completion, gold, label): answer order, hedges, phrases, number words, the reproducers
EDGE_CASES = [
    ("order", "Interest = \\boxed{200}. Total: 10,000 + 200 = 10,200.\nFinal Answer: The final answer is $10,200$.", "#### 10200", 1),
    ("order", "Interest = \\boxed{200}. Total: 10,000 + 200 = 10,200.\nFinal Answer: The final answer is $10,200$.", "#### 200", 0),
    ("order", "First \\boxed{3}, but that was wrong: the answer is 4.", "4", 1),
    ("order", "First \\boxed{3}, but that was wrong: the answer is 4.", "3", 0),
    ("order", "The answer is 10. Wait, let me recheck. The answer is 12.", "12", 1),
    ("order", "The answer is 10. Wait, let me recheck. The answer is 12.", "10", 0),
    ("order", "<answer>7</answer> and later \\boxed{8}", "7", 1),
    ("order", "\\boxed{5}\nThe answer is correct.", "5", 1),
    ("hedge", "The answer is 42 or 43.", "#### 42", 0),
    ("hedge", "The answer is 42 or 43.", "#### 43", 0),
    ("hedge", "\\boxed{2 \\text{ or } 3}", "2", 0),
    ("hedge", "The answer is either 5 or 6.", "6", 0),
    ("hedge", "So x = 2 or x = 3, the answer is $x=2$ or $x=3$.", "2", 0),
    ("phrase", "The answer is correct. So the total is 15.", "15", 1),
    ("phrase", "The answer is reasonable given 12 apples.", "12", 1),
    ("phrase", "I think the answer is not 5, it is 6.", "5", 0),
    ("phrase", "We check that the answer is consistent: 9 + 9 = 18.", "18", 1),
    ("number words", "The answer is forty-two.", "42", 1),
    ("number words", "The answer is forty-two.", "24", 0),
    ("number words", "The answer is one hundred and five.", "105", 1),
    ("number words", "The answer is eighteen apples.", "18", 1),
    ("number words", "The answer is twenty one.", "21", 1),
    ("fallback", "It takes 160 minutes, which is 2 hours and 40", "160", 1),
    ("fallback", "It takes 160 minutes, which is 2 hours and 40", "40", 0),
    ("fallback", "So she has 5 + 3 = 8 apples left.", "8", 1),
    ("fallback", "So she has 5 + 3 = 8 apples left.", "5", 0),
    ("fallback", "Each box holds 12, so 3 boxes hold 36.", "36", 1),
    ("fallback", "The code is AZYUK2A", "2", 0),
    ("exponent", "So the value is 2**3", "23", 0),
    ("exponent", "The answer is 1e999999999", "1", 0),
    ("mixed number", "The answer is 1 1/2.", "11/2", 0),
    ("mixed number", "The answer is 1 1/2.", "1.5", 1),
    ("mixed number", "The answer is 2 3/4 cups.", r"\frac{11}{4}", 1),
    ("thousands", "\\boxed{1{,}234}", "#### 1234", 1),
    ("thousands", "\\boxed{1{,}234}", "#### 1", 0),
    ("thousands", "The answer is $16,\\!386.20$.", "16386.20", 1),
    ("reproducer", "\\boxed{2}", r"2\sqrt{3}", 0),
    ("reproducer", "\\boxed{(2, 5)}", "[2,5)", 0),
    ("reproducer", "\\boxed{2x+5}", "2x+3", 0),
    ("reproducer", "\\boxed{\\sqrt{3}}", r"\frac{\sqrt{3}}{2}", 0),
    ("solution gold", "So the area is $\\boxed{25\\pi}$.", "The radius is 5, so the area is $\\pi r^2 = \\boxed{25\\pi}$.", 1),
    ("solution gold", "So the area is $\\boxed{5\\pi}$.", "The radius is 5, so the area is $\\pi r^2 = \\boxed{25\\pi}$.", 0),
    ("solution gold", "The answer is $\\frac{1}{2}$.", "Half of the cases: $\\boxed{\\frac12}$.", 1),
]

# GSM8K answer styles: (template, value as written) with a right and a wrong gold
GSM8K_STYLES = [
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### {}",
    "The answer is {}.",
    "The final answer is {}",
    "<think>\nAdd them.\n</think>\n<answer>\n{}\n</answer>",
    "Answer: {}",
    "**Answer:** ${}",
    "Final Answer: The final answer is ${}$. I hope it is correct.",
    "So she pays ${} in total.",
    "A: {}",
    "Therefore, the answer is $\\boxed{{{}}}$.",
    "The answer is: **{}**",
    "She makes 9 * 2 = {} dollars.",
]
GSM8K_VALUES = [("72", "72"), ("1,234", "1234"), ("18.00", "18"), ("-3", "-3"), ("0.5", "0.5")]


def gsm8k_cases() -> list[tuple[str, str, str, int]]:
    cases = []
    for template in GSM8K_STYLES:
        for shown, gold in GSM8K_VALUES[:3] if "think" not in template else GSM8K_VALUES:
            completion = template.format(shown)
            cases.append(("gsm8k style", completion, f"#### {gold}", 1))
            cases.append(("gsm8k style", completion, f"#### {int(float(gold)) + 7}", 0))
    return cases


def all_cases() -> list[tuple[str, str, str, int]]:
    return latex_cases() + EDGE_CASES + gsm8k_cases()
