import json

from typer.testing import CliRunner

from taskforge.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_list_shows_families_knobs_and_levels():
    res = run("list", "--as-json")
    assert res.exit_code == 0
    rows = {r["family"]: r for r in json.loads(res.stdout)}
    assert "digits" in rows["arithmetic"]["knobs"] and len(rows["arithmetic"]["levels"]) >= 5
    assert {"n", "k", "l"} <= set(rows["sat"]["knobs"])


def test_generate_verify_stats_round(tmp_path):
    tasks = tmp_path / "t.jsonl"
    res = run(
        "generate", "arithmetic", "-n", 40, "--level", 3, "-p", "negative=true", "-o", tasks, "--seed", 3
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in tasks.read_text().splitlines()]
    assert len(rows) == 40 and all(r["params"]["negative"] is True for r in rows)

    responses = tmp_path / "r.jsonl"
    with open(responses, "w") as fh:
        for r in rows[:20]:
            fh.write(
                json.dumps(
                    {"id": r["id"], "responses": [f"<answer>{r['answer']}</answer>", "<answer>0</answer>"]}
                )
                + "\n"
            )
    verdicts = tmp_path / "v.jsonl"
    res = run("verify", tasks, responses, "-o", verdicts)
    assert res.exit_code == 0, res.output
    out = [json.loads(x) for x in verdicts.read_text().splitlines()]
    assert len(out) == 40 and sum(v["passed"] for v in out) == 20
    assert {v["reason"] for v in out} == {"ok", "wrong"}
    assert "0.500" in res.output

    res = run("verify", tasks, "--gold", "-w", 2)
    assert res.exit_code == 0 and "1.000" in res.output

    res = run("stats", tasks)
    assert res.exit_code == 0 and "arithmetic" in res.output and "40" in res.output


def test_bad_input_gives_one_line_and_exit_2(tmp_path):
    cases = [
        ("generate", "nope", "-n", 3, "-o", tmp_path / "a.jsonl"),
        ("generate", "arithmetic", "-n", 3, "-p", "digits=999", "-o", tmp_path / "a.jsonl"),
        ("generate", "arithmetic", "-n", 3, "-p", "bogus=1", "-o", tmp_path / "a.jsonl"),
        ("generate", "arithmetic", "-n", 3, "--level", 99, "-o", tmp_path / "a.jsonl"),
        ("generate", "arithmetic", "-n", 3, "-o", tmp_path / "a.txt"),
        ("verify", tmp_path / "missing.jsonl", "--gold"),
        ("stats", tmp_path / "missing.jsonl"),
        ("check", "no_such_module:Thing"),
    ]
    for args in cases:
        res = run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.output
    assert not list(tmp_path.iterdir()), "nothing may be half-written"


def test_verify_rejects_responses_for_unknown_tasks(tmp_path):
    tasks = tmp_path / "t.jsonl"
    run("generate", "arithmetic", "-n", 2, "-o", tasks)
    bad = tmp_path / "r.jsonl"
    bad.write_text(json.dumps({"id": "zzz", "response": "1"}) + "\n")
    res = run("verify", tasks, bad)
    assert res.exit_code == 2 and "unknown task id" in res.output


def test_check_command_reports_failures(tmp_path):
    res = run("check", "tests.broken_generators:WrongGold", "--samples", 2)
    assert res.exit_code == 1
    assert "FAIL gold answer passes at every level" in res.output


def test_demo_runs_every_family(tmp_path):
    res = run("demo", "-o", tmp_path, "--per-level", 1)
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "demo.jsonl").read_text().splitlines()]
    from taskforge import families

    assert {r["family"] for r in rows} == set(families())
