"""The sandbox pool: plain-data codec, ordering, limits, isolation modes, strictness, clean shutdown."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskforge.sandbox import (
    STRICT_ENV,
    PlainError,
    Sample,
    Sandbox,
    SandboxUnavailable,
    _plain,
    bubblewrap_available,
    default_sandbox,
    pool,
    same,
)

SQUARE = "def solve(x):\n    return x * x\n"
TESTS = [((3,), 9), ((-2,), 4), ((0,), 0)]
MODES = [
    pytest.param(
        "bubblewrap",
        marks=pytest.mark.skipif(
            not bubblewrap_available(), reason="bubblewrap (bwrap) is not installed or usable"
        ),
    ),
    "fallback",
]


@pytest.fixture(scope="module", params=MODES)
def box(request):
    with Sandbox(2, isolation=request.param) as b:
        yield b


# ---- plain data ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -(10**30),
        1.5,
        -0.0,
        math.inf,
        "",
        "é\n",
        [1, [2, "x"]],
        (1, (2,)),
        (),
        {"a": 1, 2: [3]},
        {1, 2, 3},
        frozenset({"a", "b"}),
        {(1, 2): {None: (True,)}},
        [float("nan")],
    ],  # fmt: skip
)
def test_plain_round_trip_keeps_exact_types(value):
    back = _plain.loads(_plain.dumps(value))
    assert same(back, value)
    assert type(back) is type(value)


def test_same_is_type_exact():
    assert not same(1, True) and not same(1, 1.0) and not same([1], (1,)) and not same({1}, frozenset({1}))
    assert not same({1: "a"}, {True: "a"}) and not same({1}, {True})
    assert same(0.1 + 0.2, 0.3, tol=1e-9) and not same(0.1 + 0.2, 0.3)
    assert same({"b": 1, "a": 2}, {"a": 2, "b": 1})


def test_encoder_refuses_what_is_not_plain():
    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    for bad in (Yes(1), object(), b"bytes", [1, {2, Yes(3)}], {"k": lambda: 0}):
        with pytest.raises(PlainError):
            _plain.encode(bad)
    deep: list = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(PlainError):
        _plain.encode(deep)


@pytest.mark.parametrize(
    "payload",
    [
        '{"x": [1]}',
        '{"t": 1}',
        '{"s": [[1]]}',
        '{"d": [[1]]}',
        "NaN",
        '{"f": "1.0"}',
        "[" * 5000 + "]" * 5000,
        "{",
        "",
        '{"t": [], "s": []}',
    ],  # fmt: skip
)
def test_decoder_is_strict(payload):
    with pytest.raises(PlainError):
        _plain.loads(payload)


def test_set_spelling_does_not_depend_on_hash_seed():
    code = (
        "from taskforge.sandbox._plain import dumps; print(dumps({'pear', 'fig', 'apple', 'kiwi', 'plum'}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": s},
            capture_output=True,
            text=True,
            check=True,
        ).stdout  # fmt: skip
        for s in ("1", "2", "3")
    }
    assert len(outs) == 1


# ---- the pool ------------------------------------------------------------------------------------------
def test_results_come_back_in_order_with_mixed_verdicts(box):
    samples = []
    for i in range(12):
        offset = i % 3  # 0: right, 1 and 2: wrong by that much
        samples.append(Sample(f"def solve(x):\n    return x * x + {offset}\n", "solve", TESTS))
    results = box.run(samples)
    assert [r.status for r in results] == ["pass", "fail", "fail"] * 4
    assert all(r.total == 3 for r in results)
    assert results[1].outcomes == ["wrong"] * 3


def test_fraction_of_tests_passed_is_reported(box):
    code = "def solve(x):\n    return x * x if x > 0 else -1\n"
    r = box.run([Sample(code, "solve", TESTS)])[0]
    assert (r.status, r.passed, r.total) == ("fail", 1, 3)


def test_per_sample_time_limit(box):
    slow = Sample(
        "import time\ndef solve(x):\n    time.sleep(0.6)\n    return x * x\n", "solve", [((2,), 4)], 0.2
    )
    quick = Sample(
        "import time\ndef solve(x):\n    time.sleep(0.6)\n    return x * x\n", "solve", [((2,), 4)], 5.0
    )
    started = time.monotonic()
    r_slow, r_quick = box.run([slow, quick])
    assert r_slow.status == "timeout" and r_quick.status == "pass"
    assert time.monotonic() - started < 5


def test_exceptions_and_non_plain_results_fail(box):
    raising = Sample("def solve(x):\n    raise ValueError('no')\n", "solve", TESTS)
    set_result = Sample("def solve(x):\n    return {x}\n", "solve", [((1,), {1})])
    bytes_result = Sample("def solve(x):\n    return b'x'\n", "solve", [((1,), "x")])
    missing = Sample(SQUARE, "other", TESTS)
    r = box.run([raising, set_result, bytes_result, missing])
    assert [x.status for x in r] == ["fail", "pass", "fail", "fail"]
    assert r[0].outcomes[0] == "exc:ValueError" and r[2].outcomes[0].startswith("bad:")
    assert r[3].detail.startswith("load error")


def test_arguments_are_fresh_per_test(box):
    # A solution mutating its argument must not change what the next test receives.
    code = "def solve(xs):\n    xs.append(0)\n    return len(xs)\n"
    r = box.run([Sample(code, "solve", [(([1, 2],), 3), (([1, 2],), 3)])])[0]
    assert r.status == "pass"


def test_threads_work_inside_the_child(box):
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def solve(x):\n    with ThreadPoolExecutor(4) as ex:\n        return sum(ex.map(lambda v: v * v, range(x)))\n"
    )
    assert box.run([Sample(code, "solve", [((10,), 285)])])[0].status == "pass"


def test_oversized_or_invalid_samples_are_rejected_without_running(box):
    r = box.run(
        [
            Sample("x" * 200_000, "solve", TESTS),
            Sample(SQUARE, "not an identifier", TESTS),
            Sample("\x00", "f"),
        ]
    )
    assert [x.status for x in r] == ["rejected"] * 3


def test_layers_report(box):
    layers = box.layers()
    assert layers["seccomp"] and layers["isolation"] in ("bubblewrap", "fallback")
    assert len(layers["workers"]) == 2


def test_strict_mode_refuses_without_bubblewrap(monkeypatch):
    monkeypatch.setattr(pool, "bubblewrap_available", lambda: False)
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        Sandbox(1, require_isolation=True)
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(SandboxUnavailable):
        Sandbox(1)


def test_fallback_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(pool, "bubblewrap_available", lambda: False)
    monkeypatch.setattr(pool, "_warned", False)
    monkeypatch.delenv(STRICT_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="taskforge.sandbox"):
        boxes = [Sandbox(1), Sandbox(1)]
    assert [b.isolation for b in boxes] == ["fallback", "fallback"]
    assert sum("bubblewrap is not available" in r.message for r in caplog.records) == 1
    for b in boxes:
        b.close()


@pytest.mark.skipif(not bubblewrap_available(), reason="bubblewrap (bwrap) is not installed or usable")
def test_bubblewrap_hides_the_host():
    code = (
        "import os\ndef solve(x):\n"
        "    return [os.getuid(), sorted(os.environ), os.path.exists(PROJECT), os.path.exists('/etc/passwd')]\n"
    )
    with Sandbox(1, isolation="bubblewrap") as b:
        code = code.replace("PROJECT", repr(str(Path(__file__).resolve().parents[2] / "pyproject.toml")))
        r = b.run([Sample(code, "solve", [((0,), [65534, ["LANG", "PATH", "PWD"], False, False])])])[0]
    assert r.status == "pass", r


def test_close_leaves_no_process_and_refuses_work():
    b = Sandbox(2)
    pids = b.layers()["workers"]
    b.close()
    b.close()  # twice is fine
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: not our child any more
    with pytest.raises(RuntimeError):
        b.run([Sample(SQUARE, "solve", TESTS)])


def _in_worker_process(_: int) -> str:
    return default_sandbox().run([Sample(SQUARE, "solve", TESTS)])[0].status


def test_default_sandbox_is_per_process():
    assert default_sandbox() is default_sandbox()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as procs:
        assert procs.map(_in_worker_process, range(4)) == ["pass"] * 4
    assert default_sandbox().run([Sample(SQUARE, "solve", TESTS)])[0].status == "pass"


def test_cli_reports_layers():
    cli = str(Path(sys.executable).parent / "taskforge")
    out = subprocess.run([cli, "sandbox"], capture_output=True, text=True, check=True).stdout
    assert "smoke sample: pass" in out
    assert ("isolation: bubblewrap" in out) == bubblewrap_available()
