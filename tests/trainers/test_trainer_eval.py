"""Evaluation: the pass@k estimator, the hf backend on the tiny model, the openai backend on a local server."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from math import comb

import pytest

import taskforge
from taskforge.trainers.evaluate import (
    EvalItem,
    Sampling,
    completion_seed,
    default_ks,
    evaluate,
    pass_at_k,
    sample_hf,
)

pytest.importorskip("transformers")


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) that hold at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_brute_force():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)
    # pass@1 is the plain pass rate, and the estimator is exact at the edges.
    assert pass_at_k(12, 3, 1) == pytest.approx(3 / 12)
    assert pass_at_k(12, 0, 10) == 0.0 and pass_at_k(12, 3, 10) == 1.0
    assert pass_at_k(200, 7, 50) == pytest.approx(1 - comb(193, 50) / comb(200, 50))
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)


def _write_tasks(path, tasks):
    path.write_text("".join(t.to_json() + "\n" for t in tasks))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def test_hf_backend_on_tiny_model(tiny_model, tmp_path):
    tasks = list(taskforge.generate("arithmetic", 3, level=0, seed=1))
    f = _write_tasks(tmp_path / "tasks.jsonl", tasks)
    res = evaluate(
        str(tiny_model),
        tasks_file=f,
        backend="hf",
        samples=4,
        ks=[1, 2, 4],
        max_tokens=6,
        output_dir=tmp_path / "out",
        seed=0,
    )
    (group,) = res.groups.values()
    assert group["n_tasks"] == 3 and group["samples"] == 4
    # Saturn's count: tokens of the decoded completion (random tiny-model bytes may re-tokenize longer).
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    texts = [
        json.loads(line)["completion"]
        for line in (tmp_path / "out" / "completions.jsonl").read_text().splitlines()
    ]
    assert group["average_tokens"] == pytest.approx(sum(len(tok.tokenize(t)) for t in texts) / len(texts))
    assert group["pass@1"] <= group["pass@2"] <= group["pass@4"]
    lines = (tmp_path / "out" / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 12
    rec = json.loads(lines[0])
    assert rec["task_id"] == tasks[0].id and rec["reason"] in ("no_answer", "malformed", "wrong", "ok")
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    assert summary["groups"] == json.loads(json.dumps(res.groups))


def test_hf_samples_are_independent_draws_with_their_own_seeds(tiny_model):
    tasks = list(taskforge.generate("arithmetic", 3, level=0, seed=1))
    items = [EvalItem(t, "l0", t.messages) for t in tasks]
    s = Sampling(samples=6, max_tokens=8, seed=3)
    together = sample_hf(str(tiny_model), items, s)
    for rows in together:  # n samples of one prompt differ (one seed per task made copies)
        assert len({text for text, _ in rows}) == 6
    # A completion depends on (run seed, task, sample index) only: not on the other prompts in its batch...
    assert sample_hf(str(tiny_model), items[1:2], s) == together[1:2]
    # ...and another run seed draws other completions.
    other = sample_hf(str(tiny_model), items[1:2], Sampling(samples=6, max_tokens=8, seed=4))
    assert other[0] != together[1]
    assert len({completion_seed(3, t.id, j) for t in tasks for j in range(6)}) == 18


class _CannedServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers from a prompt -> replies table,
    in turn per prompt, and counts each reply's tokens as its whitespace-separated words."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table, self.requests, self.lock = table, [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                prompt = body["messages"][-1]["content"]
                replies = outer.table[prompt]
                with outer.lock:  # requests arrive concurrently
                    start = sum(r["n"] for r in outer.requests if r["messages"][-1]["content"] == prompt)
                    outer.requests.append(body)
                texts = [replies[(start + i) % len(replies)] for i in range(body["n"])]
                choices = [
                    {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)
                ]
                usage = {"completion_tokens": sum(len(t.split()) for t in texts), "prompt_tokens": 1}
                data = json.dumps(
                    {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 64  # the openai backend keeps 16 requests in flight

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_backend_against_local_server(tmp_path):
    tasks = list(taskforge.generate("arithmetic", 3, level=1, seed=2))
    correct = [0, 2, 5]  # of 6 samples per task
    # Wrong replies are padded with 0..5 words, so each completion has its own token count.
    table = {
        t.prompt: [f"<answer>{t.answer}</answer>"] * c
        + [f"<answer>{int(t.answer) + 1}</answer>" + " pad" * i for i in range(6 - c)]
        for t, c in zip(tasks, correct, strict=True)
    }
    f = _write_tasks(tmp_path / "tasks.jsonl", tasks)
    with _CannedServer(table) as server:
        res = evaluate(
            "served-model",
            tasks_file=f,
            backend="openai",
            base_url=server.url,
            samples=6,
            ks=[1, 3, 5],
            output_dir=tmp_path / "out",
            seed=7,
        )
    assert server.requests[0]["model"] == "served-model"
    assert server.requests[0]["temperature"] == 0.6 and server.requests[0]["top_p"] == 0.95
    (group,) = res.groups.values()
    for k in (1, 3, 5):
        assert group[f"pass@{k}"] == pytest.approx(sum(pass_at_k(6, c, k) for c in correct) / 3)
    # One request per completion, each with the seed every backend derives for (run seed, task, sample).
    assert len(server.requests) == 18 and all(r["n"] == 1 for r in server.requests)
    for t in tasks:
        sent = sorted(r["seed"] for r in server.requests if r["messages"][-1]["content"] == t.prompt)
        assert sent == sorted(completion_seed(7, t.id, j) for j in range(6)) and len(set(sent)) == 6
    # Tokens are counted per completion, not the request's average.
    for rec in res.records:
        assert rec["tokens"] == len(rec["completion"].split())
    assert len({rec["tokens"] for rec in res.records}) > 1
    assert group["average_tokens"] == pytest.approx(sum(r["tokens"] for r in res.records) / 18)


def test_bench_dir_writes_saturn_results_per_level(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    levels = {
        "lvl_easy": list(taskforge.generate("arithmetic", 2, level=0, seed=3)),
        "lvl_hard": list(taskforge.generate("arithmetic", 2, level=4, seed=3)),
    }
    for name, ts in levels.items():
        _write_tasks(bench / f"{name}.jsonl", ts)
    # Everything right on the easy level, everything wrong on the hard one.
    table = {t.prompt: [f"<answer>{t.answer}</answer>"] for t in levels["lvl_easy"]}
    table |= {t.prompt: ["no idea"] for t in levels["lvl_hard"]}
    with _CannedServer(table) as server:
        evaluate(
            "m",
            bench_dir=bench,
            backend="openai",
            base_url=server.url,
            samples=10,
            ks=[1, 3, 5, 7, 10],
            output_dir=tmp_path / "out",
            model_name="m",
        )
    easy = json.loads((tmp_path / "out" / "lvl_easy" / "m" / "evaluation_results.json").read_text())
    hard = json.loads((tmp_path / "out" / "lvl_hard" / "m" / "evaluation_results.json").read_text())
    keys = ["model_name", "pass@1", "pass@3", "pass@5", "pass@7", "pass@10", "average_tokens"]
    assert list(easy) == keys and list(hard) == keys
    assert easy["pass@1"] == 1.0 and hard["pass@10"] == 0.0 and easy["average_tokens"] == 1.0


def test_eval_cli(tmp_path):
    from typer.testing import CliRunner

    from taskforge.cli import app

    tasks = list(taskforge.generate("arithmetic", 2, level=0, seed=4))
    f = _write_tasks(tmp_path / "tasks.jsonl", tasks)
    table = {t.prompt: [f"<answer>{t.answer}</answer>", "nope"] for t in tasks}
    runner = CliRunner()
    with _CannedServer(table) as server:
        res = runner.invoke(
            app,
            [
                "eval",
                "--model",
                "m",
                "--tasks",
                str(f),
                "--samples",
                "4",
                "-k",
                "1,2",
                "--backend",
                "openai",
                "--base-url",
                server.url,
                "-o",
                str(tmp_path / "o"),
            ],
        )
    assert res.exit_code == 0, res.output
    assert "pass@2" in res.output and (tmp_path / "o" / "completions.jsonl").is_file()
    assert "tasks" in res.output and "completions/s" in res.output  # the progress bar
    # The default k list is clipped to --samples; an explicit k above it stays an error.
    assert default_ks(4) == [1, 3] and default_ks(12) == [1, 3, 5, 7, 10]
    with _CannedServer(table) as server:
        clipped = runner.invoke(
            app,
            [
                "eval",
                "--model",
                "m",
                "--tasks",
                str(f),
                "--samples",
                "4",
                "--backend",
                "openai",
                "--base-url",
                server.url,
                "-o",
                str(tmp_path / "o2"),
            ],
        )
    assert clipped.exit_code == 0, clipped.output
    assert "pass@3" in clipped.output and "pass@5" not in clipped.output
    (group,) = json.loads((tmp_path / "o2" / "results.json").read_text())["groups"].values()
    assert "pass@3" in group and "pass@5" not in group
    bad = runner.invoke(
        app,
        [
            "eval",
            "--model",
            "m",
            "--tasks",
            str(f),
            "--samples",
            "4",
            "-k",
            "1,5",
            "--backend",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ],
    )
    assert bad.exit_code == 2 and "k must lie in 1..samples" in bad.output
    missing = runner.invoke(app, ["eval", "--model", str(tmp_path / "nope"), "--tasks", str(f)])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_saturn_bench_dir(tmp_path):
    """Saturn's own records (shipped in data/saturn) through the SAT converter and Saturn's summary file."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "data" / "saturn" / "test" / "n3_k5_length20_sample100.jsonl"
    records = [json.loads(line) for line in src.read_text().splitlines()[:3]]
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / src.name).write_text("".join(json.dumps(r) + "\n" for r in records))
    # Record 0 always solved, record 1 in 1 of 4 samples (an empty box fails), record 2 never.
    table = {r["prompt"]: [f"\\boxed{{{r['solution']}}}"] for r in records[:1]}
    table[records[1]["prompt"]] = [
        f"\\boxed{{{records[1]['solution']}}}",
        "\\boxed{}",
        "\\boxed{}",
        "\\boxed{}",
    ]
    table[records[2]["prompt"]] = ["I cannot solve this."]
    with _CannedServer(table) as server:
        res = evaluate(
            "m",
            bench_dir=bench,
            backend="openai",
            base_url=server.url,
            samples=4,
            ks=[1, 3],
            output_dir=tmp_path / "out",
            model_name="m",
        )
    (key,) = res.groups
    assert key == "sat/n3_k5_length20_sample100"
    summary = json.loads((tmp_path / "out" / src.stem / "m" / "evaluation_results.json").read_text())
    assert summary["pass@1"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert summary["pass@3"] == pytest.approx((1 + pass_at_k(4, 1, 3) + 0) / 3)
