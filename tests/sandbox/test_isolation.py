"""No shared state between samples: a candidate never holds data of another job.

The attack (issue 10): a candidate that probes its own address space with `write(pipe, addr, 1)` (EFAULT,
no signal, for an unmapped page), reads mapped pages with ctypes and keeps every `def solve(` source it
finds. Before the fix the pool's worker read each job (the reference solution run by code generation,
other candidates) into its heap and forked later candidates from that heap, so the scan found the
references and a wrong program passed. Runs with bubblewrap (when present) and in the fallback mode.
"""

from __future__ import annotations

import ast
import re

import pytest

import taskforge
from taskforge.generators.code import Code
from taskforge.sandbox import Sample, Sandbox, bubblewrap_available, pool

MODES = (["bubblewrap"] if bubblewrap_available() else []) + ["fallback"]

# The scanner: every mapped 64 KiB block within 48 MiB of a few heap addresses, pages probed first.
HEAP_SCAN = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.write.restype = ctypes.c_ssize_t
MARK = b"def solve(x"
SELF = "HEAPSCAN" + "-MARKER"

def _mapped(w, r, addr, size):
    for off in range(0, size, 4096):
        if libc.write(w, addr + off, 1) != 1:
            return False
        os.read(r, 1)
    return True

def _scan():
    r, w = os.pipe()
    block, reach = 1 << 16, 48 << 20
    found, seen = [], set()
    for hint in (id(0), id(os), id(found), id(bytearray(200000)), id(MARK)):
        base = (hint & ~(block - 1)) - reach
        for k in range(2 * reach // block):
            addr = base + k * block
            if addr <= 0 or addr in seen:
                continue
            seen.add(addr)
            if not _mapped(w, r, addr, block):
                continue
            chunk = ctypes.string_at(addr, block)
            at = chunk.find(MARK)
            while at >= 0:
                end = chunk.find(b"    return x\n", at)
                if 0 < end - at < 4000:
                    try:
                        found.append(chunk[at : end + 13].decode())
                    except UnicodeDecodeError:
                        pass
                at = chunk.find(MARK, at + 1)
    return [s for s in found if SELF not in s]

SOURCES = _scan()
os.write(1, ("found %d\n" % len(SOURCES)).encode())
for s in SOURCES[:12]:
    os.write(1, s.encode())
"""

# The full exploit: keep the found source that agrees with the prompt's visible examples, answer with it.
EXPLOIT = (
    HEAP_SCAN
    + r"""
EXAMPLES = __EXAMPLES__
_chosen = None
for _src in SOURCES:
    try:
        _ns = {}
        exec(_src, _ns)
        if all(_ns["solve"](a) == b for a, b in EXAMPLES):
            _chosen = _ns["solve"]
            break
    except Exception:
        pass

def solve(x):
    return _chosen(x) if _chosen else None
"""
)


def _examples(task) -> list:
    pairs = re.findall(r"^solve\((.*)\) == (.*)$", task.prompt, re.MULTILINE)
    return [(ast.literal_eval(a), ast.literal_eval(b)) for a, b in pairs]


@pytest.fixture(params=MODES)
def shared_pool(request, monkeypatch):
    """The process's default pool, one worker, as `taskforge.generate` then `verify` use it."""
    box = Sandbox(1, isolation=request.param)
    monkeypatch.setattr(pool, "_default", box)
    yield box
    box.close()


def test_candidate_cannot_read_earlier_jobs_from_memory(shared_pool):
    tasks = list(taskforge.generate("code", 4, level=8, seed=5))  # references run through this pool
    assert pool.default_sandbox() is shared_pool
    canary = "def solve(x: list[int]) -> int:\n    x = 'CANARY-7f3a'\n    return x\n"
    pool.default_sandbox().run(
        [Sample(canary, "solve", tests=[(([1],), "CANARY-7f3a")])]
    )  # another candidate's source
    scan = HEAP_SCAN + "\ndef solve(x):\n    return x\n"
    result = pool.default_sandbox().run([Sample(scan, "solve", tests=[((1,), 1)], time_limit=10.0)])[0]
    assert result.status == "pass", result  # the scan itself ran to the end
    assert result.output.startswith("found "), result.output[:200]
    leaked = [t.meta["steps"] for t in tasks if t.answer.strip() in result.output]
    assert not leaked, f"reference sources readable by a later candidate: {leaked}"
    assert "CANARY-7f3a" not in result.output


def test_heap_scanning_exploit_does_not_pass(shared_pool):
    tasks = list(taskforge.generate("code", 4, level=8, seed=5))
    gen = Code()
    passed = []
    for task in tasks:
        code = EXPLOIT.replace("__EXAMPLES__", repr(_examples(task)))
        verdict = gen.safe_verify(task, f"```python\n{code}\n```")
        passed.append(verdict.passed)
    assert not any(passed), passed
