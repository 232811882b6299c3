"""Arithmetic: multi-digit multiplication (knobs: digits of each operand, carries) and sums of several terms.

Verification is exact integer comparison after a strict parse: `1,234`, `1 234`, a leading `+` are
accepted; decimals, exponents, words, expressions and non-ASCII digits are not. No eval, no partial credit.
"""

from __future__ import annotations

import random
import re
from typing import Any

from taskforge.errors import GenerationError, KnobError
from taskforge.extract import extract_answer
from taskforge.generator import Generator, Knob
from taskforge.registry import register
from taskforge.task import Task, Verdict

MAX_ANSWER_CHARS = 400
MAX_CARRY_DRAWS = 1000
# An optional sign, then ASCII digits either plain or in groups of three split by "," or " " (not both).
_INTEGER = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+)", re.ASCII)


def parse_integer(text: str) -> int | None:
    """Strict integer parse of a final answer, None if it is not exactly one integer."""
    text = text.strip()
    if not text or len(text) > MAX_ANSWER_CHARS or not _INTEGER.fullmatch(text):
        return None
    return int(text.replace(",", "").replace(" ", ""))


def multiplication_carries(a: int, b: int) -> int:
    """Carries of schoolbook multiplication: in each digit-by-operand product, then in the column sum."""
    da = [int(c) for c in reversed(str(abs(a)))]
    db = [int(c) for c in reversed(str(abs(b)))]
    carries = 0
    columns = [0] * (len(da) + len(db) + 1)
    for shift, y in enumerate(db):
        carry = 0
        for i, x in enumerate(da):
            p = x * y + carry
            carry = p // 10
            carries += carry > 0
            columns[i + shift] += p % 10
        columns[len(da) + shift] += carry
    carry = 0
    for col in columns:
        carry = (col + carry) // 10
        carries += carry > 0
    return carries


def addition_carries(terms: list[int]) -> int:
    """Carries of the column sum of the absolute values (the work a person does for a sum)."""
    digits = [[int(c) for c in reversed(str(abs(t)))] for t in terms]
    width = max(len(d) for d in digits)
    carry = carries = 0
    for i in range(width):
        carry = (sum(d[i] for d in digits if i < len(d)) + carry) // 10
        carries += carry > 0
    return carries


def _operand(rng: random.Random, digits: int, negative: bool) -> int:
    value = rng.randrange(10 ** (digits - 1), 10**digits) if digits > 1 else rng.randrange(1, 10)
    return -value if negative and rng.random() < 0.5 else value


@register
class Arithmetic(Generator):
    family = "arithmetic"
    version = "1"
    description = "Multi-digit multiplication (op=mul) and sums/differences of several terms (op=sum)."
    knobs = (
        Knob("op", str, "mul", choices=("mul", "sum"), help="multiplication or a sum of terms"),
        Knob("digits", int, 3, low=1, high=60, help="digits of the first operand / of every term"),
        Knob("digits_b", int, 0, low=0, high=60, help="digits of the second factor (0: same as digits)"),
        Knob("terms", int, 2, low=2, high=50, help="number of terms (op=sum)"),
        Knob("min_carries", int, 0, low=0, high=10_000),
        Knob("max_carries", int, -1, low=-1, high=10_000, help="-1: no upper bound"),
        Knob("negative", bool, False, help="operands may be negative"),
    )
    levels = tuple(
        {"op": "mul", "digits": a, "digits_b": b}
        for a, b in ((1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 4), (5, 5), (6, 6), (8, 8), (10, 10), (15, 15), (20, 20))
    )

    def difficulty(self, params: dict[str, Any]) -> float:
        a = params["digits"]
        if params["op"] == "mul":
            b = params["digits_b"] or a
            # Work grows with the number of digit products; carries and signs add a little.
            base = float(a * b)
        else:
            base = float(a * (params["terms"] - 1))
        return base + 0.1 * params["min_carries"] + 0.5 * params["negative"]

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        lo, hi = params["min_carries"], params["max_carries"]
        if 0 <= hi < lo:
            raise KnobError(f"min_carries={lo} exceeds max_carries={hi}")
        a = params["digits"]
        if params["op"] == "mul":
            # One carry at most per digit product, then one per column of the sum of the partial products.
            b = params["digits_b"] or a
            most = a * b + a + b + 1
        else:
            most = a  # one per column of the terms (`addition_carries` counts no carry past the last)
        if lo > most:
            raise KnobError(f"at most {most} carries are possible for {params['op']} at these digits; got min_carries={lo}")

    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        lo, hi = params["min_carries"], params["max_carries"]
        constrained = lo > 0 or hi >= 0
        for _ in range(MAX_CARRY_DRAWS):
            operands, value, carries = self._draw(params, rng, count_carries=constrained)
            if not constrained or (carries >= lo and (hi < 0 or carries <= hi)):
                break
        else:
            raise GenerationError(f"no {params['op']} problem with {lo}..{hi} carries found for {params}")
        if params["op"] == "mul":
            expr = f"{operands[0]} × {operands[1]}" if operands[1] >= 0 else f"{operands[0]} × ({operands[1]})"
            prompt = f"Compute {expr}."
        else:
            expr = str(operands[0]) + "".join(f" - {-t}" if t < 0 else f" + {t}" for t in operands[1:])
            prompt = f"Compute {expr}."
        prompt += " Give the exact integer result inside <answer></answer>."
        meta: dict[str, Any] = {"expression": expr}
        if constrained:
            meta["carries"] = carries
        return self.make_task(params, prompt=prompt, answer=str(value), check={"value": str(value)}, meta=meta)

    def _draw(self, params: dict[str, Any], rng: random.Random, count_carries: bool) -> tuple[list[int], int, int]:
        neg = params["negative"]
        if params["op"] == "mul":
            a = _operand(rng, params["digits"], neg)
            b = _operand(rng, params["digits_b"] or params["digits"], neg)
            return [a, b], a * b, multiplication_carries(a, b) if count_carries else 0
        terms = [_operand(rng, params["digits"], False)]
        terms += [_operand(rng, params["digits"], neg) for _ in range(params["terms"] - 1)]
        return terms, sum(terms), addition_carries(terms) if count_carries else 0

    def verify(self, task: Task, response: str) -> Verdict:
        text = extract_answer(response)
        if text is None:
            return Verdict.fail("no_answer")
        value = parse_integer(text)
        if value is None:
            return Verdict.fail("malformed", parsed=text[:100])
        if str(value) == task.check["value"]:
            return Verdict.ok(parsed=str(value))
        return Verdict.fail("wrong", parsed=str(value))

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        return f"<answer>{int(task.answer) + rng.choice((-10, -1, 1, 10))}</answer>"
