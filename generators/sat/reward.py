"""Saturn's reward, exactly: what Saturn's training and evaluation score for one response to one formula.

Written from the rule Saturn publishes (gtxygyzb/Saturn-code, `src/reward_function/reward_func.py`, and
the same reading in `src/sample/eval_k.py`); no code of Saturn's is copied:

- the answer is the LAST match of the regular expression `\\boxed{(.*?)}` in the response: a match does
  not cross a newline (`.` excludes `\\n`), stops at the first `}` (so `\\boxed{\\boxed{101}}` reads
  `\\boxed{101`), matches do not overlap, nothing outside a box is read (no `<answer>` tag), and the text
  is kept as it is (spaces are not stripped);
- the formula is Saturn's clause text (`"!A!BC & AB!D"`), split on `" & "`; a clause is satisfied when one
  of its literals is: `X` when the answer's character at position ord(X) - ord('A') is `'1'`, `!X` when it
  is `'0'`. A position beyond the answer reads `'0'`; any other character makes neither literal true;
  there is no length check, so an empty box satisfies every clause that has a negative literal (Saturn's
  loophole; our strict verifier closes it);
- the reward is 1.0 when every clause is satisfied, 0.0 when one is not, -1.0 when no box is found.

Saturn's code indexes the answer with Python's rules, so a character below 'A' in a clause (never in a
well-formed formula) gives a negative position that counts from the end of the answer, and raises when
it falls before its start; Saturn's `except` branch meant -2.0 for that case (its print of an undefined
name raises instead). We return -2.0 there and never raise.

The box scan is linear (a regex would rescan a long line once per unclosed `\\boxed{`), and the tests
check it against the regex itself on many shapes and on every released record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskforge.generators.sat.saturn import MAX_LETTER_VARS, format_letters

BOX_OPEN = "\\boxed{"
REWARD_SAT, REWARD_WRONG, REWARD_NO_BOX, REWARD_ERROR = 1.0, 0.0, -1.0, -2.0


def saturn_box(response: Any) -> str | None:
    """The text Saturn reads as the answer: the last non-overlapping `\\boxed{...}` match, else None."""
    if not isinstance(response, str):
        return None
    found: str | None = None
    pos, n = 0, len(response)
    next_close = next_newline = -1  # cached positions of the next '}' / '\n', recomputed only when passed
    while pos < n:
        start = response.find(BOX_OPEN, pos)
        if start < 0:
            break
        start += len(BOX_OPEN)
        if next_close < start:
            next_close = response.find("}", start)
            if next_close < 0:
                break  # no '}' after here: no later box can close either
        if next_newline < start:
            next_newline = response.find("\n", start)
            if next_newline < 0:
                next_newline = n  # no newline left: the sentinel is past every '}'
        if next_close < next_newline:
            found = response[start:next_close]
            pos = next_close + 1  # matches do not overlap: the scan resumes after this one's '}'
        else:
            # A newline comes first: every box opened before it fails the same way.
            pos = next_newline + 1
    return found


def _literal_true(negated: bool, idx: int, answer: str) -> bool:
    value = "0" if idx >= len(answer) else answer[idx]  # a negative idx counts from the end, as in Python
    return value == ("0" if negated else "1")


def saturn_satisfies(clause: str, answer: str) -> bool:
    """Saturn's clause check of `answer` against Saturn's clause text. Raises IndexError only on clause
    text that is not a formula (a trailing '!', or a character below 'A' reaching before the answer)."""
    for part in clause.split(" & "):
        i, satisfied = 0, False
        while i < len(part) and not satisfied:
            if part[i] == "!":
                var = part[i + 1 : i + 2]
                if not var:
                    raise IndexError("'!' without a variable")
                satisfied = _literal_true(True, ord(var) - ord("A"), answer)
                i += 2
            else:
                satisfied = _literal_true(False, ord(part[i]) - ord("A"), answer)
                i += 1
        if not satisfied:
            return False
    return True


def saturn_reward(response: str, clause: str) -> float:
    """Saturn's reward for `response` on the formula `clause` (Saturn's text): 1.0 satisfied, 0.0 not,
    -1.0 no `\\boxed{}` found (-2.0 on a clause text that is not a formula). Never raises."""
    answer = saturn_box(response)
    if answer is None:
        return REWARD_NO_BOX
    if not isinstance(clause, str):
        return REWARD_ERROR
    try:
        return REWARD_SAT if saturn_satisfies(clause, answer) else REWARD_WRONG
    except (IndexError, TypeError):
        return REWARD_ERROR


def saturn_clauses_reward(response: str, clauses: Sequence[Sequence[int]]) -> float:
    """Saturn's reward on clauses as DIMACS literals (variable v at position v - 1): the same rule as
    `saturn_reward` on their letters text, and defined past 26 variables too."""
    answer = saturn_box(response)
    if answer is None:
        return REWARD_NO_BOX
    for clause in clauses:
        if not any(_literal_true(lit < 0, abs(lit) - 1, answer) for lit in clause):
            return REWARD_WRONG
    return REWARD_SAT


def clause_text(task: Any) -> str:
    """A `sat` task's formula as Saturn's clause text (any format, up to 26 variables)."""
    check = task.check
    if task.family != "sat" or int(check.get("k", 0)) > MAX_LETTER_VARS:
        raise ValueError(
            f"Saturn's reward reads lettered formulas (sat tasks with k <= {MAX_LETTER_VARS}); got "
            f"{task.family} k={check.get('k')}"
        )
    return format_letters(check["clauses"])


def saturn_task_reward(task: Any, response: str) -> float:
    """Saturn's reward for a `sat` task, read from its clauses (any format, any k)."""
    if task.family != "sat":
        raise ValueError(f"Saturn's reward scores sat tasks, not {task.family}")
    return saturn_clauses_reward(response, task.check["clauses"])


__all__ = [
    "clause_text",
    "saturn_box",
    "saturn_clauses_reward",
    "saturn_reward",
    "saturn_satisfies",
    "saturn_task_reward",
]
