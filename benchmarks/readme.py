"""README figures that cannot go stale: benchmark tables live in `benchmarks/results/NAME.md`, and the
README shows them between markers, spliced by this script, never typed by hand.

    python benchmarks/readme.py record NAME -- CMD...   # run a benchmark, save its stdout as results/NAME.md
    python benchmarks/readme.py splice                  # copy every results/NAME.md into the README (make bench-readme)
    python benchmarks/readme.py check                   # exit 1 when a marked README table differs from its file

In the README a table is a marked section; any NAME works, as long as `benchmarks/results/NAME.md` exists:

    <!-- bench:NAME -->
    (the content of benchmarks/results/NAME.md, written by `splice`)
    <!-- /bench:NAME -->

`record` heads the file with the machine, the load average before and after, the date and the command,
so every table in the README says where and when it was measured. `tests/core/test_bench_readme.py`
(in the CI suite) fails when the README and the committed result files disagree: rerun a benchmark,
commit its results file and `make bench-readme` together.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
_NAME = r"[A-Za-z0-9_.-]+"
# A marker is a line of its own (a marker quoted inside a sentence, as in this project's README, is text).
_SECTION = re.compile(
    rf"^<!-- bench:(?P<name>{_NAME}) -->\n(?P<body>.*?)^<!-- /bench:(?P=name) -->$", re.S | re.M
)
_HEADING = re.compile(r"^#+ +(.*?) *$", re.M)
_MARK = re.compile(rf"^<!-- (?P<close>/?)bench:(?P<name>{_NAME}) -->$", re.M)


class MarkerError(ValueError):
    """A README marker without its partner, or naming a results file that does not exist."""


def machine() -> str:
    """CPU model, logical CPUs, OS and Python: what a reader needs to compare figures."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    py = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}, {py}"


def provenance(
    load_before: tuple[float, ...], load_after: tuple[float, ...], command: str, note: str = ""
) -> str:
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"_Measured {date} on {machine()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
        f"after (1-minute). Command: `{command}`{note}._"
    )


def record(name: str, command: list[str], results: Path = RESULTS, start: str | None = None) -> Path:
    """Run a benchmark command, echo its stdout, and save it, headed by its provenance, as results/NAME.md;
    with `start`, from the first line that begins with it (libraries' own logs before it are dropped)."""
    if not re.fullmatch(_NAME, name):
        raise MarkerError(f"a results name is letters, digits, '_', '.', '-'; got {name!r}")
    load_before = os.getloadavg()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)
    shown = " ".join(shlex.quote(c) for c in command).replace(sys.executable, "python")
    note = "" if start is None else f" (stdout from its first line beginning with `{start}`)"
    if start is not None:
        first = next((i for i, line in enumerate(lines) if line.startswith(start)), len(lines))
        lines = lines[first:]
    body = "".join(lines).strip("\n")
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.md"
    path.write_text(provenance(load_before, os.getloadavg(), shown, note) + "\n\n" + body + "\n")
    return path


def sections(text: str) -> list[str]:
    """The names of the marked sections of `text`, in order; MarkerError when a marker has no partner."""
    names, open_name = [], None
    for m in _MARK.finditer(text):
        name, closing = m["name"], bool(m["close"])
        if not closing and open_name is None:
            open_name = name
        elif closing and name == open_name:
            names.append(name)
            open_name = None
        else:
            where = text.count("\n", 0, m.start()) + 1
            raise MarkerError(f"line {where}: {m[0]} does not close <!-- bench:{open_name} -->")
    if open_name is not None:
        raise MarkerError(f"<!-- bench:{open_name} --> is never closed by <!-- /bench:{open_name} -->")
    return names


def splice(text: str, results: Path = RESULTS) -> str:
    """`text` with every marked section replaced by its results file."""
    for name in sections(text):
        if not (results / f"{name}.md").is_file():
            raise MarkerError(f"the README marks a table {name!r} but {results / name}.md does not exist")

    def body(m: re.Match[str]) -> str:
        # The README owns its heading structure: a results file's headings show as bold lines.
        content = _HEADING.sub(r"**\1**", (results / f"{m['name']}.md").read_text().strip("\n"))
        return f"<!-- bench:{m['name']} -->\n{content}\n<!-- /bench:{m['name']} -->"

    return _SECTION.sub(body, text)


def stale(text: str, results: Path = RESULTS) -> list[str]:
    """The marked sections of `text` whose content differs from their results file."""
    fresh = dict(_bodies(splice(text, results)))
    return [name for name, content in _bodies(text) if fresh[name] != content]


def _bodies(text: str) -> list[tuple[str, str]]:
    return [(m["name"], m["body"]) for m in _SECTION.finditer(text)]


def unmarked(text: str, results: Path = RESULTS) -> list[str]:
    """Results files the README does not show (not an error: some results are supplementary)."""
    shown = set(sections(text))
    return sorted(p.stem for p in results.glob("*.md") if p.stem not in shown)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="run a benchmark and save its stdout as results/NAME.md")
    rec.add_argument("name")
    rec.add_argument("--start", help="keep stdout from the first line beginning with this text")
    rec.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    for cmd in ("splice", "check"):
        p = sub.add_parser(cmd)
        p.add_argument("--readme", type=Path, default=README)
        p.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "record":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                ap.error("record NAME -- COMMAND: the command is missing")
            path = record(args.name, command, start=args.start)
            print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
            return 0
        text = args.readme.read_text()
        if args.cmd == "check":
            bad = stale(text, args.results)
            for name in bad:
                print(f"README table {name!r} differs from {args.results / name}.md: run make bench-readme")
            return 1 if bad else 0
        new = splice(text, args.results)
        if new != text:
            args.readme.write_text(new)
        print(f"{args.readme.name}: {len(sections(new))} tables from {args.results}", file=sys.stderr)
        for name in unmarked(new, args.results):
            print(
                f"note: results/{name}.md has no <!-- bench:{name} --> marker in the README", file=sys.stderr
            )
        return 0
    except (MarkerError, OSError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
