"""One error model: every deliberate error is a TaskforgeError, and the CLI prints one line, exits 2 and
leaves no file behind; Ctrl-C keeps complete rows for --resume."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import taskforge.errors as errors
from taskforge.cli import app
from taskforge.io import DatasetSpec, iter_task_lines

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_every_error_is_a_taskforge_error_with_its_old_builtin_base():
    builtin = {
        errors.KnobError: ValueError, errors.UnknownFamilyError: KeyError, errors.DatasetError: ValueError,
        errors.ConfigError: ValueError, errors.SaturnFormatError: ValueError, errors.GenerationError: RuntimeError,
        errors.MissingExtraError: ImportError, errors.SandboxUnavailableError: RuntimeError,
        errors.OutputError: OSError, errors.BackendError: RuntimeError, errors.PluginError: ValueError,
    }  # fmt: skip
    assert set(builtin) | {errors.TaskforgeError} == {getattr(errors, n) for n in errors.__all__}
    for cls, base in builtin.items():
        assert issubclass(cls, errors.TaskforgeError) and issubclass(cls, base), cls
        assert cls.__doc__ and "\n" not in cls.__doc__.strip(), f"{cls.__name__}: one docstring line"
    assert str(errors.UnknownFamilyError("unknown family 'x'")) == "unknown family 'x'"  # not KeyError's repr
    from taskforge.sandbox import SandboxUnavailable
    from taskforge.trainers.config import ConfigError

    assert (
        issubclass(SandboxUnavailable, errors.SandboxUnavailableError) and ConfigError is errors.ConfigError
    )


@pytest.mark.parametrize(
    "params, message",
    [(["n=1", "k=1", "l=1"], "too few distinct problems"), (["k=30", "format=letters"], "letters")],
)
def test_knob_conflicts_fail_before_any_file_is_opened(tmp_path, params, message):
    out = tmp_path / "x.jsonl"
    args = [a for p in params for a in ("-p", p)]
    line = one_error_line(run("generate", "sat", "-n", 5, *args, "--split", "test", "-o", out))
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_a_generation_error_mid_run_removes_the_partial_files(tmp_path):
    # Allowed by check_params (at most 4 carries at 1x1 digits), but no 1x1 product has 4.
    out = tmp_path / "x.jsonl"
    line = one_error_line(
        run(
            "generate",
            "arithmetic",
            "-n",
            3,
            "-p",
            "digits=1",
            "-p",
            "digits_b=1",
            "-p",
            "min_carries=4",
            "-o",
            out,
        )
    )
    assert "carries" in line
    assert list(tmp_path.iterdir()) == []


def test_brackets_in_messages_are_printed_as_written(tmp_path, monkeypatch):
    out = tmp_path / "runs" / "x[train].jsonl"
    res = run("generate", "arithmetic", "-n", 2, "-o", out)
    assert res.exit_code == 0 and f"wrote {out}" in res.output.replace("\n", "")
    line = one_error_line(run("verify", tmp_path / "y[train].jsonl", "--gold"))
    assert "y[train].jsonl" in line
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    line = one_error_line(run("tiny-model", tmp_path / "m"))
    assert "pip install 'taskforge[train]'" in line


def test_unwritable_outputs_fail_before_the_work(tmp_path):
    tasks = tmp_path / "t.jsonl"
    assert run("generate", "arithmetic", "-n", 3, "-o", tasks).exit_code == 0
    assert "/proc/x.jsonl" in one_error_line(run("verify", tasks, "--gold", "-o", "/proc/x.jsonl"))
    started = time.perf_counter()
    res = run("eval", "--model", "m", "--tasks", tasks, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
              "-o", "/proc/out")  # fmt: skip
    assert "/proc/out" in one_error_line(res) and time.perf_counter() - started < 5


def test_resume_of_a_complete_file_and_verify_of_an_empty_one_say_so(tmp_path):
    out = tmp_path / "x.jsonl"
    assert run("generate", "arithmetic", "-n", 3, "-o", out).exit_code == 0
    res = run("generate", "arithmetic", "-n", 3, "-o", out, "--resume")
    assert res.exit_code == 0 and "already complete" in res.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "no tasks" in one_error_line(run("verify", empty, "--gold"))


# ---- Ctrl-C ---------------------------------------------------------------------------------------
# The CLI in a child process, each chunk slowed down so that an interrupt lands mid-run.
SLOW_CLI = (
    "import sys, time, taskforge.io as t\n"
    "orig = t._render_chunk\n"
    "def slow(a):\n    time.sleep(0.2); return orig(a)\n"
    "t._render_chunk = slow\n"
    "from taskforge.cli import main\n"
    "sys.argv = ['taskforge', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.parametrize("to_group", [False, True], ids=["main-process", "process-group"])
def test_ctrl_c_stops_the_workers_keeps_rows_and_resume_gives_the_same_bytes(tmp_path, to_group):
    n = 20_000  # about 80 slowed chunks: several seconds of work, so the interrupt lands mid-run under any load
    out = tmp_path / "x.jsonl"
    partial = tmp_path / "x.jsonl.partial"
    args = ["generate", "arithmetic", "-n", str(n), "-p", "digits=8", "-o", str(out), "-w", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal gives a foreground job
        # A shell's background job (`make test &`, nohup) starts with SIGINT ignored, and Python keeps an
        # inherited SIG_IGN: give the CLI the default handling a terminal's foreground job has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 0):
        time.sleep(0.02)
    if to_group:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    else:
        os.kill(proc.pid, signal.SIGINT)  # what `timeout -s INT` does
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "--resume" in stdout.splitlines()[-1]
    with pytest.raises(ProcessLookupError):  # no worker outlived the main process
        os.killpg(proc.pid, 0)
    kept = partial.read_bytes()
    assert 0 < kept.count(b"\n") < n and kept.endswith(b"\n")

    res = run(*args, "--resume")  # in this process: the resumed run needs no interrupt
    assert res.exit_code == 0, res.output
    spec = DatasetSpec(n=n, family="arithmetic", params={"digits": "8"})
    want = hashlib.sha256("".join(line + "\n" for lines in iter_task_lines(spec) for line in lines).encode())
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want.hexdigest()
    assert not partial.exists() and not Path(f"{out}.spec.json").exists()
