"""Datasets on disk: JSONL and Parquet, written as a stream, atomically, and resumable.

A dataset is a plan (`DatasetSpec`: family or mixture, knobs, seed, split, n) whose item i is a pure
function of the plan and i. Writers append items in index order to a partial file next to the target
(`OUT.partial` for JSONL, `OUT.parts/` for Parquet) and rename into place only when complete, so the final
name never holds half a file. After a kill, `resume=True` keeps every complete row already written and
generates the rest: no duplicate, no missing index.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from taskforge.errors import DatasetError, OutputError, TaskforgeError
from taskforge.generator import Generator
from taskforge.registry import generator_class, get_generator
from taskforge.seeding import hash_unit
from taskforge.task import Task

JSON_COLUMNS = ("params", "check", "meta")  # heterogeneous across families: stored as JSON text in Parquet
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("family", pa.string()),
        ("version", pa.string()),
        ("params", pa.string()),
        ("difficulty", pa.float64()),
        ("seed", pa.int64()),
        ("split", pa.string()),
        ("index", pa.int64()),
        ("prompt", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("answer", pa.string()),
        ("check", pa.string()),
        ("meta", pa.string()),
    ]
)
PARQUET_PART_ROWS = 20_000
CHUNK = 256


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that determines a dataset's bytes. `mix` maps family -> weight (overrides `family`)."""

    n: int
    family: str | None = None
    mix: dict[str, float] = field(default_factory=dict)
    level: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    split: str = "train"
    unique: bool = False  # keep the first row of each task id (applied when the file completes)

    def validate(self) -> None:
        if self.n < 0:
            raise DatasetError(f"n must be >= 0, got {self.n}")
        if not self.mix and not self.family:
            raise DatasetError("name a family or a --mix")
        for fam, weight in self.mix.items():
            if not weight > 0:
                raise DatasetError(f"mix weight of {fam!r} must be > 0, got {weight}")
        for fam in self.families():
            cls = generator_class(fam)  # raises UnknownFamilyError naming the valid ones
            cls.resolve_params(self._level_for(cls), self.params if not self.mix else None)
        for fam in self.families() if self.n else ():
            # One item per family, so that a level with too few distinct problems for this split raises
            # its GenerationError here, before a file is opened, rather than after the first rows.
            self.sampler(fam)(0)

    def families(self) -> list[str]:
        return sorted(self.mix) if self.mix else [self.family or ""]

    def _level_for(self, cls: type) -> int | None:
        # In a mixture a level past a family's ladder means that family's hardest level.
        if self.level is None or not self.mix:
            return self.level
        return min(self.level, len(cls.levels) - 1)

    def family_of(self, index: int) -> str:
        if not self.mix:
            return self.family or ""
        names = self.families()
        total = sum(self.mix[f] for f in names)
        u = hash_unit("mix", self.seed, self.split, index) * total
        for name in names:
            u -= self.mix[name]
            if u < 0:
                return name
        return names[-1]

    def sampler(self, family: str) -> Callable[[int], Task]:
        """Item i of this dataset for items of `family`, with params and seed key prepared once."""
        gen, params = self._generator(family)
        return gen.sampler(params, self.seed, self.split)

    def sampler_many(self, family: str) -> Callable[[int, int], list[Task]]:
        """`block(start, n)`: items start..start+n-1 of this dataset, all of `family` (the batch path)."""
        gen, params = self._generator(family)
        return gen.sampler_many(params, self.seed, self.split)

    def _generator(self, family: str) -> tuple[Generator, dict[str, Any]]:
        gen = get_generator(family)
        return gen, gen.resolve_params(self._level_for(type(gen)), None if self.mix else self.params)

    def task(self, index: int) -> Task:
        return self.sampler(self.family_of(index))(index)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _render_chunk(args: tuple[DatasetSpec, int, int]) -> list[str]:
    spec, start, stop = args
    indices = range(start, stop)
    families = [spec.family_of(i) for i in indices] if spec.mix else [spec.family or ""] * len(indices)
    blocks: dict[str, Callable[[int, int], list[Task]]] = {}
    lines: list[str] = []
    i = 0
    while i < len(families):
        # A run of consecutive items of one family goes through the family's batch path at once.
        family, j = families[i], i + 1
        while j < len(families) and families[j] == family:
            j += 1
        block = blocks.get(family) or blocks.setdefault(family, spec.sampler_many(family))
        lines.extend(task.to_json() for task in block(start + i, j - i))
        i = j
    return lines


def iter_task_lines(
    spec: DatasetSpec, start: int = 0, workers: int = 1, chunk: int = CHUNK
) -> Iterator[list[str]]:
    """Chunks of JSON lines for items start..n-1, in index order, optionally from a process pool."""
    bounds = [(spec, s, min(s + chunk, spec.n)) for s in range(start, spec.n, chunk)]
    if workers <= 1:
        yield from map(_render_chunk, bounds)
        return
    # fork keeps startup cheap on Linux; imap keeps order, and a bounded number of chunks are in flight.
    # Workers ignore SIGINT: a terminal's Ctrl-C reaches the whole process group, and a worker that died
    # of it mid-task left the pool hanging. The parent alone handles it and terminates the pool on exit.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        yield from pool.imap(_render_chunk, bounds, chunksize=1)


# ---- writing ------------------------------------------------------------------------------------
def check_writable(path: str | Path, *, folder: bool = False) -> Path:
    """Fail now, with one line, if the output file (or folder) `path` cannot be written: a user should not
    learn it after minutes of sampling. Creates missing parent folders, as writing would."""
    path = Path(path)
    where = path if folder else path.parent
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"cannot write into {path}: it is a file, not a folder")
    if not folder and path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".spec.json")


def _check_resume_spec(path: Path, spec: DatasetSpec) -> None:
    side = _sidecar(path)
    if side.exists():
        old = json.loads(side.read_text())
        if old != json.loads(json.dumps(spec.to_dict())):
            raise DatasetError(f"cannot resume {path}: it was started with different settings {old}")


class DatasetComplete(DatasetError):
    """`resume` asked for a file that is already complete: there is nothing to do."""


def write_dataset(
    spec: DatasetSpec,
    path: str | Path,
    *,
    workers: int = 1,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the dataset; returns the number of rows generated by this call (not counting resumed ones).

    A `TaskforgeError` raised while generating (too few distinct problems) removes the partial files:
    resuming would only meet it again. An interrupt (KeyboardInterrupt) keeps every complete row and the
    settings next to them, for `resume=True`.
    """
    spec.validate()
    path = Path(path)
    if path.suffix not in (".jsonl", ".parquet"):
        raise DatasetError(f"output must end in .jsonl or .parquet, got {path.name!r}")
    check_writable(path)
    writer = _JsonlWriter(path) if path.suffix == ".jsonl" else _ParquetWriter(path)
    if resume and not writer.in_progress.exists() and path.exists():
        raise DatasetComplete(f"{path} is already complete; nothing to resume")
    if resume and writer.in_progress.exists():
        _check_resume_spec(path, spec)
        done = writer.recover()
        if done > spec.n:
            raise DatasetError(f"cannot resume {path}: it holds {done} rows, more than n={spec.n}")
    else:
        writer.reset()
        done = 0
    _sidecar(path).write_text(json.dumps(spec.to_dict()))
    if progress:
        progress(done)
    written = 0
    chunks = iter_task_lines(spec, done, workers)
    try:
        for lines in chunks:
            writer.append(lines)
            written += len(lines)
            if progress:
                progress(len(lines))
    except KeyboardInterrupt:
        chunks.close()  # stops the worker pool now, not when the generator is collected
        writer.suspend()
        raise
    except TaskforgeError:
        chunks.close()
        writer.discard()
        _sidecar(path).unlink(missing_ok=True)
        raise
    writer.finish(spec.unique)
    _sidecar(path).unlink(missing_ok=True)
    return written


def rows_kept(path: str | Path) -> int:
    """Complete rows an interrupted `write_dataset` left for `resume` (0 when there is no partial file)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    parts = path.with_name(path.name + ".parts")
    if partial.exists():
        with open(partial, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return sum(pq.ParquetFile(p).metadata.num_rows for p in parts.glob("part-*.parquet"))


class _JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path, self.partial = path, path.with_name(path.name + ".partial")
        self.in_progress = self.partial
        self.fh: Any = None

    def reset(self) -> None:
        self.fh = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115 (closed in finish)

    def recover(self) -> int:
        with open(self.partial, "rb+") as fh:
            data = fh.read()
            keep = data.rfind(b"\n") + 1  # a torn last line is dropped and regenerated
            fh.truncate(keep)
        count = data.count(b"\n", 0, keep)
        if count:
            last = json.loads(data[data.rfind(b"\n", 0, keep - 1) + 1 : keep])
            if last.get("index") != count - 1:
                raise DatasetError(f"cannot resume {self.partial}: rows are not items 0..{count - 1}")
        self.fh = open(self.partial, "a", encoding="utf-8")  # noqa: SIM115
        return count

    def append(self, lines: list[str]) -> None:
        self.fh.write("\n".join(lines) + "\n")
        self.fh.flush()

    def suspend(self) -> None:
        self.fh.close()

    def discard(self) -> None:
        self.fh.close()
        self.partial.unlink(missing_ok=True)

    def finish(self, unique: bool = False) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        if unique:  # rows 0..n-1 stay in the partial file until the filtered copy is complete: resumable
            tmp = self.partial.with_name(self.partial.name + ".unique")
            seen: set[str] = set()
            with open(self.partial, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
                dst.writelines(line for line in src if _first(json.loads(line)["id"], seen))
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, self.partial)
        os.replace(self.partial, self.path)


def _first(task_id: str, seen: set[str]) -> bool:
    """True the first time `task_id` is met (a level with few distinct problems repeats them)."""
    if task_id in seen:
        return False
    seen.add(task_id)
    return True


def distinct_estimate(drawn: int, distinct: int) -> int | None:
    """How many distinct tasks a stream holds, from `distinct` ids among `drawn` draws: the N whose
    expected count of distinct ids, N (1 - (1 - 1/N)^drawn), is `distinct` (draws taken as uniform).
    None when no id repeated (the stream holds at least `drawn`)."""
    if distinct >= drawn or distinct <= 0:
        return None
    low, high = distinct, max(distinct, 1) * 10**6
    while low < high:  # the expectation grows with N: bisect on integers
        mid = (low + high) // 2
        if mid * (1 - (1 - 1 / mid) ** drawn) < distinct:
            low = mid + 1
        else:
            high = mid
    return low


def task_to_row(task: dict[str, Any]) -> dict[str, Any]:
    row = dict(task)
    for col in JSON_COLUMNS:
        row[col] = json.dumps(row[col], separators=(",", ":"), ensure_ascii=False)
    return row


def row_to_task(row: dict[str, Any]) -> Task:
    row = dict(row)
    for col in JSON_COLUMNS:
        if isinstance(row.get(col), str):
            row[col] = json.loads(row[col])
    row["messages"] = [dict(m) for m in row["messages"]]
    return Task.from_dict(row)


class _ParquetWriter:
    """Complete parts of PARQUET_PART_ROWS rows in OUT.parts/, merged into OUT when all are there."""

    def __init__(self, path: Path) -> None:
        self.path, self.parts = path, path.with_name(path.name + ".parts")
        self.in_progress = self.parts
        self.buffer: list[dict[str, Any]] = []
        self.count = 0

    def reset(self) -> None:
        shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir()

    def recover(self) -> int:
        for stray in self.parts.glob("*.tmp"):
            stray.unlink()
        self.count = sum(
            pq.ParquetFile(p).metadata.num_rows for p in sorted(self.parts.glob("part-*.parquet"))
        )
        return self.count

    def append(self, lines: list[str]) -> None:
        self.buffer.extend(task_to_row(json.loads(line)) for line in lines)
        if len(self.buffer) >= PARQUET_PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        final = self.parts / f"part-{self.count:012d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist(self.buffer, schema=PARQUET_SCHEMA), tmp)
        os.replace(tmp, final)
        self.count += len(self.buffer)
        self.buffer = []

    def suspend(self) -> None:
        self._flush()  # the buffered rows become one more (shorter) complete part

    def discard(self) -> None:
        shutil.rmtree(self.parts, ignore_errors=True)

    def finish(self, unique: bool = False) -> None:
        self._flush()
        tmp = self.path.with_name(self.path.name + ".tmp")
        seen: set[str] = set()
        with pq.ParquetWriter(tmp, PARQUET_SCHEMA) as out:
            for part in sorted(self.parts.glob("part-*.parquet")):
                table = pq.read_table(part, schema=PARQUET_SCHEMA)
                if unique:
                    table = table.filter(pa.array([_first(i, seen) for i in table.column("id").to_pylist()]))
                out.write_table(table)
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


# ---- reading ------------------------------------------------------------------------------------
def read_tasks(path: str | Path) -> Iterator[Task]:
    """Stream Tasks from a JSONL or Parquet file written by taskforge (or any file with the same fields)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such file: {path}")
    if path.suffix == ".parquet":
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:
            raise DatasetError(f"{path} is not a readable Parquet file: {exc}") from None
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield row_to_task(row)
        return
    for lineno, line in enumerate(read_jsonl(path), 1):
        try:
            yield Task.from_dict(line)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}:{lineno} is not a task record: {exc}") from None


# The files a tasks path names: one of them, or a folder holding them (searched below, in name order).
TASK_FILE_SUFFIXES = (".jsonl", ".parquet")


def task_files(path: str | Path) -> list[Path]:
    """The task files of a path: the file itself, or a folder's `.jsonl`/`.parquet` files at any depth in
    name order (a benchmark exported one file per level); [] for a folder without any."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(f for f in path.rglob("*") if f.suffix in TASK_FILE_SUFFIXES and f.is_file())


def iter_task_file(path: str | Path) -> Iterator[Task]:
    """The tasks of one file: Parquet as `taskforge generate` writes it, or JSONL rows of taskforge tasks
    or Saturn records; DatasetError naming the line of the first row that is neither."""
    # Saturn's records are the sat family's format: imported here, not at module level, so that reading
    # our own files never loads a family.
    from taskforge.generators.sat.records import task_from_record

    path = Path(path)
    if path.suffix == ".parquet":
        yield from read_tasks(path)
        return
    for lineno, row in enumerate(read_jsonl(path), 1):
        try:
            yield task_from_record(row)
        except (DatasetError, TypeError, ValueError, KeyError) as exc:
            raise DatasetError(f"{path}:{lineno} is not a task record: {exc}") from None


def load_tasks(tasks: Any) -> list[Task]:
    """Tasks from a list (Tasks or dicts), a `datasets.Dataset` of task rows, a tasks file (JSONL or
    Parquet; taskforge's tasks or Saturn's records), or a folder of such files (see `task_files`)."""
    if isinstance(tasks, (str, Path)):
        return [t for f in task_files(tasks) for t in iter_task_file(f)]
    return [row if isinstance(row, Task) else Task.from_dict(row) for row in tasks]


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such file: {path}")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno} is not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise DatasetError(f"{path}:{lineno} is not a JSON object")
            yield obj


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    count = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
