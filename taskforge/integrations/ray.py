"""Ray: generation spread over a cluster, and a pool of verifier actors (the `[ray]` extra).

    generate_ray(DatasetSpec(n=1_000_000, family="sql", level=7), "sql.parquet", address="auto")

splits the index range into blocks, renders each block in a Ray task (retried by Ray when its worker
dies) and writes every finished block as a shard under `OUT.ray-parts/` on the driver (so nodes need no
shared filesystem). When all blocks are there, the shards are merged into OUT with exactly the row groups
of a local run: the same bytes whatever the number of workers or nodes. A killed driver loses at most
the blocks in flight; `resume=True` keeps every finished shard and renders only the missing blocks.

    with VerifierPool(actors=8, address="auto") as pool:
        verdicts = pool.verify_many(tasks, responses)

keeps one actor per CPU, each holding its own long-lived code sandbox and SQL worker, so a trainer on one
node can spread code and SQL rewards over a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from taskforge import io as tfio
from taskforge.api import verify_many
from taskforge.errors import DatasetError, GenerationError, MissingExtraError, TaskforgeError
from taskforge.io import PARQUET_SCHEMA, DatasetComplete, DatasetSpec, _render_chunk, task_to_row
from taskforge.seeding import hash_unit
from taskforge.task import Task, Verdict

BLOCK_ROWS = 4096
MAX_RETRIES = 3  # Ray reruns a task whose worker process died this many times before giving up


class RayUnavailable(TaskforgeError, RuntimeError):
    """The Ray cluster cannot be started or reached."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("Ray is not installed: pip install 'taskforge[ray]'") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join a Ray cluster once per process: None or "local" starts a local one, "auto" or an address joins."""
    ray = _ray()
    if ray.is_initialized():
        return
    quiet = {"include_dashboard": False, "log_to_driver": False}
    try:
        if address in (None, "", "local"):
            ray.init(num_cpus=num_cpus, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RayUnavailable(f"cannot start or join a Ray cluster at {address or 'local'}: {exc}") from None


# ---- generation -----------------------------------------------------------------------------------
def render_block(spec: DatasetSpec, start: int, stop: int, fmt: str) -> bytes:
    """Items start..stop-1 as the bytes of one shard file (JSONL text or a Parquet file)."""
    lines = _render_chunk((spec, start, stop))
    if fmt == ".jsonl":
        return ("\n".join(lines) + "\n").encode() if lines else b""
    table = pa.Table.from_pylist([task_to_row(json.loads(line)) for line in lines], schema=PARQUET_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def parts_dir(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".ray-parts")


def _shard(parts: Path, block: tuple[int, int], fmt: str) -> Path:
    return parts / f"block-{block[0]:012d}-{block[1]:012d}{fmt}"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def generate_ray(
    spec: DatasetSpec,
    path: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    block_rows: int = BLOCK_ROWS,
    cpus_per_block: float = 1.0,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the dataset with Ray tasks; returns the rows rendered by this call (resumed blocks excluded).

    `cpus_per_block` is what each block task reserves (more than 1 leaves cores free for other work)."""
    spec.validate()
    path = Path(path)
    fmt = path.suffix
    if fmt not in (".jsonl", ".parquet"):
        raise DatasetError(f"output must end in .jsonl or .parquet, got {path.name!r}")
    if block_rows < 1:
        raise DatasetError(f"block size must be >= 1, got {block_rows}")
    _ray()  # a missing extra is reported before anything is written
    tfio.check_writable(path)
    parts = parts_dir(path)
    plan = json.loads(json.dumps({"spec": spec.to_dict(), "block_rows": block_rows, "format": fmt}))
    if resume:
        if not (parts / "plan.json").exists():
            if path.exists():
                raise DatasetComplete(f"{path} is already complete; nothing to resume")
            raise DatasetError(f"{path} has no run to resume (no {parts.name}/)")
        old = json.loads((parts / "plan.json").read_text())
        if old != plan:
            raise DatasetError(f"cannot resume {path}: it was started with different settings {old}")
        for stray in parts.glob("*.tmp"):
            stray.unlink()
    else:
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        _write_atomic(parts / "plan.json", json.dumps(plan).encode())
    blocks = [(s, min(s + block_rows, spec.n)) for s in range(0, spec.n, block_rows)]
    todo = [b for b in blocks if not _shard(parts, b, fmt).exists()]
    if progress:
        progress(spec.n - sum(stop - start for start, stop in todo))
    if todo:
        _run_blocks(spec, parts, todo, fmt, address, num_cpus, cpus_per_block, progress)
    _merge(parts, blocks, path, fmt)
    shutil.rmtree(parts)
    return sum(stop - start for start, stop in todo)


def _run_blocks(
    spec: DatasetSpec,
    parts: Path,
    todo: list[tuple[int, int]],
    fmt: str,
    address: str | None,
    num_cpus: int | None,
    cpus_per_block: float,
    progress: Callable[[int], None] | None,
) -> None:
    connect(address, num_cpus)
    ray = _ray()
    task = ray.remote(num_cpus=cpus_per_block, max_retries=MAX_RETRIES)(render_block)
    spec_ref = ray.put(spec)
    # A bounded window of blocks in flight: the driver's memory holds at most this many shards.
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    queue = iter(todo)
    pending: dict[Any, tuple[int, int]] = {}

    def submit() -> None:
        block = next(queue, None)
        if block is not None:
            pending[task.remote(spec_ref, block[0], block[1], fmt)] = block

    for _ in range(window):
        submit()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            block = pending.pop(ref)
            try:
                data = ray.get(ref)
            except ray.exceptions.RayError as exc:
                for other in pending:
                    ray.cancel(other)
                cause = getattr(exc, "cause", None) or exc
                if isinstance(
                    cause, TaskforgeError
                ):  # the settings cannot work (as locally): resuming won't help
                    shutil.rmtree(parts, ignore_errors=True)
                    raise cause from None
                first = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
                raise GenerationError(
                    f"block {block[0]}..{block[1] - 1} failed ({first}); finished blocks are kept in "
                    f"{parts.name}/ for --resume"
                ) from None
            _write_atomic(_shard(parts, block, fmt), data)
            if progress:
                progress(block[1] - block[0])
            submit()


def local_row_group_rows() -> int:
    """Rows per Parquet row group of a local run: `write_dataset` appends CHUNK rows at a time and cuts a
    part (one row group of the final file) once PARQUET_PART_ROWS are buffered, so a group holds
    PARQUET_PART_ROWS rounded up to a whole number of chunks (20224 rows by default)."""
    return -(-tfio.PARQUET_PART_ROWS // tfio.CHUNK) * tfio.CHUNK


def _merge(parts: Path, blocks: list[tuple[int, int]], path: Path, fmt: str) -> None:
    """Shards -> OUT, with the row groups of a local run: the same bytes."""
    tmp = path.with_name(path.name + ".tmp")
    if fmt == ".jsonl":
        with open(tmp, "wb") as out:
            for block in blocks:
                with open(_shard(parts, block, fmt), "rb") as src:
                    shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
    else:
        with pq.ParquetWriter(tmp, PARQUET_SCHEMA) as out:
            held: list[pa.Table] = []
            rows, group = 0, local_row_group_rows()
            for block in blocks:
                table = pq.read_table(_shard(parts, block, fmt), schema=PARQUET_SCHEMA)
                held.append(table)
                rows += table.num_rows
                while rows >= group:
                    whole = pa.concat_tables(held).combine_chunks()
                    out.write_table(whole.slice(0, group))
                    held, rows = [whole.slice(group)], rows - group
            if rows:
                out.write_table(pa.concat_tables(held).combine_chunks())
    os.replace(tmp, path)


# ---- verification ---------------------------------------------------------------------------------
class _VerifierActor:
    """One per CPU; its process keeps the code sandbox's worker and the SQL worker warm between calls."""

    def __init__(self, sandbox_workers: int) -> None:
        # Read when this process first starts its code sandbox: as many workers as CPUs the actor reserved,
        # not one per core of its node.
        os.environ["TASKFORGE_SANDBOX_WORKERS"] = str(sandbox_workers)
        self.tasks: dict[str, Task] = {}

    def ping(self) -> int:
        return os.getpid()

    def verify_many(self, task_jsons: dict[str, str], pairs: list[tuple[str, Any]]) -> list[Verdict]:
        for task_id, text in task_jsons.items():
            if task_id not in self.tasks:
                if len(self.tasks) >= 4096:
                    self.tasks.pop(next(iter(self.tasks)))
                self.tasks[task_id] = Task.from_json(text)
        return verify_many([self.tasks[t] for t, _ in pairs], [r for _, r in pairs])


class VerifierPool:
    """Ray actors that verify: `pool.verify_many(tasks, responses)` gives what `taskforge.api.verify_many`
    gives in this process, and `verify_many(tasks, responses, pool=pool)` sends the batch here.

    Every response to one task goes to the same actor (by a hash of the task id), so that actor's SQL
    database cache and verdict memo serve all of a GRPO group's samples.
    """

    def __init__(
        self,
        actors: int = 2,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_actor: float = 1,
    ) -> None:
        if actors < 1:
            raise ValueError(f"a pool needs at least one actor, got {actors}")
        connect(address, num_cpus)
        ray = _ray()
        cls = ray.remote(num_cpus=cpus_per_actor, max_restarts=2, max_task_retries=2)(_VerifierActor)
        self.actors = [cls.remote(max(1, round(cpus_per_actor))) for _ in range(actors)]
        self.pids = ray.get([a.ping.remote() for a in self.actors])

    def verify_many(self, tasks: Sequence[Task], responses: Sequence[Any]) -> list[Verdict]:
        if len(tasks) != len(responses):
            raise ValueError(f"{len(tasks)} tasks for {len(responses)} responses")
        ray = _ray()
        n = len(self.actors)
        shares: list[list[int]] = [[] for _ in range(n)]
        for i, task in enumerate(tasks):
            shares[int(hash_unit("actor", task.id) * n)].append(i)
        calls = []
        for actor, idx in zip(self.actors, shares, strict=True):
            if idx:
                texts = {tasks[i].id: tasks[i].to_json() for i in idx}
                calls.append(
                    (idx, actor.verify_many.remote(texts, [(tasks[i].id, responses[i]) for i in idx]))
                )
        out: list[Verdict | None] = [None] * len(tasks)
        for idx, ref in calls:
            for i, verdict in zip(idx, ray.get(ref), strict=True):
                out[i] = verdict
        return out  # type: ignore[return-value]

    def close(self) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
