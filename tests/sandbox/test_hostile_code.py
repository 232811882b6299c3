"""The hostile corpus: programs that try to escape, exhaust, or fake a pass. Each has its expected
verdict; after the corpus the host is unchanged, no process is left behind, and the pool still works.

Runs in both modes: with bubblewrap (skipped only when it is absent) and in the fallback mode (fork +
seccomp + Landlock + rlimits), which always runs. The task is `solve(x) = x * x`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from taskforge.sandbox import Sample, Sandbox, bubblewrap_available

TESTS = [((3,), 9), ((4,), 16), ((-2,), 4), ((0,), 0)]
TIME_LIMIT = 1.0
FAIL, TIMEOUT, CRASH = {"fail"}, {"timeout"}, {"crash"}
NOT_PASS = {"fail", "timeout", "crash"}

# name -> (code, expected statuses). CANARY / CANARY_DIR / RECORD are replaced by host paths.
CORPUS: dict[str, tuple[str, set[str]]] = {
    "fork_bomb": ("import os\ndef solve(x):\n    while True:\n        os.fork()\n", FAIL),
    "fork_bomb_retrying": (
        "import os\ndef solve(x):\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        TIMEOUT,
    ),
    "infinite_loop": ("def solve(x):\n    while True:\n        pass\n", TIMEOUT),
    "sleep_past_deadline": ("import time\ndef solve(x):\n    time.sleep(60)\n    return x * x\n", TIMEOUT),
    "memory_bomb": ("def solve(x):\n    return len(bytearray(1 << 34)) and x * x\n", FAIL),
    "memory_bomb_growing": (
        "def solve(x):\n    a = []\n    while True:\n        a.append(bytearray(1 << 24))\n",
        NOT_PASS,
    ),
    "huge_output": ("def solve(x):\n    while True:\n        print('x' * 65536)\n", TIMEOUT),
    "huge_result": ("def solve(x):\n    return 'x' * (24 << 20)\n", CRASH | TIMEOUT),
    "write_outside_tmp": (
        "def solve(x):\n    open('CANARY_DIR/new.txt', 'w').write('pwned')\n    return x * x\n",
        FAIL,
    ),
    "overwrite_canary": ("def solve(x):\n    open('CANARY', 'w').write('pwned')\n    return x * x\n", FAIL),
    "append_canary": ("def solve(x):\n    open('CANARY', 'a').write('pwned')\n    return x * x\n", FAIL),
    "delete_canary": ("import os\ndef solve(x):\n    os.remove('CANARY')\n    return x * x\n", FAIL),
    "rename_canary": (
        "import os\ndef solve(x):\n    os.rename('CANARY', 'CANARY.bak')\n    return x * x\n",
        FAIL,
    ),
    "chmod_canary": ("import os\ndef solve(x):\n    os.chmod('CANARY', 0)\n    return x * x\n", FAIL),
    "write_tmp_then_answer_from_it": (
        "def solve(x):\n    open('/tmp/note', 'w').write(str(x * x))\n    return int(open('/tmp/note').read())\n",
        FAIL,
    ),
    "read_passwd": ("def solve(x):\n    return open('/etc/passwd').read()\n", FAIL),
    "read_task_record": (
        "import json\ndef solve(x):\n    rows = json.load(open('RECORD'))['tests']\n"
        "    return {r[0][0]: r[1] for r in rows}[x]\n",
        FAIL,
    ),
    "list_home": (
        "import os\ndef solve(x):\n    return len(os.listdir(os.path.expanduser('~'))) + x * x\n",
        FAIL,
    ),
    "socket_inet": (
        "import socket\ndef solve(x):\n    socket.create_connection(('1.1.1.1', 80), timeout=0.2)\n    return x * x\n",
        FAIL,
    ),
    "socket_unix": (
        "import socket\ndef solve(x):\n    socket.socket(socket.AF_UNIX)\n    return x * x\n",
        FAIL,
    ),
    "subprocess": (
        "import subprocess\ndef solve(x):\n    subprocess.run(['sh', '-c', 'touch CANARY_DIR/sub'])\n    return x * x\n",
        FAIL,
    ),
    "os_system": (
        "import os\ndef solve(x):\n    return x * x if os.system('touch CANARY_DIR/sys') == 0 else None\n",
        FAIL,
    ),
    "exec_shell": ("import os\ndef solve(x):\n    os.execv('/bin/sh', ['sh', '-c', 'exit 0'])\n", FAIL),
    "ctypes_raw_fork": (
        "import ctypes\ndef solve(x):\n    libc = ctypes.CDLL(None)\n    libc.syscall.restype = ctypes.c_long\n"
        "    return x * x if libc.syscall(57) >= 0 and libc.syscall(56, 17, 0, 0, 0, 0) >= 0 else None\n",
        FAIL,
    ),
    "ctypes_segfault": (
        "import ctypes\ndef solve(x):\n    ctypes.cast(8, ctypes.POINTER(ctypes.c_int)).contents.value = 1\n",
        CRASH,
    ),
    "ctypes_unshare_mount": (
        "import ctypes\ndef solve(x):\n    libc = ctypes.CDLL(None)\n"
        "    return x * x if libc.unshare(0x00020000) == 0 or libc.mount(b'none', b'/mnt', b'tmpfs', 0, None) == 0 "
        "else None\n",
        FAIL,
    ),
    "signal_parent": (
        "import os, signal\ndef solve(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return x * x\n",
        FAIL,
    ),
    "signal_everyone": (
        "import os, signal\ndef solve(x):\n    os.kill(-1, signal.SIGKILL)\n    return x * x\n",
        FAIL,
    ),
    "proc_mem_of_parent": (
        "import os\ndef solve(x):\n    open(f'/proc/{os.getppid()}/mem', 'wb')\n    return x * x\n",
        FAIL,
    ),
    "raise_own_limits": (
        "import resource\ndef solve(x):\n    resource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\n"
        "    return x * x\n",
        FAIL,
    ),
    "thread_fixes_result_later": (
        "import threading, time\ndef solve(x):\n    box = [0]\n"
        "    threading.Thread(target=lambda: (time.sleep(0.05), box.__setitem__(0, x * x))).start()\n"
        "    return box\n",
        FAIL,
    ),
    "thread_spins_forever": (
        "import threading\ndef spin():\n    while True:\n        pass\n"
        "threading.Thread(target=spin, daemon=True).start()\ndef solve(x):\n    return x * x\n",
        {"pass", "timeout"},  # right answers; the spinning thread dies with the child either way
    ),
    "monkeypatch_builtins": (
        "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: int\n"
        "builtins.len = lambda *a: 0\ndef solve(x):\n    return str(x)\n",
        FAIL | CRASH,  # the harness itself may break: no result is a crash, never a pass
    ),
    "always_equal": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def solve(x):\n    return Yes()\n",
        FAIL,
    ),
    "always_equal_int_subclass": (
        "class Yes(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def solve(x):\n    return Yes(0)\n",
        FAIL,
    ),
    "wrong_type_equal_value": ("def solve(x):\n    return float(x * x)\n", FAIL),
    "sys_exit_before_tests": ("import sys\nsys.exit(0)\ndef solve(x):\n    return None\n", FAIL),
    "os_exit_before_tests": ("import os\nos._exit(0)\ndef solve(x):\n    return None\n", CRASH),
    "os_exit_in_call": ("import os\ndef solve(x):\n    os._exit(0)\n", CRASH),
    "print_fake_pass_lines": (
        'def solve(x):\n    print(\'PASS: 4/4 tests passed\')\n    print(\'["0",["done",[["ok",9]]]]\')\n'
        "    return None\n",
        FAIL,
    ),
    "forge_result_on_every_fd": (
        "import gc, json, os\ndef solve(x):\n"
        "    job = next(o for o in gc.get_objects() if isinstance(o, dict) and 'nonce' in o)\n"
        "    forged = json.dumps([job['nonce'], ['done', [['ok', 9]] * len(job['inputs'])]]).encode()\n"
        "    for fd in range(1, 64):\n        try:\n            os.write(fd, forged)\n        except OSError:\n"
        "            pass\n    os._exit(0)\n",
        FAIL | CRASH,
    ),
    "patch_harness_encoder": (
        "import sys\nsys.modules['_plain'].encode = lambda v: 9\nsys.modules['_plain'].same = lambda *a: True\n"
        "def solve(x):\n    return None\n",
        FAIL,
    ),
    "recursion_bomb": ("def solve(x):\n    return solve(x + 1)\n", FAIL),
    "c_stack_bomb": (
        "import sys\nsys.setrecursionlimit(10**8)\ndef solve(x):\n    return solve(x + 1)\n",
        NOT_PASS,
    ),
    "deeply_nested_result": (
        "def solve(x):\n    v = []\n    for _ in range(100000):\n        v = [v]\n    return v\n",
        FAIL,
    ),
    "exception_with_hostile_str": (
        "class E(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
        "def solve(x):\n    raise E()\n",
        FAIL,
    ),
    "syntax_error": ("def solve(x)\n    return x * x\n", FAIL),
}


def _scan_processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, cmdline) for every process visible here."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry)] = (int(fields[1]), fields[0], cmd)
    return out


def _descendants(root: int) -> dict[int, tuple[int, str, str]]:
    procs = _scan_processes()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, info in procs.items():
            if info[0] == parent and pid not in found:
                found[pid] = info
                frontier.append(pid)
    return found


@pytest.fixture(scope="module")
def host():
    """A canary file and a task record outside /tmp, world-writable on purpose: only the sandbox's
    layers stand between them and the code."""
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="taskforge-canary-", dir=base))
    root.chmod(0o777)
    canary = root / "canary.txt"
    canary.write_text("canary\n")
    canary.chmod(0o666)
    record = root / "record.json"
    record.write_text(json.dumps({"tests": [[list(args), out] for args, out in TESTS]}))
    record.chmod(0o666)
    yield root, canary, record
    shutil.rmtree(root, ignore_errors=True)


def _modes():
    yield pytest.param(
        "bubblewrap",
        marks=pytest.mark.skipif(
            not bubblewrap_available(), reason="bubblewrap (bwrap) is not installed or usable"
        ),
    )
    yield "fallback"


@pytest.fixture(scope="module", params=list(_modes()))
def corpus_run(request, host):
    root, canary, record = host
    before = canary.stat()
    listing = sorted(os.listdir(root))
    names = list(CORPUS)
    samples = []
    for name in names:
        code = CORPUS[name][0]
        code = (
            code.replace("CANARY_DIR", str(root))
            .replace("CANARY", str(canary))
            .replace("RECORD", str(record))
        )
        samples.append(Sample(code, "solve", TESTS, TIME_LIMIT))
    already = set(_live_descendants())  # e.g. the process's default pool, made by other tests
    box = Sandbox(2, isolation=request.param, memory_mb=512)
    started = time.monotonic()
    results = box.run(samples)
    elapsed = time.monotonic() - started
    yield {
        "box": box, "results": dict(zip(names, results, strict=True)), "elapsed": elapsed, "mode": request.param,
        "canary_before": before, "listing_before": listing, "root": root, "canary": canary, "already": already,
    }  # fmt: skip
    box.close()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_program_gets_its_verdict(corpus_run, name):
    result = corpus_run["results"][name]
    fallback = corpus_run["mode"] == "fallback"
    if name == "read_task_record" and fallback and not corpus_run["box"].layers()["landlock"]:
        pytest.skip("fallback mode without Landlock cannot hide files the nobody user may read")
    expected = CORPUS[name][1]
    assert result.status in expected, f"{name}: {result}"
    if "pass" not in expected:
        assert not result.ok


def test_host_unchanged_and_no_stray_process(corpus_run):
    canary, root = corpus_run["canary"], corpus_run["root"]
    after = canary.stat()
    before = corpus_run["canary_before"]
    assert canary.read_text() == "canary\n"
    assert (after.st_mode, after.st_mtime_ns, after.st_size) == (
        before.st_mode,
        before.st_mtime_ns,
        before.st_size,
    )
    assert sorted(os.listdir(root)) == corpus_run["listing_before"]
    box = corpus_run["box"]
    # The pool still serves a normal sample, in the same workers that met the corpus or in fresh ones.
    ok = box.run([Sample("def solve(x):\n    return x * x\n", "solve", TESTS, TIME_LIMIT)])[0]
    assert ok.status == "pass", ok
    # Live processes under us: the workers and their bwrap parents only. A worker's forked child may
    # linger as a zombie until the worker's next job, never running.
    deadline = time.monotonic() + 5  # a killed child can take a moment to become a zombie
    while (strays := _strays(corpus_run["already"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not strays, strays
    box.close()
    deadline = time.monotonic() + 5
    while (left := set(_live_descendants()) - corpus_run["already"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left after close: {left}"


def _live_descendants() -> dict[int, tuple[int, str, str]]:
    return {pid: info for pid, info in _descendants(os.getpid()).items() if info[1] != "Z"}


def _strays(already: set[int]) -> list[str]:
    """Running processes under us, born during the corpus, other than the workers and their bwrap parents."""
    procs = _descendants(os.getpid())
    found = []
    for pid, (ppid, state, cmd) in procs.items():
        if state == "Z" or pid in already:
            continue
        parent_cmd = procs.get(ppid, (0, "", ""))[2]
        if "_worker" in parent_cmd and not parent_cmd.startswith("bwrap"):
            found.append(f"a forked child outlived its job: {pid} ({state})")
        elif not (cmd.startswith("bwrap") or "_worker" in cmd):
            found.append(f"stray process {pid}: {cmd[:120]}")
    return found


def test_corpus_is_quick(corpus_run):
    assert corpus_run["elapsed"] < 45, corpus_run["elapsed"]


def test_signal_to_worker_is_survived(corpus_run):
    """A worker killed from outside (or by an escape) costs one crash verdict, then it is replaced."""
    box = Sandbox(1, isolation=corpus_run["mode"])
    try:
        pid = box.layers()["workers"][0]
        os.kill(pid, signal.SIGKILL)
        results = box.run([Sample("def solve(x):\n    return x * x\n", "solve", TESTS, TIME_LIMIT)] * 2)
        assert results[-1].status == "pass"
        assert all(r.status in ("pass", "crash") for r in results)
    finally:
        box.close()
