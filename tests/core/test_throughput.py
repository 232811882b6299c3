"""The throughput benchmark runs end to end (a tiny budget; its speed goals are printed, never asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def _load():
    spec = importlib.util.spec_from_file_location("throughput_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its pool workers pickle functions by module name
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_and_saves_every_figure(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "figures.json"
    args = ["--families", "arithmetic", "--budget", "0.01", "--reps", "1", "--memory-rows", "300,3000"]
    report = bench.main([*args, "--json", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))

    cases = report["cases"]
    assert {c["family"] for c in cases} == {"arithmetic"} and len(cases) >= 3
    for c in cases:
        assert c["generate"]["cpu"] > 0 and c["verify"]["cpu"] > 0
        assert c["jsonl"]["1"]["wall"] > 0 and c["jsonl"]["2"]["wall"] > 0 and c["verify_pool"]["wall"] > 0
        # The pool's workers are charged: CPU time of all processes, not only of the idle parent.
        assert c["jsonl"]["2"]["cpu"] < 10 * c["jsonl"]["1"]["cpu"]
        assert c["case"] in printed
        # Gold responses pass and corrupted ones fail: half of the alternating responses pass.
        passed, total = map(int, c["gold_and_wrong_passed"].split("/"))
        assert passed == (total + 1) // 2
    assert all(c["target"] == bench.MUL_TARGET for c in cases if c["case"].startswith("mul"))

    assert [m["rows"] for m in report["memory"]] == [300, 3000]
    assert all(m["writer_peak_rss_mib"] > 0 for m in report["memory"])
    assert "Peak RSS" in printed


def test_reasoning_gym_comparison_is_at_matched_digits():
    pytest.importorskip("reasoning_gym")
    bench = _load()
    case = next(c for c in bench.cases_for("arithmetic") if c.resolved["digits"] == 4)
    row = bench.compare_reasoning_gym(case, budget=0.01, reps=1)
    assert row["digits"] == 4
    assert row["generate_ratio"] > 0 and row["verify_ratio"] > 0 and row["item_path_ratio"] > 0
    # A sum is not a two-factor product: nothing to compare it with.
    sum_case = next(c for c in bench.cases_for("arithmetic") if c.resolved["op"] == "sum")
    assert bench.compare_reasoning_gym(sum_case, budget=0.01, reps=1) is None


def test_cpu_of_a_live_child_process_is_counted():
    # A family that verifies in a worker process must be charged for the worker's CPU time.
    bench = _load()
    busy = "import time\nwhile time.process_time() < 0.3: pass\ntime.sleep(30)"
    before = bench.others_cpu()
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        deadline = time.monotonic() + 20
        while bench.others_cpu() - before < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None  # still alive: its time came from /proc, not from a reaped child
        assert bench.others_cpu() - before >= 0.25
    finally:
        child.kill()
        child.wait()
