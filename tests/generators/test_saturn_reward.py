"""`saturn_reward` against Saturn's published rule, on answer shapes built from every released record.

The oracle below is a second, deliberately literal reading of Saturn's rule (`re.findall` with Saturn's
pattern, the last match, the clause string walked literal by literal); `saturn_reward` uses its own
linear scan. The records come from data/saturn and, when present, the full released corpus
(shared/reference/saturn or $TASKFORGE_SATURN_REF), as in test_saturn_compat.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

from taskforge.extract import extract_answer
from taskforge.generators.sat import saturn_reward
from taskforge.generators.sat.records import record_to_task
from taskforge.generators.sat.reward import clause_text, saturn_box, saturn_task_reward
from taskforge.generators.sat.saturn import read_records
from taskforge.registry import get_generator

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data" / "saturn"


def _reference_dir() -> Path | None:
    env = os.environ.get("TASKFORGE_SATURN_REF")
    if env:
        return Path(env)
    for parent in REPO.parents:
        candidate = parent / "shared" / "reference" / "saturn"
        if candidate.is_dir():
            return candidate
    return None


REF = _reference_dir()
FILES = sorted(SHIPPED.rglob("*.jsonl")) + (sorted(REF.rglob("*.jsonl")) if REF and REF.is_dir() else [])
RECORDS = [r for f in FILES for r in read_records(f)]

SATURN_PATTERN = re.compile(r"\\boxed{(.*?)}")  # Saturn's pattern, as published


def oracle(response: str, clause: str) -> float:
    """Saturn's rule, read literally: last regex match; 1 satisfied, 0 not, -1 no box."""
    matches = SATURN_PATTERN.findall(response)
    if not matches:
        return -1.0
    answer = matches[-1]
    for part in clause.split(" & "):
        literals = re.findall(r"!?.", part)
        ok = False
        for lit in literals:
            neg, var = lit.startswith("!"), lit[-1]
            idx = ord(var) - ord("A")
            val = "0" if idx >= len(answer) else answer[idx]
            if (neg and val == "0") or (not neg and val == "1"):
                ok = True
                break
        if not ok:
            return 0.0
    return 1.0


def wrong_assignment(record: dict, rng: random.Random) -> str:
    """The solution with one clause's literals all made false."""
    bits = list(record["solution"])
    part = rng.choice(record["clause"].split(" & "))
    for neg, var in re.findall(r"(!?)([A-Z])", part):
        bits[ord(var) - 65] = "1" if neg else "0"
    return "".join(bits)


def shapes(record: dict, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(name, response) pairs: the answer shapes a model produces, well and badly."""
    gold, bad = record["solution"], wrong_assignment(record, rng)
    spaced = " ".join(gold)
    yield "gold", f"\\boxed{{{gold}}}"
    yield "gold_after_reasoning", f"<think>Try A=1 ... {bad}?</think>\nSo the answer is \\boxed{{{gold}}}."
    yield "wrong", f"\\boxed{{{bad}}}"
    yield "no_box_plain", gold
    yield "no_box_answer_tag", f"<answer>{gold}</answer>"
    yield "no_box_latex", f"\\boxed {gold}"
    yield "no_box_unclosed", f"\\boxed{{{gold}"
    yield "no_box_other_macro", f"\\fbox{{{gold}}}"
    yield "nested", f"\\boxed{{\\boxed{{{gold}}}}}"
    yield "nested_text", f"\\boxed{{\\text{{{gold}}}}}"
    yield "multiline_inside", f"\\boxed{{{gold[:2]}\n{gold[2:]}}}"
    yield "multiline_trailing", f"\\boxed{{{gold}\n}}"
    yield "multiline_then_gold", f"\\boxed{{\n{bad}}}\n\\boxed{{{gold}}}"
    yield "crlf", f"answer:\r\n\\boxed{{{gold}\r}}\r\n"
    yield "spaced_inside", f"\\boxed{{ {gold} }}"
    yield "spaced_bits", f"\\boxed{{{spaced}}}"
    yield "leading_space", f"\\boxed{{ {gold}}}"
    yield "braces_double", f"\\boxed{{{{{gold}}}}}"
    yield "braces_extra_close", f"\\boxed{{{gold}}}}}"
    yield "braces_inner", f"\\boxed{{{gold[:1]}}}{gold[1:]}}}"
    yield "empty", "\\boxed{}"
    yield "empty_after_gold", f"\\boxed{{{gold}}} and \\boxed{{}}"
    yield "several_gold_last", f"\\boxed{{{bad}}} no wait \\boxed{{{gold}}}"
    yield "several_gold_first", f"\\boxed{{{gold}}} no wait \\boxed{{{bad}}}"
    yield "several_same_line", f"\\boxed{{{gold}}}\\boxed{{{bad}}}\\boxed{{{gold}}}"
    yield "answer_tag_box", f"<answer>\\boxed{{{gold}}}</answer>"
    yield "answer_tag_box_wrong", f"<answer>\\boxed{{{bad}}}</answer>"
    yield "answer_tag_and_box", f"<answer>{bad}</answer> \\boxed{{{gold}}}"
    yield "unicode_fullwidth", "\\boxed{" + gold.translate(str.maketrans("01", "０１")) + "}"
    yield "unicode_around", f"é→ 答案 \\boxed{{{gold}}} ✓"
    yield "unicode_zero_width", f"\\boxed{{\u200b{gold}}}"
    yield "unicode_line_sep", f"\\boxed{{{gold[:1]}\u2028{gold[1:]}}}"
    yield "words", "\\boxed{true false true}"
    yield "short", f"\\boxed{{{gold[:-1]}}}"
    yield "long", f"\\boxed{{{gold}0101}}"
    yield "all_ones", "\\boxed{" + "1" * record["k"] + "}"
    yield "all_zeros", "\\boxed{" + "0" * record["k"] + "}"
    yield "letters_assignment", "\\boxed{A=1, B=0}"
    yield "random_bits", "\\boxed{" + "".join(rng.choice("01") for _ in range(record["k"])) + "}"
    if rng.random() < 0.03:  # the regex oracle is quadratic on these: a sample of records is enough
        yield "huge_prefix", "x" * 50_000 + f"\\boxed{{{gold}}}"
        yield "huge_unclosed", "\\boxed{" * 200 + gold + "\n" + f"\\boxed{{{gold}}}"


def test_saturn_reward_equals_saturns_rule_on_every_shape() -> None:
    assert RECORDS, "no Saturn records found"
    rng = random.Random(0)
    seen: dict[str, set[float]] = {}
    compared = 0
    # Every shape on every third record (each level and file is covered), the core shapes on all of them:
    # the whole sweep would cost ~40 s of CPU, and the rule does not vary along a level.
    core = {"gold", "wrong", "empty", "answer_tag_box", "several_gold_last", "spaced_inside"}
    for i, rec in enumerate(RECORDS):
        task = record_to_task(rec)
        for name, response in shapes(rec, rng):
            if i % 3 and name not in core:
                continue
            expected = oracle(response, rec["clause"])
            got = saturn_reward(response, rec["clause"])
            assert got == expected, (name, rec["id"], response[:200], got, expected)
            # The task path (clauses as DIMACS literals, what eval and training use) agrees too.
            assert saturn_task_reward(task, response) == expected, (name, rec["id"])
            seen.setdefault(name, set()).add(got)
            compared += 1
    # The rule's distinctive edges, as the oracle sees them on real records.
    assert seen["gold"] == {1.0} and seen["wrong"] == {0.0} and seen["no_box_plain"] == {-1.0}
    assert seen["answer_tag_box"] == {1.0}  # Saturn reads the box inside the tag
    assert seen["multiline_inside"] == {-1.0} and seen["multiline_then_gold"] == {1.0}
    assert seen["several_gold_last"] == {1.0} and seen["several_gold_first"] == {0.0}  # the last box
    assert -1.0 not in seen["nested"]  # stops at the first '}': reads "\boxed{GOLD"
    assert seen["empty"] == {0.0, 1.0}  # the loophole: some records are satisfied by an empty box
    assert compared >= 15 * len(RECORDS)


def test_empty_box_loophole_share_matches_negative_literals() -> None:
    """An empty box satisfies exactly the formulas whose every clause holds a negative literal."""
    hits = [saturn_reward("\\boxed{}", r["clause"]) == 1.0 for r in RECORDS]
    expected = [all("!" in part for part in r["clause"].split(" & ")) for r in RECORDS]
    assert hits == expected
    share = sum(hits) / len(hits)
    assert 0.0 < share < 1.0


def test_box_scan_matches_the_regex_on_random_text() -> None:
    rng = random.Random(1)
    alphabet = ["\\boxed{", "}", "{", "\n", "0", "1", " ", "\\", "b", "\r", "é"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        matches = SATURN_PATTERN.findall(text)
        assert saturn_box(text) == (matches[-1] if matches else None), repr(text)


def test_hostile_inputs_never_raise_and_stay_linear() -> None:
    clause = "!A!BC & AB!D"
    assert saturn_reward(None, clause) == -1.0  # type: ignore[arg-type]
    assert saturn_reward("\\boxed{1}", None) == -2.0  # type: ignore[arg-type]
    assert saturn_reward("\\boxed{1}", "B!") == -2.0  # B unsatisfied, then a dangling "!": Saturn raises
    assert saturn_reward("\\boxed{}", "@") == -2.0  # position -1 of an empty answer: Saturn raises
    assert saturn_reward("\\boxed{01}", "@") == 1.0  # position -1 counts from the end, as in Saturn
    start = time.perf_counter()
    assert saturn_reward("\\boxed{" * 200_000 + "x" * 10, clause) == -1.0
    assert saturn_reward(("\\boxed{" + "1" * 50 + "\n") * 20_000 + "\\boxed{0010}", clause) == 1.0
    assert time.perf_counter() - start < 5.0  # the regex takes minutes on the first one


def test_strict_default_and_lenient_documented_differences() -> None:
    """Our default stays strict; Saturn's loophole and unstripped spaces belong to saturn_reward only."""
    rec = next(r for r in RECORDS if all("!" in p for p in r["clause"].split(" & ")))
    gen = get_generator("sat")
    strict = record_to_task(rec, strict=True)
    assert clause_text(strict) == rec["clause"]
    assert saturn_reward("\\boxed{}", rec["clause"]) == 1.0
    assert gen.verify(strict, "\\boxed{}").reason == "malformed"
    spaced = "\\boxed{" + " ".join(rec["solution"]) + "}"
    assert gen.verify(strict, spaced).passed  # strict removes whitespace, then checks length k
    # The answer-tag unwrap holds for every family reading boxes through extract_answer.
    assert extract_answer(f"<answer>\\boxed{{{rec['solution']}}}</answer>") == rec["solution"]
    assert gen.verify(strict, f"<answer>\\boxed{{{rec['solution']}}}</answer>").passed
    assert extract_answer('<answer>{"a": "\\boxed{x}"}</answer>') == '{"a": "\\boxed{x}"}'
    arith = get_generator("arithmetic")
    task = arith.sample(arith.resolve_params(0), 0, "test", 0)
    assert arith.verify(task, f"<answer> \\boxed{{{task.answer}}} </answer>").passed
