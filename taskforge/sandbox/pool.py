"""The host side of the sandbox: a pool of long-lived workers, each inside bubblewrap when it is present.

    with Sandbox() as box:
        results = box.run([Sample(code, "solve", tests=[((1, 2), 3), ...], time_limit=2.0), ...])
        results[0].status      # pass | fail | timeout | crash | rejected

Expected outputs stay in this process: workers receive code and inputs only, and return plain data
that is decoded strictly and compared here with exact types. A worker is a clean zygote: each job's data
reaches only the child forked for it (spliced through the worker, never read into its memory), so no
candidate can find another job's data in the memory it inherits (see _worker.py).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskforge.errors import SandboxUnavailableError
from taskforge.sandbox import _plain

log = logging.getLogger("taskforge.sandbox")
HERE = Path(__file__).resolve().parent
STRICT_ENV = "TASKFORGE_SANDBOX_STRICT"
MAX_CODE_CHARS = 100_000
PIPELINE = 2
AFFINITY_WINDOW = 8  # queued samples looked at for one whose test a worker's judge already holds
HOST_GRACE_S = 10.0  # a worker silent this long past a job's deadline is itself killed and replaced
_HEADER = struct.Struct(">I")
_warned = False


class SandboxUnavailable(SandboxUnavailableError):
    """The sandbox cannot run here with the isolation asked for."""


@dataclass(frozen=True)
class Sample:
    """One program to judge. `tests` are (args, expected) pairs for `kind="call"`; for `kind="check"`,
    `test_code` defines `check(candidate)` (HumanEval style) and `tests` is unused."""

    code: str
    entry: str
    tests: Sequence[tuple[Sequence[Any], Any]] = ()
    time_limit: float = 2.0
    kind: str = "call"
    test_code: str = ""
    float_tol: float = 0.0
    prelude: str = ""  # trusted code run before `code` and `test_code` (a HumanEval prompt's helpers)


@dataclass
class Result:
    """status: pass (every test), fail (a test failed or the code did not load), timeout, crash (the
    child died or answered garbage), rejected (refused before running)."""

    status: str
    passed: int = 0
    total: int = 0
    detail: str = ""
    output: str = ""
    outcomes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "pass"


# ---- isolation -------------------------------------------------------------------------------------
def _seccomp_dir() -> str:
    try:
        import pyseccomp
    except (ImportError, OSError, AttributeError) as exc:  # no libseccomp.so.2 on this machine
        raise SandboxUnavailable(f"seccomp is unavailable ({exc}); install libseccomp2") from None
    return str(Path(pyseccomp.__file__).resolve().parent)


def _python() -> str:
    # The real interpreter, not a venv shim: its installation is what bubblewrap binds read-only.
    return os.path.realpath(sys.executable)


def bwrap_command(python: str, paths: Sequence[str]) -> list[str]:
    cmd = [
        "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--setenv", "LD_BIND_NOW", "1",
        "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp",
    ]  # fmt: skip
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    cmd += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    binds = {os.path.realpath(p) for p in (sys.base_prefix, os.path.dirname(python), *paths)}
    bound = ["/usr"]
    for path in sorted(binds):  # sorted: a parent comes before its children, which it already covers
        if not any(path == b or path.startswith(b + "/") for b in bound):
            bound.append(path)
            cmd += ["--ro-bind", path, path]
    return cmd


_bwrap_ok: bool | None = None


def bubblewrap_available() -> bool:
    """bwrap is installed and can create its namespaces here (some containers forbid it)."""
    global _bwrap_ok
    if _bwrap_ok is None:
        _bwrap_ok = False
        if shutil.which("bwrap"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                probe = subprocess.run(
                    [*bwrap_command(_python(), []), "--", _python(), "-I", "-S", "-c", "pass"],
                    capture_output=True,
                    timeout=30,
                )
                _bwrap_ok = probe.returncode == 0
    return _bwrap_ok


# ---- one worker --------------------------------------------------------------------------------------
class _Worker:
    def __init__(self, isolation: str) -> None:
        paths = [str(HERE), _seccomp_dir()]
        python = _python()
        boot = "import sys; sys.path[:0] = sys.argv[1].split(':'); import _worker; _worker.main()"
        cmd = [python, "-I", "-S", "-B", "-c", boot, ":".join(paths), isolation]
        if isolation == "bubblewrap":
            cmd = [*bwrap_command(python, paths), "--", *cmd]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            # LD_BIND_NOW (here and in bwrap_command): the worker resolves every library symbol at start,
            # so no forked child writes the lazy-binding tables (~15 copy-on-write faults per child).
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LD_BIND_NOW": "1"},
            cwd="/",
        )
        self.fd = self.proc.stdout.fileno()
        self.buf = bytearray()
        self.jobs: deque[tuple[int, float]] = deque()  # (sample index, host deadline), in order
        ready = self.read_frame(time.monotonic() + 30)
        if ready is None:
            self.kill()
            raise SandboxUnavailable("a sandbox worker failed to start")
        info = json.loads(ready)
        self.landlock = bool(info.get("landlock"))
        self.ipc_namespace = bool(info.get("ipc_ns"))

    def send(self, header: bytes, *raw: bytes) -> None:
        """A framed header, then raw parts whose sizes it states."""
        self.proc.stdin.write(b"".join([_HEADER.pack(len(header)), header, *raw]))
        self.proc.stdin.flush()

    def frame(self, count: int = 1) -> list[bytes] | None:
        """`count` complete frames from the buffer, if they have all arrived (a reply is three)."""
        bounds, at = [], 0
        for _ in range(count):
            if len(self.buf) < at + _HEADER.size:
                return None
            n = _HEADER.unpack_from(self.buf, at)[0]
            if len(self.buf) < at + _HEADER.size + n:
                return None
            bounds.append((at + _HEADER.size, at + _HEADER.size + n))
            at += _HEADER.size + n
        data = [bytes(self.buf[a:b]) for a, b in bounds]
        del self.buf[:at]
        return data

    def pump(self) -> bool:
        """Read what is available; False at end of stream (the worker died)."""
        chunk = os.read(self.fd, 1 << 20)
        self.buf += chunk
        return bool(chunk)

    def read_frame(self, deadline: float) -> bytes | None:
        while (data := self.frame()) is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0] or not self.pump():
                return None
        return data[0]

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self.proc.wait()


# ---- the pool ----------------------------------------------------------------------------------------
class Sandbox:
    """A pool of sandbox workers. Thread-safe; `run` keeps the order of its samples.

    isolation: "auto" (bubblewrap when it works, else the fork + seccomp + rlimit layers with one
    warning), "bubblewrap" (or `require_isolation=True`, or TASKFORGE_SANDBOX_STRICT=1: refuse to run
    without it), "fallback" (never bubblewrap; for tests and comparisons).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        isolation: str = "auto",
        require_isolation: bool | None = None,
        memory_mb: int = 1024,
        result_cap: int = 8 << 20,
    ) -> None:
        if isolation not in ("auto", "bubblewrap", "fallback"):
            raise ValueError(f"isolation must be auto, bubblewrap or fallback, got {isolation!r}")
        if require_isolation is None:
            require_isolation = os.environ.get(STRICT_ENV, "") not in ("", "0")
        if require_isolation:
            isolation = "bubblewrap"
        _seccomp_dir()
        if isolation != "fallback" and bubblewrap_available():
            self.isolation = "bubblewrap"
        elif isolation == "bubblewrap":
            raise SandboxUnavailable(
                "bubblewrap is required (strict sandbox) but `bwrap` is missing or cannot create "
                "namespaces here; install bubblewrap or unset " + STRICT_ENV
            )
        else:
            self.isolation = "fallback"
            if isolation == "auto":
                _warn_fallback()
        self.size = max(1, workers or os.cpu_count() or 1)
        self.memory_mb = memory_mb
        self.result_cap = result_cap
        self._workers: list[_Worker] = []
        self._home: dict[int, _Worker] = {}  # check samples' test -> the worker whose judge ran it last
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        atexit.register(self.close)

    # -- public ------------------------------------------------------------------------------------
    def layers(self) -> dict[str, Any]:
        """What isolates the code here: bubblewrap or not, Landlock or not (seccomp and rlimits always)."""
        with self._lock:
            self._start()
            return {
                "isolation": self.isolation,
                "landlock": all(w.landlock for w in self._workers),
                "ipc_namespace": all(w.ipc_namespace for w in self._workers),
                "seccomp": True,
                "workers": [w.proc.pid for w in self._workers],
            }

    def run(self, samples: Sequence[Sample]) -> list[Result]:
        """Judge every sample; results come back in the order of `samples`, one per sample, always."""
        results: list[Result | None] = [None] * len(samples)
        queue: deque[int] = deque()
        nonces: dict[int, str] = {}
        retried: set[int] = set()
        for i, s in enumerate(samples):
            problem = _refuse(s)
            if problem:
                results[i] = Result("rejected", total=len(s.tests), detail=problem)
            else:
                queue.append(i)
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            self._start()
            while queue or any(w.jobs for w in self._workers):
                for w in self._workers:
                    # Two jobs in flight per worker: the next one waits in its pipe, no round trip.
                    while queue and len(w.jobs) < PIPELINE:
                        i = self._pick(queue, samples, w)
                        nonces[i] = secrets.token_hex(16)
                        self._dispatch(w, i, samples[i], nonces[i])
                busy = {w.fd: w for w in self._workers if w.jobs}
                wait = min(w.jobs[0][1] for w in busy.values()) - time.monotonic()
                for fd in select.select(list(busy), [], [], max(0.0, wait))[0]:
                    w = busy[fd]
                    alive = w.pump()
                    while w.jobs and (data := w.frame(3)) is not None:
                        i = w.jobs.popleft()[0]
                        results[i] = _judge(samples[i], *data, nonces[i])
                    if not alive:
                        # A worker killed from outside: its jobs run once more on a fresh one. A job
                        # that kills its worker (an escape) dies twice and is a crash.
                        again = [i for i, _ in w.jobs if i not in retried]
                        retried.update(again)
                        w.jobs = deque(j for j in w.jobs if j[0] not in again)
                        queue.extendleft(reversed(again))
                        self._fail_all(w, results, samples, "crash", "worker died")
                now = time.monotonic()
                for w in list(busy.values()):
                    if w.jobs and now > w.jobs[0][1]:
                        self._fail_all(w, results, samples, "timeout", "worker hung")
        return [r if r is not None else Result("crash", detail="lost") for r in results]

    def close(self) -> None:
        """Stop every worker (their children die with them). Safe to call twice, and at exit."""
        if os.getpid() != self._pid:  # a forked copy must not kill its parent's workers
            return
        with self._lock:
            self._closed = True
            for w in self._workers:
                w.kill()
            self._workers.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------
    def _pick(self, queue: deque[int], samples: Sequence[Sample], w: _Worker) -> int:
        """The next sample for `w`: among the first few queued, one whose test this worker's judge ran
        last (it keeps the test compiled and its calls planned), else one no worker has run, else the
        first. A GRPO group's completions of one task mostly meet one judge; order is not at stake
        (results are placed by index)."""
        best = None
        for at, i in enumerate(itertools.islice(queue, AFFINITY_WINDOW)):
            s = samples[i]
            if s.kind != "check":
                break
            home = self._home.get(hash((s.prelude, s.test_code, s.entry)))
            if home is w:
                best = at
                break
            if home is None and best is None:
                best = at
        i = queue[best or 0]
        del queue[best or 0]
        s = samples[i]
        if s.kind == "check":
            if len(self._home) > 4096:
                self._home.clear()
            self._home[hash((s.prelude, s.test_code, s.entry))] = w
        return i

    def _start(self) -> None:
        self._workers = [w for w in self._workers if w.proc.poll() is None]
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self.isolation))

    def _fail_all(self, w: _Worker, results: list, samples: Sequence[Sample], status: str, why: str) -> None:
        """The worker is dead or stuck: its first job gets `status`, the one queued behind it a crash."""
        for n, (i, _) in enumerate(w.jobs):
            results[i] = Result(status if n == 0 else "crash", total=len(samples[i].tests), detail=why)
        self._replace(w)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[self._workers.index(w)] = _Worker(self.isolation)

    def _dispatch(self, w: _Worker, i: int, s: Sample, nonce: str) -> None:
        # The header is all the worker reads; the parts go, unread by it, to the children it forks: the
        # candidate's part to the candidate, the test code (check kind) to the sibling that runs it.
        code = {"code": s.code, "entry": s.entry, "nonce": nonce, "prelude": s.prelude}
        if s.kind == "call":
            code["inputs"] = [_plain.encode(tuple(args)) for args, _ in s.tests]
            parts = [code]
        else:
            parts = [code, {"test_code": s.test_code, "entry": s.entry, "nonce": nonce, "prelude": s.prelude}]
        blobs = [json.dumps(p).encode() for p in parts]
        head = {
            "id": i,
            "kind": s.kind,
            "time_limit": s.time_limit,
            "memory_mb": self.memory_mb,
            "result_cap": self.result_cap,
            "sizes": [len(b) for b in blobs],
        }
        start = w.jobs[-1][1] - HOST_GRACE_S if w.jobs else time.monotonic()
        w.jobs.append((i, start + s.time_limit + HOST_GRACE_S))
        with contextlib.suppress(OSError):  # it died between jobs: the reply loop sees its stream end
            w.send(json.dumps(head).encode(), *blobs)


def _refuse(s: Sample) -> str:
    if not isinstance(s.code, str) or len(s.code) > MAX_CODE_CHARS or "\x00" in s.code:
        return "code is not text under 100k characters"
    if not isinstance(s.entry, str) or not s.entry.isidentifier():
        return "entry point is not an identifier"
    if s.kind not in ("call", "check") or not s.time_limit > 0:
        return "bad sample"
    return ""


def _judge(s: Sample, frame: bytes, raw_payload: bytes, raw_output: bytes, nonce: str) -> Result:
    """Turn a worker reply into a Result; everything from the child is untrusted and decoded strictly."""
    total = len(s.tests) if s.kind == "call" else 1
    try:
        reply = json.loads(frame)
        status, output = reply["status"], raw_output.decode("utf-8", "replace")[:4096]
    except (ValueError, KeyError, TypeError):
        return Result("crash", total=total, detail="garbled worker reply")
    if status == "timeout":
        return Result("timeout", total=total, output=output)
    if status != "done":
        sig = reply.get("signal") or 0
        return Result(
            "crash", total=total, detail=f"{status} (signal {sig})" if sig else status, output=output
        )
    try:
        payload = json.loads(raw_payload.decode("utf-8", "replace"), parse_constant=_plain._no_constants)
        if type(payload) is not list or len(payload) != 2 or payload[0] != nonce:
            raise _plain.PlainError("no result frame with this call's nonce")
        body = payload[1]
        if type(body) is not list or not body:
            raise _plain.PlainError("empty result")
        if s.kind == "check":
            if body[0] != "done" or len(body) != 3 or body[1] not in ("pass", "fail"):
                raise _plain.PlainError("bad check result")
            ok = body[1] == "pass"
            return Result("pass" if ok else "fail", int(ok), 1, "" if ok else str(body[2])[:200], output)
        if body[0] == "load_error":
            return Result("fail", 0, total, f"load error: {str(body[1])[:200]}", output)
        if body[0] != "done" or type(body[1]) is not list or len(body[1]) != total:
            raise _plain.PlainError("result count does not match the tests")
        outcomes = []
        for (_, expected), got in zip(s.tests, body[1], strict=True):
            if type(got) is not list or len(got) != 2 or got[0] not in ("ok", "exc", "bad"):
                raise _plain.PlainError("bad test result")
            if got[0] == "ok":
                outcomes.append(
                    "pass" if _plain.same(_plain.decode(got[1]), expected, s.float_tol) else "wrong"
                )
            else:
                outcomes.append(f"{got[0]}:{str(got[1])[:60]}")
    except (_plain.PlainError, ValueError, TypeError, KeyError, RecursionError) as exc:
        return Result("crash", total=total, detail=f"rejected result: {exc}"[:200], output=output)
    passed = outcomes.count("pass")
    first_bad = next((o for o in outcomes if o != "pass"), "")
    return Result("pass" if passed == total else "fail", passed, total, first_bad, output, outcomes)


def _warn_fallback() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "bubblewrap is not available: sandboxed code runs with fork + seccomp + Landlock (where the "
            "kernel has it) + rlimits, without namespaces. Install bubblewrap, or set %s=1 to refuse "
            "to run without it.",
            STRICT_ENV,
        )


# ---- one pool per process, made on first use ----------------------------------------------------------
_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process's shared pool, created lazily (a forked or spawned worker process makes its own)."""
    global _default
    with _default_lock:
        if _default is None or _default._pid != os.getpid() or _default._closed:
            workers = int(os.environ.get("TASKFORGE_SANDBOX_WORKERS", "0")) or None
            _default = Sandbox(workers)
        return _default
