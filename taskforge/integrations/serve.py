"""A reward server that speaks OpenRLHF's remote reward protocol (`taskforge serve`).

OpenRLHF 0.11's client (`openrlhf/utils/agent.py`, `SingleTurnAgentExecutor._fetch_rewards_via_http`,
read in the 0.11.2 wheel) POSTs JSON `{"query": [...], "prompts": [...], "labels": [...]}` to the URL
given by `--reward.remote_url` (`--remote_rm_url` before 0.11), one sample per request in practice;
`query` is prompt and response decoded together (special tokens kept), `prompts` the prompt as sent to
vLLM, `labels` the dataset's `--data.label_key` column. It reads `rewards` (and `scores`, falling back
to `rewards`) and `extra_logs` from the JSON answer, one value per query, as its own `serve_rm` answers.
It retries a failed request 5 times, one second apart, then stops training: an overloaded server answers
503 so the retry waits, a malformed request 4xx so a misconfiguration stops the run with our message.

A label is a task id from TASKS, a task's JSON, or (for Saturn's scripts, `--label_key clause`) the clause
text of a Saturn record in TASKS. Requests are queued (bounded) and verified in batches, so the code
family runs a whole batch in one sandbox round; each request has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# FastAPI reads the handlers' annotations by name at run time: `Request` must be a module global.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from taskforge.api import as_task, verify_many
from taskforge.errors import DatasetError
from taskforge.io import read_jsonl, read_tasks, task_files
from taskforge.registry import get_generator
from taskforge.task import TASK_FIELDS, Task, Verdict

MAX_BODY_BYTES = 32 << 20
SATURN_FIELDS = {"n_sat", "k", "clause", "solution"}


class LabelError(ValueError):
    """A label that names no task."""


class Overloaded(RuntimeError):
    """The queue is full."""


# ---- finding tasks --------------------------------------------------------------------------------
def _saturn_task(record: dict[str, Any]) -> Task:
    from taskforge.generators.sat.records import record_to_task

    return record_to_task(record)


def _is_saturn(record: dict[str, Any]) -> bool:
    return set(record) >= SATURN_FIELDS and "family" not in record


class TaskIndex:
    """Tasks by label: task id, and clause text for Saturn records."""

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self.by_key: dict[str, Task] = {}
        self._parsed: OrderedDict[str, Task] = OrderedDict()
        for task in tasks:
            self.by_key.setdefault(task.id, task)

    def __len__(self) -> int:
        return len({id(t) for t in self.by_key.values()})

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> TaskIndex:
        """Files `taskforge generate` wrote (.jsonl/.parquet), Saturn JSONL records, or folders of them."""
        index = cls()
        for path in map(Path, paths):
            if not path.exists():
                raise DatasetError(f"no such file or folder: {path}")
            files = task_files(path)
            if not files:
                raise DatasetError(f"{path} holds no .jsonl or .parquet file")
            for file in files:
                index._add_file(file)
        if not index.by_key:
            raise DatasetError("TASKS hold no task")
        return index

    def _add_file(self, file: Path) -> None:
        if file.suffix == ".jsonl":
            first = next(read_jsonl(file), None)
            if first is not None and _is_saturn(first):
                for record in read_jsonl(file):
                    self.by_key.setdefault(str(record["clause"]), _saturn_task(record))
                return
        for task in read_tasks(file):
            self.by_key.setdefault(task.id, task)

    def resolve(self, label: Any) -> Task:
        if isinstance(label, dict):
            return self._from_record(label)
        if not isinstance(label, str):
            raise LabelError(f"a label must be a string, got {type(label).__name__}")
        task = self.by_key.get(label) or self._parsed.get(label)
        if task is not None:
            return task
        if not label.lstrip().startswith("{"):
            raise LabelError(f"label {label[:80]!r} is neither a task id in TASKS nor a task's JSON")
        try:
            record = json.loads(label)
        except json.JSONDecodeError as exc:
            raise LabelError(f"label is not valid JSON: {exc.msg}") from None
        task = self._from_record(record)
        self._parsed[label] = task
        if len(self._parsed) > 4096:
            self._parsed.popitem(last=False)
        return task

    @staticmethod
    def _from_record(record: Any) -> Task:
        if not isinstance(record, dict):
            raise LabelError("a JSON label must be an object")
        try:
            if _is_saturn(record):
                return _saturn_task(record)
            if set(TASK_FIELDS) - {"meta"} <= set(record):
                return as_task(record)
        except Exception as exc:  # any malformed record is the client's mistake: a 4xx, never a 500
            raise LabelError(f"label is not a valid task record: {str(exc)[:200]}") from None
        raise LabelError("a JSON label must be a task record (the fields `taskforge generate` writes)")


def response_of(query: str, prompt: Any) -> str:
    """The model's part of OpenRLHF's `query` (prompt and response decoded together)."""
    if isinstance(prompt, str) and prompt and query.startswith(prompt):
        return query[len(prompt) :]
    return query  # the decoded prompt differs from the original: the last answer block is still the model's


# ---- batching ---------------------------------------------------------------------------------------
def _verify_total(
    verify: Callable[[Sequence[Task], Sequence[Any]], list[Verdict]],
) -> Callable[..., list[Verdict]]:
    @functools.wraps(verify)
    def run(tasks: Sequence[Task], responses: Sequence[Any]) -> list[Verdict]:
        try:
            verdicts = list(verify(tasks, responses))
            if len(verdicts) == len(tasks) and all(isinstance(v, Verdict) for v in verdicts):
                return verdicts
        except Exception:  # a broken backend (a lost Ray actor) must not take the server down
            pass
        return [get_generator(t.family).safe_verify(t, r) for t, r in zip(tasks, responses, strict=True)]

    return run


class RewardService:
    """A bounded queue of (task, response) items, verified `batch_size` at a time on one thread."""

    def __init__(
        self,
        verify: Callable[[Sequence[Task], Sequence[Any]], list[Verdict]],
        *,
        batch_size: int = 64,
        max_queue: int = 4096,
        timeout_s: float = 60.0,
    ) -> None:
        self.verify = _verify_total(verify)
        self.batch_size, self.max_queue, self.timeout_s = batch_size, max_queue, timeout_s
        self.batches = 0
        self._queue: asyncio.Queue[tuple[Task, Any, asyncio.Future[Verdict]]] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="taskforge-verify")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, tasks: Sequence[Task], responses: Sequence[Any]) -> list[Verdict]:
        assert self._queue is not None, "start() the service first"
        if self._queue.qsize() + len(tasks) > self.max_queue:
            raise Overloaded(f"queue full ({self._queue.qsize()} items waiting)")
        loop = asyncio.get_running_loop()
        futures = []
        for task, response in zip(tasks, responses, strict=True):
            future: asyncio.Future[Verdict] = loop.create_future()
            self._queue.put_nowait((task, response, future))
            futures.append(future)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s))
        finally:
            for future in futures:
                future.cancel()  # a timed-out request's items are skipped, not verified for nobody

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [item for item in batch if not item[2].done()]
            if not live:
                continue
            verdicts = await loop.run_in_executor(
                self._executor, self.verify, [t for t, _, _ in live], [r for _, r, _ in live]
            )
            self.batches += 1
            for (_, _, future), verdict in zip(live, verdicts, strict=True):
                if not future.done():
                    future.set_result(verdict)


# ---- the HTTP app -----------------------------------------------------------------------------------
def create_app(
    index: TaskIndex,
    *,
    verify: Callable[[Sequence[Task], Sequence[Any]], list[Verdict]] | None = None,
    batch_size: int = 64,
    max_queue: int = 4096,
    timeout_s: float = 60.0,
) -> Any:
    """The FastAPI app: `POST /get_reward` (OpenRLHF's protocol) and `GET /health`."""
    if verify is None:
        verify = verify_many
    service = RewardService(verify, batch_size=batch_size, max_queue=max_queue, timeout_s=timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title="taskforge reward server", lifespan=lifespan)
    app.state.service = service

    def error(status: int, message: str, **headers: str) -> Any:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": len(index), "batches": service.batches}

    @app.post("/get_reward")
    async def get_reward(request: Request) -> Any:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "the body is not JSON")
        if not isinstance(data, dict):
            return error(
                400, 'the body must be a JSON object {"query": [...], "prompts": [...], "labels": [...]}'
            )
        query, prompts, labels = data.get("query"), data.get("prompts"), data.get("labels")
        if not isinstance(query, list) or not all(isinstance(q, str) for q in query):
            return error(422, "`query` must be a list of strings")
        if not isinstance(labels, list) or len(labels) != len(query):
            return error(422, "`labels` must be a list with one label per query")
        if prompts is None:
            prompts = [None] * len(query)
        if not isinstance(prompts, list) or len(prompts) != len(query):
            return error(422, "`prompts` must be a list with one prompt per query")
        try:
            tasks = [index.resolve(label) for label in labels]
        except LabelError as exc:
            return error(422, str(exc))
        responses = [response_of(q, p) for q, p in zip(query, prompts, strict=True)]
        try:
            verdicts = await service.score(tasks, responses)
        except Overloaded as exc:
            return error(503, str(exc), **{"Retry-After": "1"})
        except asyncio.TimeoutError:
            return error(504, f"verification took longer than {service.timeout_s} s")
        rewards = [float(v.score) for v in verdicts]
        return {
            "rewards": rewards,
            "scores": rewards,
            "extra_logs": {"passed": [float(v.passed) for v in verdicts]},
        }

    return app
