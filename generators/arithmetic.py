"""Arithmetic: multi-digit multiplication (knobs: digits of each operand, carries) and sums of several terms.

Verification is exact integer comparison after a strict parse: `1,234`, `1 234`, a leading `+` are
accepted; decimals, exponents, words, expressions and non-ASCII digits are not. No eval, no partial credit.
"""

from __future__ import annotations

import _random
import hashlib
import random
import re
from collections.abc import Callable
from typing import Any

from taskforge.errors import GenerationError, KnobError
from taskforge.extract import extract_answer
from taskforge.generator import MAX_SPLIT_DRAWS, Generator, Knob, split_bucket, too_few_problems
from taskforge.registry import register
from taskforge.seeding import block_seeds, stream_key
from taskforge.task import Task, Verdict

MAX_ANSWER_CHARS = 400
MAX_CARRY_DRAWS = 1000
# An optional sign, then ASCII digits either plain or in groups of three split by "," or " " (not both).
_INTEGER = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+)", re.ASCII)


def parse_integer(text: str) -> int | None:
    """Strict integer parse of a final answer, None if it is not exactly one integer."""
    text = text.strip()
    if not text or len(text) > MAX_ANSWER_CHARS:
        return None
    if text.isascii() and text.isdigit():
        return int(text)  # the common answer, plain ASCII digits, without the regex
    if not _INTEGER.fullmatch(text):
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


def _product(a: int, b: int) -> str:
    return f"{a} × {b}" if b >= 0 else f"{a} × ({b})"


_HEAD, _TAIL = "Compute ", ". Give the exact integer result inside <answer></answer>."


def _prompt(expr: str) -> str:
    return _HEAD + expr + _TAIL


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
        for a, b in (
            (1, 1),
            (2, 1),
            (2, 2),
            (3, 2),
            (3, 3),
            (4, 4),
            (5, 5),
            (6, 6),
            (8, 8),
            (10, 10),
            (15, 15),
            (20, 20),
        )
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
            raise KnobError(
                f"at most {most} carries are possible for {params['op']} at these digits; got min_carries={lo}"
            )

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
            expr = _product(operands[0], operands[1])
        else:
            expr = str(operands[0]) + "".join(f" - {-t}" if t < 0 else f" + {t}" for t in operands[1:])
        prompt = _prompt(expr)
        meta: dict[str, Any] = {"expression": expr}
        if constrained:
            meta["carries"] = carries
        return self.make_task(
            params, prompt=prompt, answer=str(value), check={"value": str(value)}, meta=meta
        )

    def sampler_many(self, params: dict[str, Any], seed: int, split: str) -> Callable[[int, int], list[Task]]:
        """Plain products (no carry bounds) built straight into Task records; everything else takes the
        generic path. Same bytes as `sampler` (seeds, draws, id, split bucket, fields): the draws inline
        `randrange`'s own arithmetic on one reseeded generator, the id and split keys are the canonical
        JSON spelled out (digits, ASCII text and "×" need no escaping), the Task skips the per-field
        setters. About 2.5x the item-at-a-time path."""
        if params["op"] != "mul" or params["min_carries"] > 0 or params["max_carries"] >= 0:
            return super().sampler_many(params, seed, split)
        prefix = stream_key(self.family, self.version, params, seed, split)
        family, version, difficulty = self.family, self.version, float(self.difficulty(params))
        low, high = split_bucket(split)
        negative = params["negative"]
        # randrange(lo, lo + span) is lo + _randbelow(span): getrandbits(span.bit_length()) until < span.
        da, db = params["digits"], params["digits_b"] or params["digits"]
        lo_a, lo_b = (10 ** (da - 1) if da > 1 else 1), (10 ** (db - 1) if db > 1 else 1)
        span_a, span_b = 10**da - lo_a, 10**db - lo_b
        bits_a, bits_b = span_a.bit_length(), span_b.bit_length()
        rng = random.Random()
        # The C-level seed of `random.Random(s)`: the same state without the Python wrapper's type checks.
        reseed, getrandbits, uniform = _random.Random.seed, rng.getrandbits, rng.random
        # Hashers copied from empty ones: cheaper than a constructor call with keyword arguments.
        id_hash, unit_hash = hashlib.blake2b(digest_size=12).copy, hashlib.blake2b(digest_size=8).copy
        id_head = '["' + family + '","'
        assemble, copy_params = Task.assemble, params.copy

        def block(start: int, n: int) -> list[Task]:
            out: list[Task] = []
            append = out.append
            for index, item_seed in enumerate(block_seeds(prefix, start, n), start):
                reseed(rng, item_seed)
                draws = 0
                while True:
                    r = getrandbits(bits_a)
                    while r >= span_a:
                        r = getrandbits(bits_a)
                    a = lo_a + r
                    if negative and uniform() < 0.5:
                        a = -a
                    r = getrandbits(bits_b)
                    while r >= span_b:
                        r = getrandbits(bits_b)
                    b = lo_b + r
                    if negative and uniform() < 0.5:
                        b = -b
                    value = str(a * b)
                    expr = f"{a} × {b}" if b >= 0 else f"{a} × ({b})"  # _product, inlined
                    prompt = _HEAD + expr + _TAIL
                    # content_id(family, prompt, {"value": value}) and split_owns(split, id), spelled out.
                    key = id_head + prompt + '",{"value":"' + value + '"}]'
                    h = id_hash()
                    h.update(key.encode())
                    task_id = h.hexdigest()
                    h = unit_hash()
                    h.update(('["split","' + task_id + '"]').encode())
                    if low <= int.from_bytes(h.digest(), "little") / 2**64 < high:
                        break
                    draws += 1
                    if draws == MAX_SPLIT_DRAWS:
                        raise too_few_problems(family, params, split)
                append(
                    assemble(
                        {
                            "id": task_id,
                            "family": family,
                            "version": version,
                            "params": copy_params(),
                            "difficulty": difficulty,
                            "seed": seed,
                            "split": split,
                            "index": index,
                            "prompt": prompt,
                            "messages": [{"role": "user", "content": prompt}],
                            "answer": value,
                            "check": {"value": value},
                            "meta": {"expression": expr},
                        }
                    )
                )
            return out

        return block

    def _draw(
        self, params: dict[str, Any], rng: random.Random, count_carries: bool
    ) -> tuple[list[int], int, int]:
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
        parsed = str(value)
        if parsed == task.check["value"]:
            return Verdict.ok(parsed)
        return Verdict.fail("wrong", parsed)

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        return f"<answer>{int(task.answer) + rng.choice((-10, -1, 1, 10))}</answer>"
