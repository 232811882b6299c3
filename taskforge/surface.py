"""Surface forms: the same task, worded differently, for robustness training and stress tests.

Minor, content-preserving changes of a prompt (question format, instruction order, an irrelevant
sentence, number formatting) move small models' accuracy a lot. `render(task, form, seed)` rewrites only
the prompt (and the matching chat message) of any family's task; the id, `check`, `answer` and params are
kept, so the verifier, deduplication and the per-task statistics treat every form as the same problem.
The form is recorded in `task.meta["surface"]`.

    from taskforge.surface import FORMS, render
    variants = [render(task, form, seed=0) for form in FORMS]

For training (`surface:` in the training YAML), `Surfaced(source, forms, seed)` wraps a task iterator
(the stream, a fixed dataset) and hands each task out in one of `forms`, chosen by (seed, task id, the
task's position: its stream index, or its pass over a fixed dataset), so a run is reproducible, the same
task is asked in other forms on other draws, and a resumed run draws the same forms.

Forms:
- `plain`: the prompt as the generator wrote it.
- `qa`: framed as "Question: ... Answer:".
- `instruction_first`: the last block (where generators put the answer-format instruction) moved to the
  front; blocks are paragraphs, or sentences for a one-paragraph prompt.
- `distractor`: an irrelevant sentence, chosen by (seed, task id), placed before the prompt.
- `numbers`: integers of 4+ digits in prose written with thousands separators (12345 -> 12,345); code
  blocks, inline code and code- or data-like lines are left alone, so no literal a verifier or the model
  must copy changes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from taskforge.task import Task

FORMS = ("plain", "qa", "instruction_first", "distractor", "numbers")

DISTRACTORS = (
    "Note: the weather report for tomorrow predicts light rain in the afternoon.",
    "Fun fact: honey found in ancient tombs was still edible.",
    "Remember that a library card can be renewed online.",
    "Aside: the train to the coast leaves every 40 minutes on weekends.",
    "By the way, octopuses have three hearts.",
    "Context: this question is part of a weekly practice set.",
    "Note: the office will be closed on the first Monday of next month.",
    "Trivia: the Eiffel Tower grows slightly taller in summer.",
)

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_FENCE = re.compile(r"```.*?```", re.S)
_INLINE = re.compile(r"`[^`\n]*`")
_CODE_LINE = re.compile(r"[=(){}\[\];|\\]")  # code, JSON, tables, formulas: their digits are literals
_BIG_INT = re.compile(r"(?<![\w.,\-/#$+])\d{4,}(?![\w,]|\.\d)")


def parse_forms(spec: str | Sequence[str]) -> list[str]:
    """`all`, a comma-separated list, or a sequence of form names; ValueError (one line) for an unknown."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    valid = f"valid: all, {', '.join(FORMS)}"
    if not names:
        raise ValueError(f"no surface form given; {valid}")
    if names == ["all"]:
        return list(FORMS)
    if "all" in names:
        raise ValueError(f"`all` stands alone (it is every form), got {', '.join(names)}; {valid}")
    bad = [n for n in names if n not in FORMS]
    if bad:
        raise ValueError(f"unknown surface form(s) {bad}; {valid}")
    return names


def render(task: Task, form: str, seed: int = 0) -> Task:
    """The task in surface form `form`: a new prompt and chat message, the same id, check and answer."""
    if form not in FORMS:
        raise ValueError(f"unknown surface form {form!r}; valid: {', '.join(FORMS)}")
    prompt = rewrite(task.prompt, form, _pick(seed, task.id, form))
    messages = [dict(m) for m in task.messages]
    # The prompt is the user turn; a system turn (if a family has one) stays as it is.
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    target = next(
        (i for i in users if messages[i].get("content") == task.prompt), users[-1] if users else None
    )
    if target is not None:
        messages[target]["content"] = prompt
    row = task.to_dict()
    row.update(prompt=prompt, messages=messages, meta={**task.meta, "surface": form})
    return Task(**row)


def rewrite(prompt: str, form: str, pick: int = 0) -> str:
    """The text transform behind `render`; `pick` chooses among distractors."""
    if form == "plain":
        return prompt
    if form == "qa":
        return f"Question: {prompt.strip()}\n\nAnswer:"
    if form == "instruction_first":
        return _instruction_first(prompt)
    if form == "distractor":
        return f"{DISTRACTORS[pick % len(DISTRACTORS)]}\n\n{prompt}"
    if form == "numbers":
        return _group_numbers(prompt)
    raise ValueError(f"unknown surface form {form!r}")


def choose_form(task: Task, forms: Sequence[str], seed: int = 0) -> str:
    """The form a training draw of `task` is asked in: a hash of the seed, the id and the draw's position
    (`stream_index` from the stream, `dataset_epoch` from a fixed dataset), never a shared RNG, so the
    choice does not depend on how many tasks were drawn before or on which process draws it."""
    where = task.meta.get("stream_index", task.meta.get("dataset_epoch", 0))
    return forms[_pick(seed, f"{task.id}@{where}", "choose") % len(forms)]


class Surfaced:
    """A task iterator whose tasks come out in surface forms. The ids are the source's, so the source's
    `observe(task_id, rewards)` and state need no change: only what the trainer's dataset iterates is
    wrapped."""

    def __init__(self, source: Any, forms: Sequence[str], seed: int = 0) -> None:
        self.source, self.forms, self.seed = source, parse_forms(forms), int(seed)

    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        task = next(self.source)
        return render(task, choose_form(task, self.forms, self.seed), self.seed)


def _pick(seed: int, task_id: str, form: str) -> int:
    # A hash, not Python's hash(): the same choice in every process (PYTHONHASHSEED varies).
    digest = hashlib.blake2b(f"{seed}:{task_id}:{form}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _instruction_first(prompt: str) -> str:
    paragraphs = prompt.split("\n\n")
    if len(paragraphs) >= 2 and not _FENCE.search(paragraphs[-1]) and "```" not in paragraphs[-1]:
        return "\n\n".join([paragraphs[-1], *paragraphs[:-1]])
    sentences = _SENTENCE.split(prompt.strip())
    if len(sentences) >= 2:
        return " ".join([sentences[-1], *sentences[:-1]])
    return prompt


def _group_numbers(prompt: str) -> str:
    protected = sorted(
        [m.span() for m in _FENCE.finditer(prompt)] + [m.span() for m in _INLINE.finditer(prompt)]
    )
    out, pos = [], 0
    for start, end in protected + [(len(prompt), len(prompt))]:
        if start < pos:
            continue
        out.append("".join(_group_line(line) for line in prompt[pos:start].splitlines(keepends=True)))
        out.append(prompt[start:end])
        pos = end
    return "".join(out)


def _group_line(line: str) -> str:
    if _CODE_LINE.search(line):
        return line
    # A leading zero marks an identifier or a code (0042), not a quantity: left as written.
    return _BIG_INT.sub(lambda m: m.group() if m.group()[0] == "0" else f"{int(m.group()):,}", line)
