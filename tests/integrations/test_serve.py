"""`taskforge serve`: a real uvicorn server on a free port, spoken to in OpenRLHF's remote reward protocol
(the request its 0.11 client sends: one query = prompt + response + special tokens, `prompts`, `labels`)."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import taskforge
from taskforge.registry import get_generator

pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install 'taskforge[serve]')")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'taskforge[serve]')")

from taskforge.generators.sat.records import export_saturn, record_to_task  # noqa: E402
from taskforge.integrations.serve import TaskIndex, create_app  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def post(self, body, path="/get_reward"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def tasks():
    out = []
    for family, level in (("arithmetic", 2), ("sat", 2), ("code", 1), ("sql", 0)):
        out += list(taskforge.generate(family, 3, level=level, seed=4))
    return out


@pytest.fixture(scope="module")
def server(tasks, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "tasks.jsonl").write_text("".join(t.to_json() + "\n" for t in tasks))
    export_saturn(tmp / "saturn", train_levels=[], test_levels=[(3, 5, 10)], per_level=3, seed=0)
    index = TaskIndex.load([tmp / "tasks.jsonl", tmp / "saturn"])
    srv = Server(create_app(index, batch_size=8, max_queue=256, timeout_s=30))
    srv.saturn = [
        json.loads(line)
        for p in sorted((tmp / "saturn").rglob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    yield srv
    srv.stop()


def openrlhf_request(prompt, response, label):
    """What OpenRLHF's SingleTurnAgentExecutor posts: the decoded prompt+response, the prompt, the label."""
    return {"query": [prompt + response + "<|im_end|>"], "prompts": [prompt], "labels": [label]}


def chat(prompt):
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def test_openrlhf_request_gets_our_rewards(server, tasks):
    for task in tasks:
        gen = get_generator(task.family)
        status, body = server.post(openrlhf_request(chat(task.prompt), gen.gold_response(task), task.id))
        assert status == 200, body
        assert body == {"rewards": [1.0], "scores": [1.0], "extra_logs": {"passed": [1.0]}}
        status, body = server.post(openrlhf_request(chat(task.prompt), "I do not know", task.to_json()))
        assert status == 200 and body["rewards"] == [0.0]


def test_saturn_labels_are_clauses(server):
    # Saturn's own scripts: --input_key prompt --label_key clause
    for record in server.saturn:
        good = f"\\boxed{{{record['solution']}}}"
        status, body = server.post(openrlhf_request(chat(record["prompt"]), good, record["clause"]))
        assert status == 200 and body["rewards"] == [1.0]
        task = record_to_task(record)
        k = record["k"]
        wrong = next(
            a
            for a in (format(i, f"0{k}b") for i in range(2**k))
            if not taskforge.verify(task, f"\\boxed{{{a}}}").passed
        )
        status, body = server.post(
            openrlhf_request(chat(record["prompt"]), f"\\boxed{{{wrong}}}", record["clause"])
        )
        assert status == 200 and body["rewards"] == [0.0]


def test_batch_and_concurrent_requests(server, tasks):
    rng = __import__("random").Random(1)
    items = []
    for task in tasks:
        gen = get_generator(task.family)
        items.append((task, gen.gold_response(task), 1.0))
        wrong = gen.corrupt_answer(task, rng)
        if wrong is not None:
            items.append((task, wrong, 0.0))
    body = {
        "query": [chat(t.prompt) + r for t, r, _ in items],
        "prompts": [chat(t.prompt) for t, _, _ in items],
        "labels": [t.id for t, _, _ in items],
    }
    status, got = server.post(body)
    assert status == 200 and got["rewards"] == [want for _, _, want in items]
    before = server.get("/health")["batches"]
    with ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(lambda it: server.post(openrlhf_request(chat(it[0].prompt), it[1], it[0].id)), items * 2)
        )
    assert [a[1]["rewards"] for a in answers] == [[want] for _, _, want in items * 2]
    assert server.get("/health")["batches"] - before < len(items) * 2  # concurrent requests shared batches


HOSTILE = [
    "```python\nimport os\nos._exit(0)\n```",
    "```python\nwhile True: pass\n```",
    "```python\nimport os\nwhile True: os.fork()\n```",
    "```sql\nWITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d\n```",
    "```sql\nSELECT 1; DROP TABLE x\n```",
    "<answer>" * 20_000,
    "\x00\udcff" * 1000,
    "\\boxed{" * 3000,
]


def test_hostile_completions_never_crash_the_server(server, tasks):
    labels = [t.id for t in tasks for _ in HOSTILE]
    queries = [h for _ in tasks for h in HOSTILE]
    status, body = server.post({"query": queries, "prompts": [""] * len(queries), "labels": labels})
    assert status == 200 and body["rewards"] == [0.0] * len(queries)
    assert server.get("/health")["status"] == "ok"


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"not json", 400, "not JSON"),
        ([1, 2], 400, "JSON object"),
        ({"prompts": [], "labels": []}, 422, "query"),
        ({"query": "text", "labels": ["x"]}, 422, "query"),
        ({"query": ["a", "b"], "labels": ["x"]}, 422, "one label per query"),
        ({"query": ["a"], "prompts": ["p", "q"], "labels": ["x"]}, 422, "one prompt per query"),
        ({"query": ["a"], "labels": ["no-such-id"]}, 422, "neither a task id"),
        ({"query": ["a"], "labels": ["{broken"]}, 422, "not valid JSON"),
        ({"query": ["a"], "labels": ['{"a": 1}']}, 422, "task record"),
        ({"query": ["a"], "labels": [3]}, 422, "string"),
        (
            {"query": ["a"], "labels": [json.dumps({f: 1 for f in taskforge.task.TASK_FIELDS})]},
            422,
            "valid task",
        ),
    ],
)
def test_malformed_requests_get_a_4xx(server, body, status, message):
    got_status, got = server.post(body)
    assert got_status == status and message in got["error"]


def test_bounded_queue_and_timeout(tasks):
    def slow(batch_tasks, responses):
        time.sleep(1.0)
        return [taskforge.Verdict.ok() for _ in batch_tasks]

    srv = Server(create_app(TaskIndex(tasks), verify=slow, batch_size=1, max_queue=3, timeout_s=0.3))
    try:
        status, body = srv.post({"query": ["x"] * 4, "labels": [tasks[0].id] * 4})
        assert status == 503 and "queue full" in body["error"]
        status, body = srv.post({"query": ["x"], "labels": [tasks[0].id]})
        assert status == 504 and "longer than" in body["error"]
    finally:
        srv.stop()


def test_real_openrlhf_client_gets_our_rewards(server, tasks):
    """OpenRLHF's own HTTP client code (0.11), when importable: the request it builds, the answer it reads."""
    agent = pytest.importorskip(
        "openrlhf.utils.agent", reason="openrlhf is not installed (needs CUDA stacks)"
    )
    import asyncio

    executor = agent.SingleTurnAgentExecutor(remote_rm_url=server.url + "/get_reward")
    for task in tasks:
        prompt = chat(task.prompt)
        for response, want in ((get_generator(task.family).gold_response(task), 1.0), ("no idea", 0.0)):
            infos = asyncio.run(executor._fetch_rewards_via_http([prompt + response], [prompt], [task.id]))
            # what SingleTurnAgentExecutor.execute keeps from the first answer
            assert infos[0]["rewards"] == [want] and infos[0].get("scores") == [want]


def test_serve_cli_user_errors(tmp_path):
    from typer.testing import CliRunner

    from taskforge.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--tasks", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["serve", "--tasks", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds no .jsonl or .parquet" in result.output
    result = runner.invoke(app, ["serve", "--tasks", str(tmp_path), "--port", "70000"])
    assert result.exit_code == 2 and "--port" in result.output
