"""System V IPC and POSIX message queues (issue 10): a sample could hold shared memory in the host after
it ended and a later sample could read it. The child's filter denies them; the fallback mode's worker
has an IPC namespace of its own where the kernel allows one."""

from __future__ import annotations

import os

import pytest

from taskforge.sandbox import Sample, Sandbox, bubblewrap_available

MODES = (["bubblewrap"] if bubblewrap_available() else []) + ["fallback"]

PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def solve(name):
    if name == "shm":
        r = libc.shmget(0, 1 << 20, 0o1600)
    elif name == "msg":
        r = libc.msgget(0, 0o1600)
    elif name == "sem":
        r = libc.semget(0, 1, 0o1600)
    else:
        r = libc.mq_open(b"/taskforge-probe", os.O_CREAT | os.O_RDWR, 0o600, None)
    return "denied" if r == -1 and ctypes.get_errno() == 1 else "allowed:%d:%d" % (r, ctypes.get_errno())
"""


@pytest.fixture(scope="module", params=MODES)
def box(request):
    with Sandbox(1, isolation=request.param) as b:
        yield b


def test_sysv_ipc_and_message_queues_are_denied(box) -> None:
    kinds = ["shm", "msg", "sem", "mq"]
    result = box.run([Sample(PROBE, "solve", tests=[((k,), "denied") for k in kinds], time_limit=5.0)])[0]
    assert result.status == "pass", (result, result.outcomes)


def test_workers_have_their_own_ipc_namespace(box) -> None:
    layers = box.layers()
    if box.isolation == "bubblewrap" or os.getuid() == 0:
        assert layers["ipc_namespace"], layers
    if box.isolation == "bubblewrap":
        return  # the pid is bwrap's; --unshare-all gives the worker below it a new IPC namespace
    worker = layers["workers"][0]
    try:
        own = os.readlink(f"/proc/{worker}/ns/ipc")
    except OSError:
        pytest.skip("cannot read the worker's namespaces here")
    if layers["ipc_namespace"]:
        assert own != os.readlink("/proc/self/ns/ipc")
