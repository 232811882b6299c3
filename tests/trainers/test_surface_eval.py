"""`taskforge eval --surface`: every task asked in each surface form, pass@k reported per form."""

from __future__ import annotations

import pytest

import taskforge
from taskforge.surface import FORMS, render
from taskforge.trainers.evaluate import evaluate
from tests.trainers.test_trainer_eval import _CannedServer, _write_tasks


def test_eval_reports_pass_at_k_per_surface_form(tmp_path):
    top = len(taskforge.registry.generator_class("arithmetic").levels) - 1  # 4+ digits: `numbers` differs
    tasks = list(taskforge.generate("arithmetic", 3, level=top, seed=7))
    f = _write_tasks(tmp_path / "tasks.jsonl", tasks)
    # A model that is right on the plain wording, half right on qa and never right on the other forms.
    table: dict[str, list[str]] = {}
    for t in tasks:
        right, wrong = f"<answer>{t.answer}</answer>", f"<answer>{int(t.answer) + 1}</answer>"
        for form in FORMS:
            replies = {"plain": [right], "qa": [right, wrong]}.get(form, [wrong])
            table[render(t, form, seed=0).prompt] = replies
    assert len(table) == len(tasks) * len(FORMS)
    with _CannedServer(table) as server:
        res = evaluate(
            "m",
            tasks_file=f,
            backend="openai",
            base_url=server.url,
            samples=4,
            ks=[1, 2],
            output_dir=tmp_path / "out",
            surface="all",
        )
    assert (
        len(server.requests) == len(tasks) * len(FORMS) * 4
    )  # one request per completion, each its own seed
    assert res.groups["surface/plain"]["pass@1"] == 1.0
    assert res.groups["surface/qa"]["pass@1"] == pytest.approx(0.5)
    assert res.groups["surface/qa"]["pass@2"] == pytest.approx(1 - 1 / 6)  # C(2,2)/C(4,2) left
    assert res.groups["surface/numbers"]["pass@2"] == 0.0
    assert res.groups[f"arithmetic/L{top}@plain"]["n_tasks"] == 3


def test_eval_cli_rejects_an_unknown_form(tmp_path):
    from typer.testing import CliRunner

    from taskforge.cli import app

    f = _write_tasks(tmp_path / "tasks.jsonl", list(taskforge.generate("arithmetic", 1, level=0, seed=1)))
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "m",
            "--tasks",
            str(f),
            "--surface",
            "loud",
            "--backend",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ],
    )
    assert res.exit_code == 2 and "unknown surface form" in res.output
