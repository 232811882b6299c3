"""Verdicts of the json_schema verifier on a fixed corpus, and the bytes of its tasks, pinned.

The verifier has fast paths (plain JSON parsed without hooks, cached per-task state); each must give the
very same Verdict (passed, score, reason, parsed, details, in that order and spelling) as the straight
path. The corpus: gold answers written several ways, corrupt answers, constraint breakers, garbage and
hostile strings (huge, deep, NaN/Infinity, duplicate keys, BOM, trailing text, fences, escapes), on
tasks of every level and both modes. `test_json_schema_verdicts.json` holds the digests recorded before
the fast paths existed; rerecord it only for a deliberate change of verdicts:

    python tests/generators/test_json_schema_verdicts.py --record
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import taskforge
from taskforge.generators.json_schema import JsonSchema, mutate, nesting_depth, parse_strict
from taskforge.generators.json_schema.strict import _finite_float, _no_duplicates, _reject_constant
from taskforge.task import Task

GEN = JsonSchema()
PINNED = Path(__file__).with_suffix(".json")
SEEDS = (5, 11)
PER_SEED = 3


def corpus_tasks() -> list[Task]:
    return [
        t
        for level in range(len(JsonSchema.levels))
        for mode in ("conform", "extract")
        for seed in SEEDS
        for t in taskforge.generate("json_schema", PER_SEED, level=level, params={"mode": mode}, seed=seed)
    ]


def _swap_first_value(gold: dict[str, Any], literal: str) -> str:
    key = next(iter(gold))
    marker = '"@@swap@@"'
    return json.dumps({**gold, key: "@@swap@@"}).replace(marker, literal, 1)


def responses(task: Task, rng: random.Random) -> Iterator[Any]:
    """What one task meets: right answers in many spellings, near misses, and hostile text."""
    gold = json.loads(task.answer)
    compact = task.answer
    yield GEN.gold_response(task)
    yield f"<answer>{json.dumps(gold, indent=2)}</answer>"
    yield f"Let me think.\n\n<answer>\n{json.dumps(gold, indent=8)}\n</answer>\n"
    yield f"```json\n{compact}\n```"
    yield f"Sure:\n```\n{compact}\n```\nDone."
    yield f"<answer>```json\n{compact}\n```</answer>"
    # Every "a" inside strings (keys and values) written as an escape: the same value, other text.
    escaped_a = re.sub(r'"[^"\\]*"', lambda m: m.group().replace("a", "\\u0061"), compact)
    yield f"<answer>{escaped_a}</answer>"
    yield "<answer>" + json.dumps(gold).replace("/", "\\/") + "</answer>"
    yield f"<answer>\ufeff{compact}</answer>"
    yield f"<answer>{compact} trailing</answer>"
    yield f"<answer>{compact}{compact}</answer>"
    yield f"<answer>[{compact}]</answer>"
    yield f"<answer>{compact[:-1]}</answer>"
    yield f"{compact}"
    yield f"<answer></answer><answer>{compact}</answer>"
    yield f"<answer>{compact}</answer> and then <answer>{{}}</answer>"
    for literal in (
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e999",
        "1.5e3",
        "1E2",
        "-0.0",
        "0",
        "1" * 400,
    ):
        yield f"<answer>{_swap_first_value(gold, literal)}</answer>"
    for literal in ('"\\ud800"', '"x:y"', '"a\\u003ab"', '"\\"{["', "[[[[]]]]", "{}", "null", "true"):
        yield f"<answer>{_swap_first_value(gold, literal)}</answer>"
    key = next(iter(gold))
    yield "<answer>{" + f'"{key}": {json.dumps(gold[key])}, ' + compact[1:] + "</answer>"
    yield "<answer>{" + compact[1:-1] + f', "{key}": 0' + "}</answer>"
    yield "<answer>{" + compact[1:-1] + ', "zz:1": 2, "zz": "a:b"}</answer>'
    yield "<answer>{" + compact[1:-1] + ', "zz\\u003a": 2, "zz:": 3}</answer>'
    yield "<answer>{" + compact[1:-1] + ', "zz": 1, "z\\u007a": 2}</answer>'
    for _ in range(3):
        yield GEN.corrupt_answer(task, rng)
    for _ in range(4):
        yield f"<answer>{json.dumps(mutate(gold, rng))}</answer>"
    for c in task.check.get("constraints", []):  # break each stated constraint on its own
        bad = json.loads(compact)
        path = c["path"]
        node = bad
        for p in path[:-1]:
            node = node[p]
        if path and c["op"] == "absent":
            node[path[-1]] = None
        elif path:
            node[path[-1]] = [0] if c["op"] == "length" and c["value"] != 1 else "zz"
        yield f"<answer>{json.dumps(bad)}</answer>"


def hostile() -> Iterator[Any]:
    yield from (None, 17, b"{}", ["<answer>{}</answer>"], "", "<answer>", "</answer>", "<answer>  </answer>")
    yield from ("[" * 33 + "]" * 33, "[" * 32 + "]" * 32, '{"a":' * 40 + "1" + "}" * 40, "[" * 100_000)
    yield from ('"' + '\\"' * 5000, "[" * 20 + '"' + '\\"' * 5000, '{"a": "\\\n' + "[" * 50)
    yield from ("```" * 2000, "```json\n" * 70, '{"a": "x\x00y"}', "{'a': 1}", '{"a": 1,}', "[1 2]")
    yield from ('{"a": 01}', '{"a": .5}', '{"a": +1}', '{"a": 1e}', '{"a": -}', '"\\x41"', '"\\u12"')
    yield from ("{\n}", "[]", "0", '"text"', "1" * 5000, "-" + "9" * 40, '{"\\ud800": 1}', "\t\n {} \n")
    yield "x" * 2_000_001
    yield "<answer>" + "y" * 1_999_000 + "</answer>"
    rng = random.Random(0)
    for _ in range(6):
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 600))).decode("latin-1")
        yield junk


def cases() -> Iterator[tuple[Task, Any]]:
    tasks = corpus_tasks()
    rng = random.Random(1234)
    for t in tasks:
        for r in responses(t, rng):
            yield t, r
    for t in tasks[:: len(tasks) // 4]:
        for h in hostile():
            for r in (h, f"<answer>{h}</answer>", f"```json\n{h}\n```") if isinstance(h, str) else (h,):
                yield t, r


def verdict_digest(task: Task, response: Any) -> str:
    v = GEN.verify(task, response)
    # repr keeps types (1 vs 1.0 vs True), dict order and lone surrogates; the digest keeps the file small.
    return hashlib.blake2b(repr(v.__dict__).encode("utf-8", "backslashreplace"), digest_size=8).hexdigest()


def task_digest(tasks: list[Task]) -> str:
    return hashlib.blake2b("\n".join(t.to_json() for t in tasks).encode(), digest_size=16).hexdigest()


def measure() -> dict[str, Any]:
    return {
        "tasks": task_digest(corpus_tasks()),
        "verdicts": [verdict_digest(t, r) for t, r in cases()],
    }


def test_task_bytes_unchanged() -> None:
    assert task_digest(corpus_tasks()) == json.loads(PINNED.read_text())["tasks"]


def test_verdicts_unchanged() -> None:
    pinned = json.loads(PINNED.read_text())["verdicts"]
    got = []
    for i, (t, r) in enumerate(cases()):
        d = verdict_digest(t, r)
        if i < len(pinned) and d != pinned[i]:
            shown = r if not isinstance(r, str) else r[:300]
            raise AssertionError(
                f"case {i} ({t.id}, level {t.params}) changed: {shown!r} -> {GEN.verify(t, r)}"
            )
        got.append(d)
    assert len(got) == len(pinned)


def _reference_parse(text: str, max_chars: int, max_depth: int) -> tuple[Any, str | None]:
    """parse_strict as it was before its fast path: the specification the fast path must meet."""
    if len(text) > max_chars:
        return None, f"answer has {len(text)} characters, limit {max_chars}"
    if nesting_depth(text, max_depth) > max_depth:
        return None, f"nesting deeper than {max_depth}"
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return value, None


def _random_json(rng: random.Random, depth: int) -> str:
    """JSON-like text that hits the fast path's blind spots: few key names (duplicates), ':' and escapes
    in strings, non-finite and overflowing numbers, whitespace, and nesting around the limit."""
    roll = rng.random()
    if depth > 0 and roll < 0.35:
        keys = [
            rng.choice(('"a"', '"b"', '"a:"', '"\\u0061"', '"b\\""', '":"')) for _ in range(rng.randint(0, 4))
        ]
        body = ",".join(f"{k}{rng.choice(('', ' '))}:{_random_json(rng, depth - 1)}" for k in keys)
        return "{" + body + "}"
    if depth > 0 and roll < 0.55:
        return "[" + ", ".join(_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))) + "]"
    return rng.choice(
        (
            '"x:y"',
            '"\\u003a"',
            '"q\\"{"',
            "1",
            "-0.5",
            "1e400",
            "-1e999",
            "2.5e-3",
            "NaN",
            "Infinity",
            "-Infinity",
            "true",
            "null",
            '"\\ud800"',
            '"a\\\\"',
            "12345678901234567890",
        )
    )


def test_parse_strict_matches_its_reference() -> None:
    rng = random.Random(7)
    for i in range(4000):
        text = _random_json(rng, rng.choice((1, 2, 3, 5)))
        if i % 5 == 0:  # now and then not JSON at all, or nested past the limit
            text = rng.choice((text[: len(text) // 2], text + rng.choice((" x", "}", " ", "\n\t", "1"))))
        if i % 97 == 0:
            deep = rng.choice((31, 32, 33, 40))
            text = "[" * deep + text + "]" * deep
        text = rng.choice(("", " ", "\ufeff", "\n")) + text
        assert repr(parse_strict(text, 4096, 32)) == repr(_reference_parse(text, 4096, 32)), text


# Spellings aimed at the fast path's census: a key given twice under another escape, or with ':' and
# escaped quotes or backslashes around it; numbers and nesting that make the hook-free scanner raise.
HOSTILE_SPELLINGS = (
    '{"a":1,"\\u0061":2}',
    '{"a:":1,"a":2,"a":3}',
    '{"a\\"":1,"a\\u0022":2}',
    '{"a\\\\":1,"a\\u005c":2}',
    '{"\\ud800":1,"\\uD800":2}',
    '{"":1,"":2}',
    '{"a":"\\":","a":1}',
    '{"\\"":"\\"","\\"":1}',
    '[{"a":1},{"a":1,"a":1}]',
    '{"a":{"b":[{"c":1,"c":1}]}}',
    '{"a:b":1,"c":{"d":"e:f"}}',
    "1" * 4301,
    "[" + "1" * 4301 + "]",
    "[" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    "[1e400]",
    "[-1E400]",
    "[1e-400]",
    "-0",
    '"\\u0000"',
    "\ufeff{}",
    '{"a":1}\u00a0',
    "\x0b{}",
    '{"a":1}\x00',
    "[1,]",
    '{"a":1} {"a":1}',
    " null ",
)


@pytest.mark.parametrize("text", HOSTILE_SPELLINGS, ids=range(len(HOSTILE_SPELLINGS)))
def test_parse_strict_matches_its_reference_on_hostile_spellings(text: str) -> None:
    for depth in (32, 1):
        assert repr(parse_strict(text, 10**6, depth)) == repr(_reference_parse(text, 10**6, depth))


def test_verdicts_repeat_warm() -> None:
    # The second verdict of a response (caches hot) equals the first (caches cold).
    from taskforge.generators.json_schema.strict import clear_validators

    sample = list(cases())[::7]
    clear_validators()
    first = [verdict_digest(t, r) for t, r in sample]
    assert [verdict_digest(t, r) for t, r in sample] == first


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        PINNED.write_text(json.dumps(measure(), indent=0) + "\n")
        print(f"recorded {len(json.loads(PINNED.read_text())['verdicts'])} verdicts to {PINNED}")
