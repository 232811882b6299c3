"""Saturn's evaluation files: layout, bytes, `results.jsonl`, `--rescore`, token counts, scoring modes.

`saturn_eval_k` below is a literal reading of Saturn's src/sample/eval_k.py (numpy pass@k, tokens counted
with `tokenizer.tokenize`, `json.dump(indent=4)`); our files must equal its output byte for byte.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from taskforge.cli import app
from taskforge.generators.sat.saturn import read_records
from taskforge.trainers.evaluate import DEFAULT_MAX_TOKENS, Sampling, default_model_name, evaluate, rescore
from tests.trainers.test_trainer_eval import _CannedServer

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "saturn" / "test" / "n3_k5_length20_sample100.jsonl"
BOX = re.compile(r"\\boxed{(.*?)}")


def saturn_eval_k(results: Path, model_name: str, tokenizer) -> str:
    """What Saturn's eval_k.py writes for a results.jsonl, as a string."""

    def sat(clause: str, sol: str) -> bool:
        for part in clause.split(" & "):
            ok = False
            for neg, var in re.findall(r"(!?)([A-Z])", part):
                idx = ord(var) - 65
                val = "0" if idx >= len(sol) else sol[idx]
                if (neg and val == "0") or (not neg and val == "1"):
                    ok = True
                    break
            if not ok:
                return False
        return True

    def pass_at_k(n, c, k):
        if c == 0:
            return 0.0
        if n - c < k:
            return 1.0
        return 1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1))

    length, total_tokens, counts = 0, 0, {k: 0 for k in (1, 3, 5, 7, 10)}
    for line in results.read_text().splitlines():
        ex = json.loads(line)
        length += 1
        comps = ex["completions"]
        total_tokens += sum(len(tokenizer.tokenize(c)) for c in comps) / len(comps)
        sols = [m[-1] if (m := BOX.findall(c)) else None for c in comps]
        c = sum(1 for s in sols if s is not None and sat(ex["clause"], s))
        for k in counts:
            counts[k] += pass_at_k(len(sols), c, k)
    out = {"model_name": model_name, **{f"pass@{k}": counts[k] / length for k in counts}}
    out["average_tokens"] = total_tokens / length
    return json.dumps(out, indent=4)


def fake_completions(rec: dict, rng: random.Random, n: int = 12) -> list[str]:
    gold = rec["solution"]
    pool = [
        f"<think>\nlet me see {gold[::-1]}\n</think>\n\\boxed{{{gold}}}",
        f"\\boxed{{{gold[::-1]}}}",
        "\\boxed{}",
        f"<answer>{gold}</answer>",
        f"<answer>\\boxed{{{gold}}}</answer>",
        f"\\boxed{{ {gold} }}",
        f"\\boxed{{{gold[:2]}\n{gold[2:]}}}",
        "I give up. é ✓",
    ]
    return [rng.choice(pool) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    pytest.importorskip("transformers")
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def saturn_results(tmp_path) -> Path:
    """A Saturn results.jsonl in Saturn's layout, as its inference_k.py writes it."""
    rng = random.Random(0)
    path = tmp_path / "results" / "n3_k5_length20_sample100" / "Saturn-7B" / "results.jsonl"
    path.parent.mkdir(parents=True)
    with path.open("w") as fh:
        for rec in read_records(SHIPPED):
            rec["completions"] = fake_completions(rec, rng)
            fh.write(json.dumps(rec) + "\n")
    return path


def test_rescore_writes_saturns_bytes(saturn_results, tiny_path, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_path)
    res = rescore(saturn_results, scoring="saturn", output_dir=tmp_path / "out", tokenizer=tiny_path)
    folder = tmp_path / "out" / "n3_k5_length20_sample100" / "Saturn-7B"
    written = (folder / "evaluation_results.json").read_bytes()
    assert written == saturn_eval_k(saturn_results, "Saturn-7B", tok).encode()
    assert not written.endswith(b"\n") and list(json.loads(written))[0] == "model_name"
    # results.jsonl: the same records and completions, as Saturn writes them.
    assert (folder / "results.jsonl").read_text() == saturn_results.read_text()
    (group,) = res.groups.values()
    assert group["n_tasks"] == 100 and group["samples"] == 12
    # Other modes read the same file differently: strict and lenient close Saturn's empty-box loophole.
    strict = rescore(saturn_results, scoring="strict", output_dir=tmp_path / "s", tokenizer=tiny_path)
    lenient = rescore(saturn_results, scoring="lenient", output_dir=tmp_path / "l", tokenizer=tiny_path)
    pass1 = {
        m: next(iter(r.groups.values()))["pass@1"]
        for m, r in [("saturn", res), ("strict", strict), ("lenient", lenient)]
    }
    assert len(set(pass1.values())) == 3, pass1
    reasons = {r["reason"] for r in res.records}
    assert reasons == {"ok", "wrong", "no_answer"} and {r["reward"] for r in res.records} == {1.0, 0.0, -1.0}


def test_rescore_cli_and_its_errors(saturn_results, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "eval",
            "--rescore",
            str(saturn_results),
            "--scoring",
            "saturn",
            "-o",
            str(tmp_path / "o"),
            "--model-name",
            "renamed",
            "-k",
            "1,3",
        ],
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads(
        (tmp_path / "o" / "n3_k5_length20_sample100" / "renamed" / "evaluation_results.json").read_text()
    )
    assert list(summary) == ["model_name", "pass@1", "pass@3", "average_tokens"]
    assert summary["average_tokens"] is None  # no tokenizer: Saturn's count cannot be made
    bare = tmp_path / "bare.jsonl"
    bare.write_text(SHIPPED.read_text().splitlines()[0] + "\n")
    bad = runner.invoke(app, ["eval", "--rescore", str(bare)])
    assert bad.exit_code == 2 and "completions" in bad.output and "Traceback" not in bad.output
    mode = runner.invoke(app, ["eval", "--rescore", str(saturn_results), "--scoring", "loose"])
    assert mode.exit_code == 2 and "--scoring must be one of" in mode.output


def test_bench_eval_writes_saturn_layout(tmp_path, tiny_path):
    records = list(read_records(SHIPPED))[:3]
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / SHIPPED.name).write_text("".join(json.dumps(r) + "\n" for r in records))
    rng = random.Random(1)
    table = {r["prompt"]: fake_completions(r, rng, 4) for r in records}
    with _CannedServer(table) as server:
        res = evaluate(
            "served",
            bench_dir=bench,
            backend="openai",
            base_url=server.url,
            samples=4,
            ks=[1, 3],
            output_dir=tmp_path / "out",
            scoring="saturn",
            tokenizer=tiny_path,
        )
    folder = tmp_path / "out" / SHIPPED.stem / "served"
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert [list(r) for r in rows] == [[*records[0], "completions"]] * 3
    assert [len(r["completions"]) for r in rows] == [4, 4, 4]
    summary = json.loads((folder / "evaluation_results.json").read_text())
    assert summary["pass@1"] == res.groups[f"sat/{SHIPPED.stem}"]["pass@1"]
    assert isinstance(summary["average_tokens"], float)  # counted with the tokenizer, not the server


def test_defaults_follow_saturn():
    assert Sampling().max_tokens == DEFAULT_MAX_TOKENS == 15_000  # Saturn's inference_k.py
    assert default_model_name("/models/Saturn-7B/") == "Saturn-7B"
    assert default_model_name("served-name", "openai") == "served-name"
