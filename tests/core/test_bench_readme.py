"""README figures come from benchmarks/results/: each marked table equals its committed results file.

This checks that the README is in sync with the result files, not that the figures are good: rerunning a
benchmark and `make bench-readme` keeps it green.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("bench_readme", ROOT / "benchmarks" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_committed_results():
    bench = _load()
    text = (ROOT / "README.md").read_text()
    names = bench.sections(text)
    assert "throughput" in names, names
    assert bench.stale(text) == [], "README tables differ from benchmarks/results/: run make bench-readme"
    for name in names:
        # Every table says where and when it was measured.
        assert "Measured" in (ROOT / "benchmarks" / "results" / f"{name}.md").read_text().split("\n")[0], name


def test_splice_replaces_only_marked_sections(tmp_path):
    bench = _load()
    (tmp_path / "speed.md").write_text("_Measured today._\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "other.md").write_text("# Other results\n\n| c |\n|---|\n| 3 |\n")
    readme = (
        "# Title\n\n| hand | typed |\n|---|---|\n\n<!-- bench:speed -->\nold figures\n<!-- /bench:speed -->\n"
        "text between, quoting `<!-- bench:NAME -->` in a sentence\n<!-- bench:other -->\n<!-- /bench:other -->\nend\n"
    )
    assert bench.stale(readme, tmp_path) == ["speed", "other"]
    new = bench.splice(readme, tmp_path)
    assert "old figures" not in new and "| 1 | 2 |" in new and "| 3 |" in new
    assert "\n**Other results**\n" in new and "# Other" not in new  # the README keeps its own headings
    assert (
        new.startswith("# Title\n\n| hand | typed |")
        and "text between, quoting `<!-- bench:NAME -->` in a sentence\n" in new
        and new.endswith("end\n")
    )
    assert bench.stale(new, tmp_path) == [] and bench.splice(new, tmp_path) == new
    (tmp_path / "speed.md").write_text("| a | b |\n|---|---|\n| 9 | 9 |\n")
    assert bench.stale(new, tmp_path) == ["speed"]
    assert bench.unmarked("<!-- bench:speed -->\n<!-- /bench:speed -->\n", tmp_path) == ["other"]


@pytest.mark.parametrize(
    "readme, message",
    [
        ("<!-- bench:missing -->\n<!-- /bench:missing -->\n", "does not exist"),
        ("<!-- bench:a -->\nx\n", "never closed"),
        ("<!-- bench:a -->\n<!-- /bench:b -->\n", "does not close"),
        ("<!-- bench:a -->\n<!-- bench:b -->\n<!-- /bench:b -->\n<!-- /bench:a -->\n", "does not close"),
    ],
)
def test_bad_markers_are_refused(tmp_path, readme, message):
    bench = _load()
    (tmp_path / "a.md").write_text("x\n")
    (tmp_path / "b.md").write_text("y\n")
    with pytest.raises(bench.MarkerError, match=message):
        bench.splice(readme, tmp_path)


def test_record_writes_stdout_with_provenance(tmp_path, capsys):
    bench = _load()
    path = bench.record(
        "demo", [sys.executable, "-c", "print('| x |'); print('|---|'); print('| 1 |')"], tmp_path
    )
    assert path == tmp_path / "demo.md"
    head, body = path.read_text().split("\n\n", 1)
    assert head.startswith("_Measured ") and "load average" in head and "UTC" in head and "CPUs" in head
    assert body == "| x |\n|---|\n| 1 |\n"
    assert "| 1 |" in capsys.readouterr().out  # echoed while it runs
    with pytest.raises(bench.MarkerError):
        bench.record("../escape", [sys.executable, "-c", "pass"], tmp_path)
    # --start drops what a library printed before the benchmark's own output.
    noisy = "print({'loss': 0}); print('batch 64'); print('| t |')"
    path = bench.record("noisy", [sys.executable, "-c", noisy], tmp_path, start="batch ")
    assert path.read_text().split("\n\n", 1)[1] == "batch 64\n| t |\n"


def test_cli_check_and_splice(tmp_path):
    bench = _load()
    (tmp_path / "t.md").write_text("| new |\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:t -->\n| old |\n<!-- /bench:t -->\n")
    args = ["--readme", str(readme), "--results", str(tmp_path)]
    assert bench.main(["check", *args]) == 1
    assert bench.main(["splice", *args]) == 0
    assert readme.read_text() == "<!-- bench:t -->\n| new |\n<!-- /bench:t -->\n"
    assert bench.main(["check", *args]) == 0
    readme.write_text("<!-- bench:gone -->\n<!-- /bench:gone -->\n")
    assert bench.main(["splice", *args]) == 2  # one clear line, no traceback
