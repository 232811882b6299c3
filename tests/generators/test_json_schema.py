"""The json_schema family: gold answers pass, near misses fail, knobs do what they say, bytes are stable."""

from __future__ import annotations

import json
import random

import pytest

import taskforge
from taskforge.generators.json_schema import (
    JsonSchema,
    compiled_validator,
    json_equal,
    mutate,
    nesting_depth,
    parse_strict,
)
from taskforge.task import Task

GEN = JsonSchema()
MODES = ("conform", "extract")


def tasks(level: int, mode: str, n: int = 12, seed: int = 0) -> list[Task]:
    return list(taskforge.generate("json_schema", n, level=level, params={"mode": mode}, seed=seed))


def answer(value: object) -> str:
    return f"<answer>{json.dumps(value)}</answer>"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("level", range(len(JsonSchema.levels)))
def test_gold_passes_after_a_file_round_trip(level: int, mode: str) -> None:
    for t in tasks(level, mode):
        back = Task.from_json(t.to_json())
        v = taskforge.verify(back, GEN.gold_response(back))
        assert v.passed, (level, mode, t.id, v)
        assert json_equal(v.parsed, json.loads(t.answer))


@pytest.mark.parametrize("mode", MODES)
def test_corrupted_answers_fail(mode: str) -> None:
    rng = random.Random(1)
    for level in range(len(JsonSchema.levels)):
        for t in tasks(level, mode, n=6):
            bad = GEN.corrupt_answer(t, rng)
            v = GEN.verify(t, bad)
            assert not v.passed and v.reason in ("wrong", "malformed"), (level, bad)


def test_mutants_that_still_validate_fail_extract_but_may_pass_conform() -> None:
    # extract demands the exact instance: any schema-valid change of a value is wrong.
    rng = random.Random(2)
    caught = 0
    for t in tasks(4, "extract", n=20):
        gold = json.loads(t.answer)
        for _ in range(5):
            bad = mutate(gold, rng)
            if compiled_validator(t.check["schema"]).is_valid(bad) and not json_equal(bad, gold):
                v = GEN.verify(t, answer(bad))
                assert v.reason == "wrong" and "values the text states" in v.details["error"]
                caught += 1
    assert caught > 5


def test_conform_accepts_another_valid_instance_and_enforces_constraints() -> None:
    t = tasks(3, "conform", n=1)[0]
    gold = json.loads(t.answer)
    for c in t.check["constraints"]:
        assert c["op"] in ("equals", "length", "absent")
    # An `equals` constraint broken at its own path fails with the constraint named.
    t = next(t for t in tasks(2, "conform", n=40) if any(c["op"] == "equals" for c in t.check["constraints"]))
    gold = json.loads(t.answer)
    c = next(c for c in t.check["constraints"] if c["op"] == "equals")
    node = gold
    for p in c["path"][:-1]:
        node = node[p]
    node[c["path"][-1]] = {"changed": True}
    v = GEN.verify(t, answer(gold))
    assert v.reason == "wrong"


def test_absent_and_length_constraints() -> None:
    found = {"absent": 0, "length": 0}
    for t in tasks(5, "conform", n=40):
        gold = json.loads(t.answer)
        for c in t.check["constraints"]:
            if c["op"] == "absent":
                parent = gold
                for p in c["path"][:-1]:
                    parent = parent[p]
                parent[c["path"][-1]] = None  # present (even as null) breaks "must be left out"
                assert GEN.verify(t, answer(gold)).reason == "wrong"
                found["absent"] += 1
                break
            if c["op"] == "length" and c["value"] > 0:
                node = gold
                for p in c["path"]:
                    node = node[p]
                node.pop()
                assert not GEN.verify(t, answer(gold)).passed
                found["length"] += 1
                break
    assert found["absent"] and found["length"], found


def test_number_spellings_and_booleans_in_extract() -> None:
    t = next(
        t for t in tasks(1, "extract", n=60) if any(type(v) is int for v in json.loads(t.answer).values())
    )
    gold = json.loads(t.answer)
    key = next(k for k, v in gold.items() if type(v) is int)
    assert GEN.verify(t, answer({**gold, key: float(gold[key])})).passed  # 7.0 is the number 7
    assert not GEN.verify(t, answer({**gold, key: str(gold[key])})).passed
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal(0, False)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal([1, 2], [2, 1])


def test_answer_locations() -> None:
    t = tasks(2, "conform", n=1)[0]
    gold = t.answer
    assert GEN.verify(t, f"Here:\n```json\n{gold}\n```\n").passed  # last fenced json block
    assert GEN.verify(t, f"```\n{gold}\n```").passed  # an unlabelled fence counts as json
    assert GEN.verify(t, f"<answer>\n```json\n{gold}\n```\n</answer>").passed
    assert GEN.verify(t, f"```json\n{{}}\n```\n```json\n{gold}\n```").passed  # the last block wins
    assert not GEN.verify(t, f"```json\n{gold}\n```\n```json\n{{}}\n```").passed
    assert GEN.verify(t, f"```python\n{gold}\n```").reason == "no_answer"
    assert GEN.verify(t, f"The object is {gold}.").reason == "no_answer"


def test_pretty_printed_answers_fit_the_size_limit() -> None:
    for t in tasks(7, "extract", n=20) + tasks(7, "conform", n=20):
        pretty = json.dumps(json.loads(t.answer), indent=8, ensure_ascii=True)
        assert GEN.verify(t, f"<answer>\n{pretty}\n</answer>").passed


def test_strict_parser() -> None:
    limit = 10_000
    assert parse_strict('{"a": [1, 2.5, "x", null, true]}', limit)[1] is None
    for bad in (
        "NaN",
        "[Infinity]",
        "[-Infinity]",
        "[1e400]",
        '{"a":1,"a":1}',
        '{"a":1} {"b":2}',
        "[1,]",
        "{'a': 1}",
        '"\x01"',
        "",
        "[" * 40 + "]" * 40,
        "1" * 5000,
    ):
        value, problem = parse_strict(bad, limit)
        assert value is None and problem, bad
    assert parse_strict("[" + "0," * 6000 + "0]", limit)[1].startswith("answer has")


def test_nesting_scan_ignores_strings() -> None:
    assert nesting_depth('{"a": [[{}]]}', 99) == 4
    assert nesting_depth('["[[[[", "\\"[[[", "\\\\", [1]]', 99) == 2
    assert nesting_depth("[" * 100_000, 32) == 33  # stops right after the limit


def test_validator_compiled_once_per_schema() -> None:
    t = tasks(3, "conform", n=1)[0]
    first = compiled_validator(t.check["schema"])
    assert compiled_validator(json.loads(json.dumps(t.check["schema"]))) is first


def test_depth_knob_is_realised() -> None:
    def object_depth(v: object) -> int:
        if isinstance(v, dict):
            return 1 + max((object_depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return max((object_depth(x) for x in v), default=0)
        return 0

    for depth in (1, 2, 4, 6):
        for t in taskforge.generate(
            "json_schema", 10, params={"depth": depth, "refs": 0.5, "arrays": 0.5, "combinators": 0.5}
        ):
            assert object_depth(json.loads(t.answer)) == depth


def test_difficulty_monotone_in_both_modes() -> None:
    for mode in MODES:
        values = [
            GEN.difficulty({**JsonSchema.resolve_params(i), "mode": mode})
            for i in range(len(JsonSchema.levels))
        ]
        assert values == sorted(values) and len(set(values)) == len(values)


def test_knobs_change_the_schema() -> None:
    def keywords(params: dict) -> set[str]:
        out: set[str] = set()

        def walk(s: object) -> None:
            if isinstance(s, dict):
                out.update(s)
                for k, v in s.items():
                    for sub in v.values() if k in ("properties", "$defs") else [v]:
                        walk(sub)
            elif isinstance(s, list):
                for v in s:
                    walk(v)

        for t in taskforge.generate("json_schema", 20, params=params):
            walk(t.check["schema"])
        return out

    plain = keywords({"keywords": 0.0, "combinators": 0.0, "refs": 0.0, "closed": 0.0, "arrays": 0.0})
    assert not plain & {
        "pattern",
        "enum",
        "format",
        "oneOf",
        "anyOf",
        "allOf",
        "$ref",
        "items",
        "additionalProperties",
        "minimum",
    }
    rich = keywords(
        {
            "depth": 4,
            "props": 8,
            "keywords": 1.0,
            "combinators": 0.6,
            "refs": 0.6,
            "closed": 0.6,
            "arrays": 0.5,
            "max_leaves": 60,
        }
    )
    assert {
        "pattern",
        "enum",
        "format",
        "minLength",
        "maximum",
        "multipleOf",
        "minItems",
        "oneOf",
        "anyOf",
        "allOf",
        "$ref",
        "$defs",
        "additionalProperties",
        "unevaluatedProperties",
        "const",
    } <= rich
