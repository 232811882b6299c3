"""`generate --unique` (issue 10): a level with few distinct problems repeats them (arithmetic level 0
holds 81); --unique keeps the first row of each id, with the same bytes for any number of workers and
after a resume, and says how many distinct tasks the level holds."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

import taskforge.io as tio
from taskforge.cli.app import app
from taskforge.io import DatasetSpec, distinct_estimate, read_tasks, write_dataset


def _ids(path) -> list[str]:
    return [t.id for t in read_tasks(path)]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_unique_keeps_the_first_row_of_each_id(tmp_path, suffix, monkeypatch) -> None:
    monkeypatch.setattr(tio, "PARQUET_PART_ROWS", 100)
    plain = DatasetSpec(n=400, family="arithmetic", level=0, seed=1)
    write_dataset(plain, tmp_path / f"all{suffix}")
    rows = [t.to_json() for t in read_tasks(tmp_path / f"all{suffix}")]
    assert len({json.loads(r)["id"] for r in rows}) < 100  # the level repeats: the premise of the option
    first, seen = [], set()
    for r in rows:
        if json.loads(r)["id"] not in seen:
            seen.add(json.loads(r)["id"])
            first.append(r)

    spec = DatasetSpec(n=400, family="arithmetic", level=0, seed=1, unique=True)
    write_dataset(spec, tmp_path / f"one{suffix}", workers=1)
    write_dataset(spec, tmp_path / f"two{suffix}", workers=2)
    assert [t.to_json() for t in read_tasks(tmp_path / f"one{suffix}")] == first
    assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"two{suffix}").read_bytes()
    assert _ids(tmp_path / f"two{suffix}") == _ids(tmp_path / f"one{suffix}")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_unique_survives_an_interrupt_and_resume(tmp_path, suffix, monkeypatch) -> None:
    monkeypatch.setattr(tio, "PARQUET_PART_ROWS", 50)
    monkeypatch.setattr(tio, "CHUNK", 50)
    spec = DatasetSpec(n=300, family="arithmetic", level=0, seed=2, unique=True)
    write_dataset(spec, tmp_path / f"ref{suffix}")
    out = tmp_path / f"out{suffix}"
    count = []

    def interrupt(k: int) -> None:
        count.append(k)
        if sum(count) >= 150:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(spec, out, progress=interrupt)
    assert not out.exists()
    with pytest.raises(tio.DatasetError):  # the same file cannot be resumed without --unique
        write_dataset(DatasetSpec(n=300, family="arithmetic", level=0, seed=2), out, resume=True)
    assert 0 < write_dataset(spec, out, resume=True) < 300
    assert [t.to_json() for t in read_tasks(out)] == [
        t.to_json() for t in read_tasks(tmp_path / f"ref{suffix}")
    ]
    assert len(set(_ids(out))) == len(_ids(out))


def test_distinct_estimate_recovers_the_size_of_a_small_level() -> None:
    rng = random.Random(0)
    draws = [rng.randrange(81) for _ in range(200)]
    estimate = distinct_estimate(len(draws), len(set(draws)))
    assert estimate is not None and 70 <= estimate <= 95
    assert distinct_estimate(50, 50) is None


def test_cli_reports_distinct_tasks(tmp_path) -> None:
    out = tmp_path / "u.jsonl"
    result = CliRunner().invoke(
        app,
        ["generate", "arithmetic", "-n", "300", "--level", "0", "--seed", "1", "-o", str(out), "--unique"],
    )
    assert result.exit_code == 0, result.output
    kept = len(_ids(out))
    assert kept == len(set(_ids(out))) < 300
    assert f"{kept} distinct tasks of 300 drawn" in " ".join(result.output.split())
    assert "the level holds about" in " ".join(result.output.split())
