"""Compatibility with Saturn's released SAT data (gtxygyzb/Saturn-code, `data/`, Apache-2.0).

A Saturn record is one JSON line `{"id", "n_sat", "k", "solution", "clause", "prompt"}`:
- `clause` is the formula in the letters format: clauses joined by " & ", each clause the concatenation of
  its literals `X` / `!X` in alphabetical order of variable, the clauses sorted with Python's `sorted()`;
- `prompt` is SATURN_PROMPT (identical in every released record) + `json.dumps({"n_sat", "k", "clause"})`
  + a newline; the model answers a 0/1 string of length k inside `\\boxed{}`.

Inside taskforge a clause is a list of DIMACS literals (variable i is `i`, its negation `-i`, 1-based),
so `A!BC` is `[1, -2, 3]`. This module converts between the two, builds Saturn's prompt, reads and writes
Saturn records, and names the files of Saturn's folder layout. Turning records into tasks and writing the
layout needs the SAT generator, which builds on this module: see records.py.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from taskforge.errors import SaturnFormatError
from taskforge.task import Task

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_LETTER_VARS = len(LETTERS)
RECORD_FIELDS = ("id", "n_sat", "k", "solution", "clause", "prompt")
TEST_TAIL = 20  # Saturn's train_prompt.py puts the last 20 records of a training level in test.jsonl

# Saturn's `meta_prompt` (src/Build_SAT_Datasets/train_prompt.py), byte for byte; the compat tests check
# it against every released record.
SATURN_PROMPT = (
    "You are now required to solve a SAT (Boolean Satisfiability) problem. The problem is provided in JSON "
    "format, containing the following fields:\n\n"
    '- "n_sat": The number of variables in each clause (n-SAT problem).\n'
    '- "k": The total number of distinct variables in the problem.\n'
    '- "clause": A string representation of the SAT formula, where clauses are separated by " & " '
    "(representing logical AND). Within each clause, variables are combined using concatenation "
    '(representing logical OR). A negation is indicated by "!" before a variable.\n\n'
    "Your task is to provide a valid solution. The answer is a string of length k representing the truth "
    "values of the variables in order (1 for true, 0 for false). If there are multiple solutions, provide "
    "any one of them.\n"
    "Please reason step by step, and put your final answer within \\boxed{}.\n\n"
    "**Example**\n"
    '{"n_sat": 3, "k": 4, "clause": "!B!C!D & A!B!D & AB!D"}\n'
    "**Final Answer**\n"
    "\\boxed{1101}\n\n"
    "Below is the SAT problem you need to solve:\n"
)

# Saturn's four training levels (Train_prompt_{n}_{k}_{l}_{m}) and ten evaluation levels, as released.
SATURN_TRAIN_LEVELS: tuple[tuple[int, int, int], ...] = ((3, 5, 5), (3, 5, 6), (3, 5, 13), (3, 5, 15))
SATURN_TEST_LEVELS: tuple[tuple[int, int, int], ...] = (
    (3, 5, 20),
    (3, 5, 25),
    (3, 6, 20),
    (3, 7, 20),
    (3, 7, 40),
    (4, 7, 20),
    (4, 7, 40),
    (4, 8, 40),
    (5, 8, 40),
    (6, 7, 40),
)

_CLAUSE_RE = re.compile(r"(?:!?[A-Z])+")
_LITERAL_RE = re.compile(r"(!?)([A-Z])")


def saturn_difficulty(n: int, k: int, l: int) -> float:
    """Saturn's difficulty estimate D(n, k, l) = log2 k + 2 log2 l - n + k/n."""
    return math.log2(k) + 2 * math.log2(l) - n + k / n


# ---- the letters format ------------------------------------------------------------------------------
def clause_to_letters(clause: Sequence[int]) -> str:
    """`[1, -2, 3]` -> `A!BC`: literals in alphabetical order of variable, as Saturn writes them."""
    return "".join(("!" if lit < 0 else "") + LETTERS[abs(lit) - 1] for lit in sorted(clause, key=abs))


def letters_to_clause(text: str, k: int | None = None) -> list[int]:
    """`A!BC` -> `[1, -2, 3]`; raises SaturnFormatError on anything else (repeated variables included)."""
    if not _CLAUSE_RE.fullmatch(text):
        raise SaturnFormatError(f"not a letters clause: {text[:60]!r}")
    clause = [(-1 if neg else 1) * (ord(var) - 64) for neg, var in _LITERAL_RE.findall(text)]
    variables = [abs(lit) for lit in clause]
    if len(set(variables)) != len(variables):
        raise SaturnFormatError(f"clause {text!r} repeats a variable")
    if k is not None and max(variables) > k:
        raise SaturnFormatError(f"clause {text!r} uses a variable beyond the k={k} declared")
    return clause


def parse_letters(text: str, k: int | None = None) -> list[list[int]]:
    """Saturn's clause text (`"!A!BC & AB!D"`) -> clauses, in the order written."""
    if not isinstance(text, str) or not text:
        raise SaturnFormatError("empty clause text")
    return [letters_to_clause(part, k) for part in text.split(" & ")]


def sort_letters(clauses: Iterable[Sequence[int]]) -> list[list[int]]:
    """Clauses in Saturn's order: Python `sorted()` of their letters text ('!' sorts before 'A')."""
    return [letters_to_clause(t) for t in sorted(clause_to_letters(c) for c in clauses)]


def format_letters(clauses: Iterable[Sequence[int]]) -> str:
    """Clauses -> Saturn's clause text, in the order given."""
    return " & ".join(clause_to_letters(c) for c in clauses)


def saturn_prompt(n: int, k: int, clause_text: str) -> str:
    """Saturn's prompt for one formula: the fixed instruction text, the problem as JSON, a newline."""
    return SATURN_PROMPT + json.dumps({"n_sat": n, "k": k, "clause": clause_text}) + "\n"


# ---- records <-> tasks ---------------------------------------------------------------------------------
def validate_record(record: Any) -> tuple[int, int, list[list[int]]]:
    """Check a Saturn record's shape; returns (n, k, clauses)."""
    if not isinstance(record, dict) or set(record) != set(RECORD_FIELDS):
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise SaturnFormatError(f"a Saturn record has exactly the fields {list(RECORD_FIELDS)}, got {got}")
    n, k = record["n_sat"], record["k"]
    if not (isinstance(n, int) and isinstance(k, int) and 1 <= n <= k <= MAX_LETTER_VARS):
        raise SaturnFormatError(f"need 1 <= n_sat <= k <= 26, got n_sat={n!r}, k={k!r}")
    clauses = parse_letters(record["clause"], k)
    if any(len(c) != n for c in clauses):
        raise SaturnFormatError(f"record {record['id']!r}: a clause does not have n_sat={n} literals")
    return n, k, clauses


def task_to_record(task: Task, record_id: int) -> dict[str, Any]:
    """A `sat` task in letters format as a Saturn record (fields in Saturn's order)."""
    check = task.check
    if task.family != "sat" or check.get("format") != "letters":
        raise SaturnFormatError(f"only sat tasks in the letters format export to Saturn (got {task.family})")
    clause_text = format_letters(check["clauses"])
    return {
        "id": record_id,
        "n_sat": check["n"],
        "k": check["k"],
        "solution": task.answer,
        "clause": clause_text,
        "prompt": saturn_prompt(check["n"], check["k"], clause_text),
    }


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Saturn records from a JSONL file (blank lines skipped)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as Saturn does (`json.dumps` defaults, one per line), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    count = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


# ---- Saturn's folder layout --------------------------------------------------------------------------
def train_folder(n: int, k: int, l: int, m: int) -> str:
    return f"train/Train_prompt_{n}_{k}_{l}_{m}"


def test_file(n: int, k: int, l: int, count: int) -> str:
    return f"test/n{n}_k{k}_length{l}_sample{count}.jsonl"
