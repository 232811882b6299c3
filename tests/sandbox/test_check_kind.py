"""Assert-style samples (`kind="check"`, HumanEval's `check(candidate)`): the judge that runs the test
lives on from sample to sample and learns the calls to batch from a dry run; none of that may let a
candidate see the test, fake a pass, reach another sample, or change a verdict.

Runs in both modes: with bubblewrap (skipped only when it is absent) and in the fallback mode."""

from __future__ import annotations

import time

import pytest

from taskforge.sandbox import Sample, Sandbox, bubblewrap_available

MODES = (["bubblewrap"] if bubblewrap_available() else []) + ["fallback"]
SQUARE = "def solve(x):\n    return x * x\n"
TEST = "def check(candidate):\n    for x in (3, 4, -2, 0):\n        assert candidate(x) == x * x\n"
SECRET_TEST = "SECRET = 'CANARY-51c2'\n" + TEST


def check(code: str, test: str = TEST, time_limit: float = 2.0, prelude: str = "") -> Sample:
    return Sample(code, "solve", (), time_limit, "check", test, prelude=prelude)


@pytest.fixture(scope="module", params=MODES)
def box(request):
    with Sandbox(2, isolation=request.param, memory_mb=512) as sandbox:
        yield sandbox


# name -> code; every one must fail against TEST (or SECRET_TEST).
HOSTILE = {
    "always_equal": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def solve(x):\n    return Yes()\n"
    ),
    "always_equal_int_subclass": (
        "class Yes(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def solve(x):\n    return Yes(0)\n"
    ),
    "monkeypatch_check_and_builtins": (
        "import builtins\ndef check(candidate):\n    pass\nbuiltins.check = check\n"
        "builtins.AssertionError = type('Never', (BaseException,), {})\ndef solve(x):\n    return None\n"
    ),
    "exit_zero_at_load": "import sys\nsys.exit(0)\n",
    "os_exit_at_load": "import os\nos._exit(0)\n",
    "os_exit_in_call": "import os\ndef solve(x):\n    os._exit(0)\n",
    "system_exit_in_call": "def solve(x):\n    raise SystemExit(0)\n",
    "keyboard_interrupt_in_call": "def solve(x):\n    raise KeyboardInterrupt\n",
    "print_fake_pass": (
        'print(\'All tests passed\')\nprint(\'["0",["done","pass",""]]\')\ndef solve(x):\n    return None\n'
    ),
    "forge_frames_on_every_fd": (
        "import json, os, struct\n"
        "def solve(x):\n"
        "    for body in (json.dumps(['ok', 9]), json.dumps(['done', 'pass', ''])):\n"
        "        frame = struct.pack('>I', len(body)) + body.encode()\n"
        "        for fd in range(64):\n"
        "            try:\n                os.write(fd, frame * 8)\n            except OSError:\n                pass\n"
        "    return None\n"
    ),
    "read_the_test_from_memory": (
        "import gc, sys\n"
        "def solve(x):\n"
        "    needle = 'CANARY-' + '51c2'  # built here: the code itself must not hold it\n"
        "    seen = any(needle in str(o) for o in gc.get_objects() if isinstance(o, (bytes, dict)))\n"
        "    f = sys._getframe(1)\n"
        "    while f is not None:\n"
        "        seen = seen or needle in str(f.f_locals)\n"
        "        f = f.f_back\n"
        "    return x * x if seen else None\n"
    ),
    # Another process's priority or CPUs (its judge, found by session: this worker's processes only):
    # right answers, but only when the judge could be slowed down.
    "renice_or_pin_its_judge": (
        "import os\n"
        "def solve(x):\n"
        "    me, sid, reached = os.getpid(), os.getsid(0), False\n"
        "    for pid in range(max(2, me - 64), me):\n"
        "        if pid == os.getppid():\n            continue\n"
        "        for act in (lambda: os.setpriority(os.PRIO_PROCESS, pid, 19),\n"
        "                    lambda: os.sched_setaffinity(pid, {0}),\n"
        "                    lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))):\n"
        "            try:\n"
        "                if os.getsid(pid) == sid:\n                    act()\n                    reached = True\n"
        "            except OSError:\n                pass\n"
        "    return x * x if reached else None\n"
    ),
    "read_other_processes_memory": (
        "import os\n"
        "def solve(x):\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if not pid.isdigit() or int(pid) == os.getpid():\n            continue\n"
        "        try:\n"
        "            maps = open(f'/proc/{pid}/maps').read().splitlines()\n"
        "            mem = open(f'/proc/{pid}/mem', 'rb')\n"
        "        except OSError:\n            continue\n"
        "        for line in maps:\n"
        "            lo, hi = (int(v, 16) for v in line.split()[0].split('-'))\n"
        "            try:\n                mem.seek(lo)\n                chunk = mem.read(hi - lo)\n"
        "            except (OSError, ValueError, OverflowError):\n                continue\n"
        "            if (b'CANARY-' + b'51c2') in chunk:\n                return x * x\n"
        "    return None\n"
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_candidate_never_passes(box, name):
    # SECRET_TEST holds a canary: the snooping candidates answer right only if they find it.
    result = box.run([check(HOSTILE[name], SECRET_TEST)])[0]
    assert result.status in ("fail", "crash", "timeout"), (name, result)


# No kill(2) in the sandbox, but an fd's owner is sent SIGIO (or any signal F_SETSIG names) when the fd
# becomes ready, under kill's permission check: every process of the same uid (its judge, other
# samples' candidates and judges). It aims at its own worker's processes only (its session).
SIGNALS_BY_FD_OWNER = (
    "import fcntl, os, signal\n"
    "def solve(x):\n"
    "    r, w = os.pipe()\n"
    "    for args in ((10, signal.SIGKILL), (fcntl.F_SETFL, os.O_ASYNC)):  # 10: F_SETSIG\n"
    "        try:\n            fcntl.fcntl(r, *args)\n        except OSError:\n            pass\n"
    "    me, sid = os.getpid(), os.getsid(0)\n"
    "    for pid in range(max(2, me - 64), me):\n"
    "        try:\n"
    "            if pid != os.getppid() and os.getsid(pid) == sid:\n"
    "                fcntl.fcntl(r, fcntl.F_SETOWN, pid)\n"
    "                os.write(w, b'x')\n"
    "                os.read(r, 1)\n"
    "        except OSError:\n            pass\n"
    "    return x * x\n"
)


def test_a_candidate_cannot_signal_its_judge_through_an_fd_owner(box):
    # Right answers: a pass only if the judge outlived the attempt (a killed judge gives a crash).
    results = box.run([check(SIGNALS_BY_FD_OWNER), check(SQUARE)])
    assert [r.status for r in results] == ["pass", "pass"], results


def test_right_answers_pass_and_wrong_ones_fail(box):
    results = box.run([check(SQUARE), check("def solve(x):\n    return x * x if x else 1\n"), check(SQUARE)])
    assert [r.status for r in results] == ["pass", "fail", "pass"], results


# Tests of error behaviour, as MBPP-style and user datasets write them by hand.
EXPECTS = (
    "def check(candidate):\n"
    "    assert candidate(2) == 4\n"
    "    try:\n        candidate(-1)\n    except {expected}:\n        pass\n"
    "    else:\n        assert False, 'no error'\n"
)
RAISES = "def solve(x):\n    if x < 0:\n        raise {raised}('negative')\n    return x * x\n"


@pytest.mark.parametrize(
    ("raised", "expected", "status"),
    [
        ("ValueError", "ValueError", "pass"),
        ("ValueError", "(TypeError, ValueError)", "pass"),
        ("ValueError", "Exception", "pass"),
        ("KeyError", "LookupError", "pass"),
        ("ZeroDivisionError", "ArithmeticError", "pass"),
        ("AssertionError", "AssertionError", "pass"),
        ("NotImplementedError", "RuntimeError", "pass"),
        ("FileNotFoundError", "OSError", "pass"),
        ("ValueError", "TypeError", "fail"),
        ("TypeError", "ValueError", "fail"),
        ("RuntimeError", "NotImplementedError", "fail"),  # a base does not pass for its subclass
    ],
)
def test_a_test_that_expects_an_exception_type_gets_that_type(box, raised, expected, status):
    result = box.run([check(RAISES.format(raised=raised), EXPECTS.format(expected=expected))])[0]
    assert result.status == status, result


def test_a_candidates_own_exception_class_crosses_as_its_builtin_base(box):
    # As in-process: `except ValueError` catches a subclass, not a class of its own so named (the judge
    # raises its own instance by name either way: no candidate class reaches the test).
    own = "class Negative(ValueError):\n    pass\n" + RAISES.format(raised="Negative")
    fake = "class ValueError(Exception):\n    pass\n" + RAISES.format(raised="ValueError")
    results = box.run(
        [
            check(own, EXPECTS.format(expected="ValueError")),
            check(fake, EXPECTS.format(expected="ValueError")),
        ]
    )
    assert [r.status for r in results] == ["pass", "fail"], results


# Types whose raise could steer the trusted test (StopIteration ends a loop over `map`/`zip`), or that
# are no ordinary error: each reaches the test as a plain CandidateError, which no handler expects.
EXCLUDED = (
    "StopIteration",
    "StopAsyncIteration",
    "GeneratorExit",
    "SystemExit",
    "KeyboardInterrupt",
    "MemoryError",
    "ImportError",
    "SyntaxError",
    "EOFError",
    "UserWarning",
)
ZIP_TEST = (
    "def check(candidate):\n"
    "    for got, want in zip(map(candidate, [1, 2, 3]), [1, 4, 9]):\n"
    "        assert got == want\n"
    "    assert [candidate(x) for x in (2, 5)] == [4, 25]\n"
)


@pytest.mark.parametrize("name", EXCLUDED)
def test_excluded_exception_types_never_pass(box, name):
    raises = f"def solve(x):\n    raise {name}('x')\n"
    caught = "def check(candidate):\n    try:\n        candidate(1)\n    except " + name + ":\n        pass\n"
    caught += "    else:\n        assert False\n    assert candidate(3) == 9\n"
    results = box.run([check(raises, ZIP_TEST), check(raises, caught)])
    assert [r.status for r in results] == ["fail", "fail"], (name, results)


def test_stop_iteration_cannot_end_the_tests_loop_early(box):
    # In-process, this candidate would end the `zip(map(...))` loop at once and pass.
    code = "def solve(x):\n    if x == 1:\n        raise StopIteration\n    return x * x\n"
    assert box.run([check(code, ZIP_TEST)])[0].status == "fail"
    assert box.run([check(SQUARE, ZIP_TEST)])[0].status == "pass"


def test_load_errors_and_unencodable_answers_are_no_expected_exception(box):
    # Both would otherwise cross as a type a test catches (a load error was a RuntimeError, an answer
    # that is not plain data a PlainError, a ValueError): neither is the call raising.
    test = EXPECTS.format(expected="(RuntimeError, ValueError)").replace("assert candidate(2) == 4\n", "")
    unencodable = "def solve(x):\n    return object() if x < 0 else x * x\n"
    results = box.run([check("def solve(x):\n    raise ValueError(\n", test), check(unencodable, test)])
    assert [r.status for r in results] == ["fail", "fail"], results


def test_a_chatty_candidate_does_not_stall(box):
    code = "def solve(x):\n    print('x' * 200_000)\n    return x * x\n"
    assert box.run([check(code)])[0].status == "pass"


def test_later_arguments_stay_hidden_until_earlier_answers_are_judged(box):
    # Each expected value is the next call's argument: a candidate reading its batch ahead could
    # answer with the next argument and never compute anything. The batch is cut at such a call.
    chain = "def check(candidate):\n" + "".join(
        f"    assert candidate({a}) == {b}\n" for a, b in ((5, 8), (8, 13), (13, 21))
    )
    peek = (
        "import gc\n"
        "def solve(x):\n"
        "    for o in gc.get_objects():\n"
        "        if type(o) is list and [x] in o and o.index([x]) + 1 < len(o):\n"
        "            return o[o.index([x]) + 1][0]\n"
        "    return {13: 21}.get(x, 0)\n"
    )
    assert box.run([check(peek, chain)])[0].status == "fail"
    fib = "def solve(x):\n    return {5: 8, 8: 13, 13: 21}[x]\n"
    assert box.run([check(fib, chain)])[0].status == "pass"


def test_calls_that_depend_on_results_are_asked_live(box):
    test = (
        "def check(candidate):\n"
        "    assert candidate(candidate(2)) == 16\n"
        "    xs = [candidate(i) for i in range(5)]\n"
        "    assert xs == [0, 1, 4, 9, 16]\n"
        "    assert candidate(xs[3]) == 81\n"
    )
    assert box.run([check(SQUARE, test)])[0].status == "pass"
    assert box.run([check("def solve(x):\n    return x + x\n", test)])[0].status == "fail"


def test_a_stateful_candidate_sees_calls_in_order(box):
    # The candidate answers in the order check calls it: a counter-based candidate behaves as under
    # HumanEval's harness.
    test = "def check(candidate):\n    assert [candidate(0) for _ in range(4)] == [1, 2, 3, 4]\n"
    code = "n = 0\ndef solve(x):\n    global n\n    n += 1\n    return n\n"
    assert box.run([check(code, test)])[0].status == "pass"


def test_a_test_that_loops_on_stand_ins_still_gets_its_verdict(box):
    # In the dry run every result is a stand-in whose comparison raises: this loop would never end
    # there. The dry run's budget ends it (even through a bare except); the real run then passes.
    test = (
        "def check(candidate):\n"
        "    while True:\n"
        "        try:\n"
        "            if candidate(3) == 9:\n"
        "                break\n"
        "        except:\n"
        "            pass\n"
    )
    results = box.run([check(SQUARE, test), check(SQUARE, test)])
    assert [r.status for r in results] == ["pass", "pass"], results


def test_random_tests_give_the_same_verdict_every_time(box):
    # `random` is seeded alike for every run of check: a candidate right on some inputs only gets one
    # verdict, whichever worker or judge runs it.
    test = (
        "import random\n"
        "def check(candidate):\n"
        "    for _ in range(20):\n"
        "        x = random.randint(0, 50)\n"
        "        assert candidate(x) == x * x\n"
    )
    code = "def solve(x):\n    return x * x if x % 7 else -1\n"
    statuses = {r.status for r in box.run([check(code, test)] * 6)}
    assert len(statuses) == 1, statuses


def test_the_prompts_helpers_reach_both_sides(box):
    prelude = "def helper(x):\n    return x * x\n\ndef solve(x):\n    '''square it'''\n"
    test = "def check(candidate):\n    assert candidate(4) == helper(4)\n"
    results = box.run(
        [
            check("def solve(x):\n    return helper(x)\n", test, prelude=prelude),
            check(prelude + "    return helper(x)\n", test, prelude=prelude),  # repeats the prompt
        ]
    )
    assert [r.status for r in results] == ["pass", "pass"], results


def test_judge_survives_a_timeout_and_garbage(box):
    hang = "def solve(x):\n    while True:\n        pass\n"
    results = box.run(
        [check(hang, time_limit=0.5), check("def solve(x):\n    return object()\n"), check(SQUARE)]
    )
    assert [r.status for r in results] == ["timeout", "fail", "pass"], results


def test_a_broken_test_fails_every_candidate(box):
    results = box.run([check(SQUARE, "def check(candidate)\n    pass\n"), check(SQUARE, "x = 1\n")])
    assert [r.status for r in results] == ["fail", "fail"], results


def test_many_samples_of_one_test_across_judge_restarts(box):
    # More samples than a judge serves before it is replaced: verdicts stay the same throughout.
    wrong = "def solve(x):\n    return x * x + (x == -2)\n"
    results = box.run([check(SQUARE), check(wrong)] * 150)
    assert [r.status for r in results] == ["pass", "fail"] * 150


def test_samples_of_one_test_go_to_the_judge_that_holds_it():
    # The pool's dispatch: among the first queued samples, one whose test a worker's judge ran last.
    # (Scheduling only: results are placed by index, whichever worker runs them.)
    from collections import deque

    box = Sandbox.__new__(Sandbox)
    box._home = {}
    a, b = object(), object()
    tests = [TEST, TEST + "\n", TEST + "\n\n"]
    samples = [check(SQUARE, tests[i % 3]) for i in range(9)] + [Sample(SQUARE, "solve", [((2,), 4)])]
    queue = deque(range(len(samples)))
    assert box._pick(queue, samples, a) == 0  # nobody has run anything: the first
    assert box._pick(queue, samples, b) == 1  # b: the first test no judge holds
    assert box._pick(queue, samples, a) == 3  # a again: the next sample of its own test, not 2
    assert box._pick(queue, samples, b) == 4
    assert box._pick(queue, samples, a) == 6
    assert list(queue) == [2, 5, 7, 8, 9]
    assert box._pick(queue, samples, object()) == 2  # a new worker takes what nobody else holds


@pytest.mark.parametrize("mode", MODES)
def test_no_judge_outlives_its_pool(mode):
    from tests.sandbox.test_hostile_code import _live_descendants

    already = set(_live_descendants())
    box = Sandbox(2, isolation=mode)
    assert [r.status for r in box.run([check(SQUARE)] * 4)] == ["pass"] * 4
    assert set(_live_descendants()) - already  # the workers and their judges
    box.close()
    deadline = time.monotonic() + 5
    while (left := set(_live_descendants()) - already) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, left


# Each expected value is also the next call's argument, hidden from the dry run's notes: behind a
# function (`math.isclose`, `sorted`, `str`, `round`), a hash lookup, arithmetic, a float spelling of
# an int, a tuple or a set spelt as a list, nested inside the next argument or inside its string.
# name -> (import line, one assert, how the answer is returned).
CHAINS = {
    "isclose": ("import math\n", "math.isclose(candidate({a}), {b})", "v"),
    "sorted": ("", "sorted(candidate({a})) == [{b}]", "[v]"),
    "str": ("", "str(candidate({a})) == '{b}'", "v"),
    "set_membership": ("", "candidate({a}) in {{{b}}}", "v"),
    "round": ("", "round(candidate({a}), 3) == {b}", "v"),
    "plus_zero": ("", "candidate({a}) + 0 == {b}", "v"),
    "float_comparand": ("", "candidate({a}) == {b}.0", "v"),
    "tuple_comparand": ("", "candidate([{a}, {a}]) == ({b}, {b})", "(v, v)"),
    "nested_argument": ("", "candidate([{a}]) == {b}", "v"),
    "set_comparand": ("", "candidate([{a}]) == {{{b}}}", "{v}"),
    "substring": ("", "candidate('<{a}>') == '{b}'", "str(v)"),
    # Too long to be noted: a compared value the dry run does not keep must end the batch all the same.
    "long_comparand": ("", "candidate('<{a}>' * 4000) == '<{b}>' * 4000", "('<' + str(v) + '>') * 4000"),
}
CHAIN_PAIRS = {"substring": ((55, 89), (89, 144), (144, 233))}
_PEEK = (
    "import sys\n"
    "def solve(x):\n"
    "    # The batch the candidate's server holds: the next call's argument is the expected answer.\n"
    "    f = sys._getframe(1)\n"
    "    batch, args = f.f_locals.get('batch'), f.f_locals.get('args')\n"
    "    v = None\n"
    "    if batch is not None:\n"
    "        i = next(i for i, a in enumerate(batch) if a is args)\n"
    "        if i + 1 < len(batch):\n"
    "            v = batch[i + 1][0]\n"
    "    if v is None:\n"
    "        v = {last}.get(unwrap(x), 0)  # the last call alone is known by heart\n"
    "    v = unwrap(v)\n"
    "    return {ret}\n"
)
_KNOWS = "def solve(x):\n    v = {table}[unwrap(x)]\n    return {ret}\n"
_UNWRAP = (
    "def unwrap(v):\n"
    "    while type(v) in (list, tuple):\n        v = v[0]\n"
    "    if type(v) is str:\n        v = int(v.split('>')[0].strip('<'))\n"
    "    return v\n"
)


@pytest.mark.parametrize("name", list(CHAINS))
def test_no_expected_value_leaks_through_a_later_argument(box, name):
    # The candidate that peeks at its batch knows only the last answer: it must fail where the one that
    # knows every answer passes.
    head, assertion, ret = CHAINS[name]
    pairs = CHAIN_PAIRS.get(name, ((5, 8), (8, 13), (13, 21)))
    test = (
        head
        + "def check(candidate):\n"
        + "".join("    assert " + assertion.format(a=a, b=b) + "\n" for a, b in pairs)
    )
    peek = _UNWRAP + _PEEK.format(last=dict(pairs[-1:]), ret=ret)
    knows = _UNWRAP + _KNOWS.format(table=dict(pairs), ret=ret)
    results = box.run([check(knows, test), check(peek, test)])
    assert [r.status for r in results] == ["pass", "fail"], (name, results)


# Joins the worker's process group (setpgid needs no privilege within a session), so that a kill of its
# own group misses it; then outlives its sample. In check mode it first answers every call of its batch
# itself (right answers: the verdict is a pass), so that the judge lives on and only the candidate stays.
LEAVES_ITS_GROUP = (
    "import os, sys, time, _plain, _worker\n"
    "def solve(x):\n"
    "    os.setpgid(0, os.getpgid(os.getppid()))\n"
    "    server = sys._getframe(1).f_locals\n"
    "    if 'batch' in server:\n"
    "        for (a,) in server['batch']:\n"
    "            _worker.write_frame(server['resp_w'], _plain.dumps(['ok', a * a]).encode())\n"
    "    time.sleep(30)\n"
)


@pytest.mark.parametrize("mode", MODES)
def test_a_candidate_that_leaves_its_process_group_dies_with_its_sample(mode):
    from tests.sandbox.test_hostile_code import _live_descendants

    with Sandbox(1, isolation=mode) as box:
        assert box.run([check(SQUARE)])[0].status == "pass"  # the worker and its judge are up
        worker, before = box._workers[0].proc.pid, set(_live_descendants())
        as_check = check(LEAVES_ITS_GROUP, time_limit=1.0)
        as_call = Sample(LEAVES_ITS_GROUP, "solve", [((2,), 4)], 0.5)
        assert [r.status for r in box.run([as_check, as_call])] == ["pass", "timeout"]
        # The worker was not stuck waiting for a child its kill missed (the host replaces a stuck one).
        assert box._workers[0].proc.pid == worker
        deadline = time.monotonic() + 5
        while (left := set(_live_descendants()) - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, left
