"""Surface forms: the same problem in other words; id, check and verifier untouched; deterministic."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import taskforge
from taskforge.conformance import Probe, check_surface_forms
from taskforge.surface import DISTRACTORS, FORMS, parse_forms, render, rewrite
from taskforge.task import Task, Verdict
from tests.stubs import StubGenerator


def test_every_form_keeps_the_problem_and_rewrites_the_user_turn():
    top = len(taskforge.registry.generator_class("arithmetic").levels) - 1  # operands of 4+ digits
    (task,) = taskforge.generate("arithmetic", 1, level=top, seed=1)
    prompts = set()
    for form in FORMS:
        r = render(task, form, seed=0)
        assert (r.id, r.check, r.answer, r.params, r.difficulty) == (
            task.id,
            task.check,
            task.answer,
            task.params,
            task.difficulty,
        )
        assert r.meta["surface"] == form and r.messages[-1]["content"] == r.prompt
        assert Task.from_json(r.to_json()) == r
        prompts.add(r.prompt)
    assert render(task, "plain").prompt == task.prompt
    assert len(prompts) == len(FORMS)  # each form is a different wording of this task


def test_instruction_first_moves_the_answer_instruction_to_the_front():
    assert rewrite("Compute 12 × 3. Give the result inside <answer></answer>.", "instruction_first") == (
        "Give the result inside <answer></answer>. Compute 12 × 3."
    )
    assert (
        rewrite("Schema:\n\nx\n\nAnswer in <answer>.", "instruction_first")
        == "Answer in <answer>.\n\nSchema:\n\nx"
    )


def test_numbers_group_prose_only_and_round_trip():
    text = (
        "Compute 123456 × 7890. Then add 12.\n"
        "Price 2500.75 and code 0042 stay.\n"
        "solve(7885) == 12345\n"
        "```python\nx = 99999\n```\n"
        "Use `10000` as is, the year 2024 is prose."
    )
    out = rewrite(text, "numbers")
    assert "123,456 × 7,890." in out and "year 2,024" in out
    for kept in ("2500.75", "0042", "solve(7885) == 12345", "x = 99999", "`10000`"):
        assert kept in out
    assert re.sub(r"(?<=\d),(?=\d{3})", "", out) == text  # only separators were added


def test_distractor_is_deterministic_per_seed_and_task_in_any_process():
    tasks = list(taskforge.generate("arithmetic", 12, level=1, seed=5))
    first = [render(t, "distractor", seed=3).prompt for t in tasks]
    assert first == [render(t, "distractor", seed=3).prompt for t in tasks]
    assert all(
        p.split("\n\n")[0] in DISTRACTORS and p.endswith(t.prompt) for p, t in zip(first, tasks, strict=True)
    )
    assert len({p.split("\n\n")[0] for p in first}) > 1  # the choice varies across tasks
    code = (
        "import taskforge; from taskforge.surface import render\n"
        "ts = list(taskforge.generate('arithmetic', 12, level=1, seed=5))\n"
        "print(repr([render(t, 'distractor', seed=3).prompt for t in ts]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert other.stdout.strip() == repr(first)


def test_parse_forms():
    assert parse_forms("all") == list(FORMS)
    assert parse_forms("qa, numbers") == ["qa", "numbers"]
    with pytest.raises(ValueError, match="unknown surface form"):
        parse_forms("qa,shouting")


class ReadsPrompt(StubGenerator):
    """A broken verifier: it reads the prompt, so a reworded task fails its own gold answer."""

    family = "test_reads_prompt"

    def generate(self, params, rng):
        return self.make_task(
            params, prompt=f"Say {rng.randrange(10)}. Answer in <answer></answer>.", answer="x", check={}
        )

    def verify(self, task, response):
        return Verdict.ok(parsed="x") if task.prompt.startswith("Say") else Verdict.fail("wrong", parsed="x")


def test_conformance_check_catches_a_verifier_that_reads_the_prompt():
    problem = check_surface_forms(Probe(ReadsPrompt, samples=1, cross_process=False))
    assert problem is not None and "fails in surface form" in problem
    assert (
        check_surface_forms(Probe(taskforge.registry.generator_class("sat"), samples=1, cross_process=False))
        is None
    )
