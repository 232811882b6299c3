import json
import os
import signal
import subprocess
import sys
import time

import pytest

import taskforge
from taskforge.io import DatasetError, DatasetSpec, read_tasks, write_dataset


def _lines(path):
    return path.read_text().splitlines()


def test_jsonl_and_parquet_hold_the_same_tasks(tmp_path):
    spec = DatasetSpec(n=300, mix={"arithmetic": 1, "sat": 1}, level=2, seed=5)
    write_dataset(spec, tmp_path / "a.jsonl")
    write_dataset(spec, tmp_path / "a.parquet")
    from_jsonl = [t.to_json() for t in read_tasks(tmp_path / "a.jsonl")]
    from_parquet = [t.to_json() for t in read_tasks(tmp_path / "a.parquet")]
    assert from_jsonl == from_parquet == _lines(tmp_path / "a.jsonl")
    assert [json.loads(x)["index"] for x in from_jsonl] == list(range(300))
    assert {json.loads(x)["family"] for x in from_jsonl} == {"arithmetic", "sat"}
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.parts"))


def test_workers_give_the_same_bytes(tmp_path):
    spec = DatasetSpec(n=1000, family="arithmetic", level=4, seed=2)
    write_dataset(spec, tmp_path / "one.jsonl", workers=1)
    write_dataset(spec, tmp_path / "two.jsonl", workers=2)
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_dataset_matches_the_python_api(tmp_path):
    write_dataset(DatasetSpec(n=50, family="arithmetic", level=3, seed=9, split="val"), tmp_path / "v.jsonl")
    api = [t.to_json() for t in taskforge.generate("arithmetic", 50, level=3, seed=9, split="val")]
    assert _lines(tmp_path / "v.jsonl") == api


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_kill_then_resume_completes_without_duplicates(tmp_path, suffix, monkeypatch):
    import taskforge.io as tio

    monkeypatch.setattr(tio, "PARQUET_PART_ROWS", 500)
    n = 6000
    spec = DatasetSpec(n=n, family="arithmetic", level=8, seed=1)
    reference = tmp_path / f"ref{suffix}"
    write_dataset(spec, reference)

    out = tmp_path / f"out{suffix}"
    partial = out.with_name(out.name + (".partial" if suffix == ".jsonl" else ".parts"))
    code = (
        "import sys, taskforge.io as t; t.PARQUET_PART_ROWS = 500; t.CHUNK = 50\n"
        "import time; orig = t._render_chunk\n"
        "def slow(a):\n    time.sleep(0.01); return orig(a)\n"
        "t._render_chunk = slow\n"
        f"t.write_dataset(t.DatasetSpec(n={n}, family='arithmetic', level=8, seed=1), sys.argv[1])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)])
    deadline = time.time() + 60
    while time.time() < deadline:
        if suffix == ".jsonl" and partial.exists() and partial.stat().st_size > 200_000:
            break
        if suffix == ".parquet" and partial.exists() and len(list(partial.glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the final name must not hold a partial file"
    assert partial.exists()
    if suffix == ".jsonl":
        with open(partial, "ab") as fh:  # a torn last line, as a kill mid-write leaves
            fh.write(b'{"id": "torn')

    generated = write_dataset(spec, out, resume=True)
    assert 0 < generated < n
    got = [t.to_json() for t in read_tasks(out)]
    want = [t.to_json() for t in read_tasks(reference)]
    assert got == want
    assert not partial.exists()


def test_resume_refuses_different_settings(tmp_path):
    out = tmp_path / "x.jsonl"
    spec = DatasetSpec(n=100, family="arithmetic", level=1)
    write_dataset(spec, out)
    (tmp_path / "x.jsonl.partial").write_text(out.read_text())
    (tmp_path / "x.jsonl.spec.json").write_text(json.dumps(spec.to_dict()))
    with pytest.raises(DatasetError, match="different settings"):
        write_dataset(DatasetSpec(n=100, family="arithmetic", level=2), out, resume=True)


def test_resume_of_a_complete_file_says_so(tmp_path):
    out = tmp_path / "done.jsonl"
    spec = DatasetSpec(n=10, family="arithmetic")
    write_dataset(spec, out)
    with pytest.raises(DatasetError, match="already complete"):
        write_dataset(spec, out, resume=True)


def test_bad_requests_are_clear(tmp_path):
    with pytest.raises(DatasetError, match=r"\.jsonl or \.parquet"):
        write_dataset(DatasetSpec(n=1, family="arithmetic"), tmp_path / "x.csv")
    with pytest.raises(KeyError, match="valid"):
        write_dataset(DatasetSpec(n=1, family="nope"), tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.jsonl.partial").exists()
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\nnot json\n')
    with pytest.raises(DatasetError, match="bad.jsonl:1"):
        list(read_tasks(tmp_path / "bad.jsonl"))
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(DatasetError, match="not a readable Parquet"):
        list(read_tasks(tmp_path / "bad.parquet"))
