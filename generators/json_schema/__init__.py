"""JSON-schema conformance: a generated Draft 2020-12 schema and a JSON value to write for it.

Every schema is built from a small spec tree (`_Obj`, `_Arr`, `_Str`, ...) that renders both the schema and
valid instances of it, so each task is satisfiable by construction and its instance is the gold answer.
Two modes:
- `conform`: produce any value that validates and also meets the constraints stated in the prompt
  (`a.b` must equal 7, `tags` must have exactly 3 items, `note` must be left out);
- `extract`: a text states every value; the answer must validate AND equal the hidden instance.

Verification reads the last <answer> block (else the last fenced json block), rejects by size and by a
cheap nesting scan BEFORE parsing, parses strict JSON (no NaN/Infinity/overflowing floats, no duplicate
keys, exactly one value) and validates with jsonschema-rs, compiled once per schema (LRU cache).

Formats: `date`, `ipv4` and `uuid` are checked (both jsonschema-rs and the reference `jsonschema` package
check them identically on what we generate, see tests/generators/test_json_schema_agreement.py). `email` and `uri`
always come with a `pattern` that implies both validators' checks, because the two disagree on
those formats (the reference accepts `a@@b.com`). Patterns use only `^`, `$`, literals, `[a-z]`-style
classes, `{m,n}` and `(a|b)`: no `\\d`, `\\w` (Unicode-dependent) and no look-around.
Known divergence: Python's `re` lets `$` match before a trailing newline, ECMA-262 and jsonschema-rs
do not; the verifier follows ECMA-262 ("abc\\n" does not match `^[a-z]{3}$`).
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from taskforge.generator import Generator, Knob
from taskforge.generators.json_schema.mutate import mutate
from taskforge.generators.json_schema.prompt import (
    describe,
    draw_constraints,
    keywords_used,
    pretty_json,
    prose,
)
from taskforge.generators.json_schema.spec import CHECKED_FORMATS, DRAFT, build_schema
from taskforge.generators.json_schema.strict import (
    MAX_DEPTH,
    MAX_RESPONSE_CHARS,
    MIN_ANSWER_CHARS,
    compiled_validator,
    constraint_holds,
    json_equal,
    nesting_depth,
    parse_strict,
    read_json_answer,
    schema_error,
)
from taskforge.registry import register
from taskforge.task import Task, Verdict

_SHARE = {"low": 0.0, "high": 1.0}


@register
class JsonSchema(Generator):
    family = "json_schema"
    version = "1"
    max_response_chars = None  # its own MAX_RESPONSE_CHARS check, in verify, comes first
    description = (
        "Write a JSON value for a generated Draft 2020-12 schema: conform to it, or extract it from prose."
    )
    knobs = (
        Knob(
            "mode",
            str,
            "conform",
            choices=("conform", "extract"),
            help="conform: meet the schema and the "
            "stated constraints; extract: reproduce the values stated in a text exactly",
        ),
        Knob("depth", int, 2, low=1, high=8, help="levels of nested objects (the root is 1)"),
        Knob("props", int, 4, low=1, high=16, help="most properties per object"),
        Knob("required", float, 0.7, **_SHARE, help="share of required properties"),
        Knob("arrays", float, 0.2, **_SHARE, help="chance a value is an array"),
        Knob(
            "keywords", float, 0.5, **_SHARE, help="chance a value carries bounds/length/enum/pattern/format"
        ),
        Knob("combinators", float, 0.0, **_SHARE, help="chance of oneOf/anyOf/allOf"),
        Knob("refs", float, 0.0, **_SHARE, help="chance a nested object lives in $defs (and is reused)"),
        Knob("closed", float, 0.0, **_SHARE, help="chance an object forbids additional properties"),
        Knob("constraints", int, 2, low=0, high=20, help="extra constraints stated in the prompt (conform)"),
        Knob("shuffle", bool, False, help="extract: state the values in random order"),
        Knob("max_leaves", int, 12, low=2, high=400, help="budget of leaf values (keeps deep schemas small)"),
    )
    _ladder = (
        # depth props required arrays keywords combinators refs closed constraints shuffle max_leaves
        (1, 2, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1, False, 4),
        (1, 4, 0.6, 0.2, 0.3, 0.0, 0.0, 0.0, 1, False, 6),
        (2, 4, 0.6, 0.25, 0.5, 0.0, 0.0, 0.3, 2, False, 10),
        (2, 5, 0.7, 0.3, 0.6, 0.15, 0.2, 0.4, 2, True, 14),
        (3, 5, 0.7, 0.3, 0.7, 0.25, 0.3, 0.5, 3, True, 20),
        (3, 6, 0.75, 0.35, 0.8, 0.35, 0.4, 0.6, 3, True, 28),
        (4, 6, 0.75, 0.4, 0.9, 0.45, 0.5, 0.7, 4, True, 32),
        (5, 7, 0.8, 0.5, 1.0, 0.5, 0.5, 0.8, 5, True, 40),
    )
    levels = tuple(
        dict(
            zip(
                (
                    "depth",
                    "props",
                    "required",
                    "arrays",
                    "keywords",
                    "combinators",
                    "refs",
                    "closed",
                    "constraints",
                    "shuffle",
                    "max_leaves",
                ),
                row,
                strict=True,
            )
        )
        for row in _ladder
    )

    def difficulty(self, params: dict[str, Any]) -> float:
        # Every term grows with its knob, so a ladder that never lowers a knob is monotone. Stated
        # constraints only matter in conform mode, sentence order only in extract mode.
        p = params
        schema = (
            p["depth"]
            + 0.5 * p["props"]
            + p["required"]
            + 2 * p["arrays"]
            + 2 * p["keywords"]
            + 3 * p["combinators"]
            + 2 * p["refs"]
            + p["closed"]
            + math.log2(p["max_leaves"])
        )
        task = 0.3 * p["constraints"] if p["mode"] == "conform" else 1.0 + 0.5 * p["shuffle"]
        return round(schema + task, 4)

    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        schema, spec = build_schema(params, rng)
        omitted: list[list[str | int]] = []
        instance = spec.sample(rng, [], omitted)
        answer = json.dumps(instance, ensure_ascii=False, separators=(",", ":"))
        check: dict[str, Any] = {
            "mode": params["mode"],
            "schema": schema,
            "max_chars": max(MIN_ANSWER_CHARS, 16 * len(answer)),  # room for indent=8
            "max_depth": MAX_DEPTH,
        }
        shown = pretty_json(schema)
        if params["mode"] == "conform":
            check["constraints"] = draw_constraints(instance, omitted, params["constraints"], rng)
            rules = "".join(f"\n- {describe(c)}" for c in check["constraints"])
            prompt = (
                "Write a JSON value that validates against this JSON Schema (Draft 2020-12; the formats "
                f"{', '.join(CHECKED_FORMATS)} are checked):\n\n```json\n{shown}\n```\n"
                + (
                    f"\nIt must also meet these constraints (paths as in `a.b[0].c`):{rules}\n"
                    if rules
                    else ""
                )
            )
        else:
            check["expected"] = instance
            prompt = (
                "Turn the text below into the JSON object it describes. The object must validate against "
                f"this JSON Schema (Draft 2020-12):\n\n```json\n{shown}\n```\n\nText: "
                f"{prose(instance, rng, params['shuffle'])}\n\nInclude exactly the values the text states "
                "(paths as in `a.b[0].c`), nothing else.\n"
            )
        prompt += "Give only the JSON inside <answer></answer>."
        meta = {"schema_chars": len(shown), "answer_chars": len(answer), "keywords": keywords_used(schema)}
        return self.make_task(params, prompt=prompt, answer=answer, check=check, meta=meta)

    def verify(self, task: Task, response: str) -> Verdict:
        if not isinstance(response, str):
            return Verdict.fail("malformed", error="response is not text")
        if len(response) > MAX_RESPONSE_CHARS:  # before any extraction copies it
            return Verdict.fail("malformed", error=f"response longer than {MAX_RESPONSE_CHARS} characters")
        text, problem = read_json_answer(response)
        if problem is not None:
            return Verdict.fail("malformed", error=problem)
        if text is None:
            return Verdict.fail("no_answer")
        check = task.check
        value, problem = parse_strict(text, check["max_chars"], check["max_depth"])
        if problem is not None:
            return Verdict.fail("malformed", parsed=text[:100], error=problem)
        try:
            error = schema_error(check["schema"], value)
        except (
            ValueError,
            TypeError,
            OverflowError,
        ) as exc:  # lone surrogates, ints jsonschema-rs cannot hold
            return Verdict.fail("malformed", parsed=text[:100], error=f"{type(exc).__name__}: {exc}"[:200])
        if error is not None:
            return Verdict.fail("wrong", parsed=value, error=error)
        if check["mode"] == "extract":
            if not json_equal(value, check["expected"]):
                return Verdict.fail("wrong", parsed=value, error="valid, but not the values the text states")
            return Verdict.ok(parsed=value)
        for c in check["constraints"]:
            if not constraint_holds(value, c):  # the first broken one is named
                return Verdict.fail("wrong", parsed=value, error=f"constraint not met: {describe(c)}")
        return Verdict.ok(parsed=value)

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        gold = json.loads(task.answer)
        for _ in range(50):
            bad = mutate(gold, rng)
            if not self.verify(task, f"<answer>{json.dumps(bad)}</answer>").passed:
                return f"<answer>{json.dumps(bad)}</answer>"
        return '<answer>"not an object"</answer>'


__all__ = [
    "CHECKED_FORMATS",
    "DRAFT",
    "MAX_DEPTH",
    "MAX_RESPONSE_CHARS",
    "JsonSchema",
    "build_schema",
    "compiled_validator",
    "json_equal",
    "mutate",
    "nesting_depth",
    "parse_strict",
    "schema_error",
]
