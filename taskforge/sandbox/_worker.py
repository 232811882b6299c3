"""The long-lived sandbox worker. Stdlib + pyseccomp only: it runs as `python -I -S` inside bubblewrap.

Protocol on fds 0/1: length-prefixed frames. A job is a small JSON header (id, kind, limits, the sizes of
its data parts) followed by the data parts as raw bytes (code, inputs, nonce; never expected outputs).
For each job the worker forks a child that takes rlimits, drops to an unprivileged uid (when it is
root), loads a seccomp filter, runs the untrusted code and writes a plain-data result, with the job's
nonce, on a dedicated pipe. The worker enforces the wall-clock deadline (SIGKILL to the child's process
group), caps what it reads, and always answers: a JSON header (status: done, timeout, crash or toolarge)
then two raw frames, the result and a capped prefix of the child's output.

A clean zygote: job data never enters this process's memory. The worker forks the child first, then
moves the job's bytes from its stdin to the child's pipe with splice(2), and the child's result and
output from their pipes into memfds and on to stdout the same way: kernel to kernel, never through this
heap. Every child is therefore forked from a heap that has held no other job's data: not the reference
solution of a generated task, not another task's test code, not another candidate's source or output
(a child can read all of its own address space, with ctypes and write(pipe, addr, n); issue 10).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import select
import signal
import struct
import sys
import time

import _plain

# Imported once here so that solutions find them without reading files (the child may not be able to).
PRELOAD = [
    "array",
    "bisect",
    "collections",
    "copy",
    "dataclasses",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "unicodedata",
]

NOBODY = 65534
OUTPUT_KEEP = 4096
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
libc = ctypes.CDLL(None, use_errno=True)
_HEADER = struct.Struct(">I")


# ---- framing ---------------------------------------------------------------------------------------
def read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(fd: int) -> bytes | None:
    head = read_exact(fd, _HEADER.size)
    return None if head is None else read_exact(fd, _HEADER.unpack(head)[0])


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_frame(fd: int, data: bytes) -> None:
    write_all(fd, _HEADER.pack(len(data)) + data)


# ---- moving job data without touching it ---------------------------------------------------------------
_null_w = -1


def feed(inp: int, dst: int, size: int) -> bool:
    """Move `size` bytes from the protocol pipe to `dst` (a child's pipe) inside the kernel, then close
    `dst`. False if the child stopped reading (the rest goes to /dev/null: the stream stays in step)."""
    ok = True
    try:
        while size:
            try:
                n = os.splice(inp, dst if ok else _null_w, min(size, 1 << 20))
            except BrokenPipeError:
                ok = False
                continue
            if not n:
                raise EOFError("host closed the stream inside a job")
            size -= n
    finally:
        os.close(dst)
    return ok


def send_fd(out: int, fd: int, size: int) -> None:
    """A raw frame whose body is the first `size` bytes of the memfd `fd`, spliced to `out`."""
    write_all(out, _HEADER.pack(size))
    offset = 0
    while offset < size:
        n = os.splice(fd, out, size - offset, offset_src=offset)
        if not n:
            raise OSError(errno.EIO, "short memfd")
        offset += n


# ---- the seccomp policy ----------------------------------------------------------------------------
# Reviewed as an allow-list question (issue 10). What a pure-Python function needs, measured with strace
# on CPython 3.11 (the preloaded modules, then a thread, a sleep, late imports of hashlib/datetime/zlib
# and a print): memory (brk, mmap, munmap, mremap, mprotect, madvise), threads (clone with
# CLONE_THREAD, clone3 falling back to clone, futex, set_robust_list, rseq), reading files
# for lazy imports (openat read-only, read, pread64, newfstatat, fstat, lseek, getdents64, readlink,
# close), its own pipes (write, writev, dup/dup2/dup3, fcntl, ioctl for isatty, pipe2, poll/select),
# time (clock_gettime, clock_nanosleep, nanosleep), signals to itself (rt_sig*, sigaltstack), getrandom,
# identity queries (gettid, getcwd, access, uname, sysinfo, prlimit64 on itself), set_tid_address,
# arch_prctl, and exit/exit_group.
# Everything else is either harmless inside the process (memfd_create, splice, epoll, eventfd, ...) or
# denied below by family: whatever reaches another process, the kernel's shared state or the file
# system. The default action stays ALLOW rather than a strict allow-list on purpose: the set above
# changes with glibc and CPython releases (clone3, rseq, faccessat2, epoll_pwait2 arrived that way), and
# a missing entry would fail correct answers silently (reward 0 for right code: a training bug nobody
# sees), while each family denied here is closed whatever the version. A new kernel interface that
# shares state between processes must be added here: that is the review question for each upgrade.
# Denied with EPERM: new processes, exec, sockets, tracing, mounts and namespaces, signals to others,
# System V IPC and POSIX message queues, writing to the file system (threads, memory, reading and pipes
# keep working).
DENY = (
    # processes, exec, sockets, tracing
    (
        "socket",
        "socketpair",
        "execve",
        "execveat",
        "fork",
        "vfork",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
    )
    # signals to other processes
    + (
        "kill",
        "tkill",
        "tgkill",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "pidfd_open",
        "pidfd_send_signal",
        "pidfd_getfd",
    )
    # mounts and namespaces
    + (
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
    )
    + ("fsconfig", "fspick")
    # changing the file system
    + (
        "creat",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "mkdir",
        "mkdirat",
        "rmdir",
        "link",
        "linkat",
    )
    + (
        "symlink",
        "symlinkat",
        "chmod",
        "fchmod",
        "fchmodat",
        "chown",
        "fchown",
        "lchown",
        "fchownat",
        "truncate",
    )
    + ("ftruncate", "mknod", "mknodat", "utime", "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr")
    + ("fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "name_to_handle_at", "open_by_handle_at")
    # kernel interfaces that bypass or widen the rest
    + (
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
    )
    + (
        "add_key",
        "request_key",
        "personality",
        "fanotify_init",
        "lookup_dcookie",
        "iopl",
        "ioperm",
        "syslog",
        "acct",
    )
    + (
        "reboot",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "swapon",
        "swapoff",
    )
    + ("settimeofday", "clock_settime", "sethostname", "setdomainname", "quotactl")
    # System V IPC and POSIX message queues: objects that outlive the process (a 2 s sample held 288 MiB
    # of shared memory in the host until its worker died, and a later sample read it back)
    + ("shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop")
    + ("semtimedop", "semctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive")
    + ("mq_notify", "mq_getsetattr")
    # other processes' memory and memory policy, kernel object comparison
    + ("process_madvise", "process_mrelease", "kcmp", "move_pages", "migrate_pages", "mbind")
    + ("set_mempolicy", "set_mempolicy_home_node", "quotactl_fd", "mount_setattr")
    # credentials
    + (
        "setuid",
        "setgid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "setgroups",
        "setfsuid",
        "setfsgid",
        "capset",
    )
)
ESSENTIAL = {
    "socket",
    "execve",
    "execveat",
    "clone",
    "clone3",
    "kill",
    "ptrace",
    "mount",
    "unshare",
    "openat",
    "io_uring_setup",
    "shmget",
    "msgget",
    "semget",
    "mq_open",
}


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def compile_filter() -> tuple[SockFprog, ctypes.Array]:
    """The policy as a BPF program, built once by libseccomp; each child installs it with one prctl."""
    r, w = os.pipe()
    with os.fdopen(w, "wb") as sink:
        build_filter().export_bpf(sink)
    with os.fdopen(r, "rb") as source:
        code = source.read()
    buf = ctypes.create_string_buffer(code, len(code))
    return SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p)), buf


def install_filter(prog: SockFprog) -> None:
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if landlock_fd >= 0:
        if libc.syscall(LL_RESTRICT, landlock_fd, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
        os.close(landlock_fd)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


# ---- Landlock: the file system the child may read ------------------------------------------------------
# Read-only access to the interpreter's installation and the system libraries, nothing else (no /etc,
# no /proc, no home, no dataset files), and no write anywhere. Kernels without Landlock skip this layer;
# bubblewrap's mount namespace and the seccomp filter still apply.
LL_CREATE, LL_ADD_RULE, LL_RESTRICT = 444, 445, 446
LL_EXECUTE, LL_READ_FILE, LL_READ_DIR = 1, 4, 8
landlock_fd = -1


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_ruleset(paths: list[str]) -> int:
    """A ruleset fd built once in the worker; -1 if the kernel has no Landlock."""
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(LL_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return -1
    handled = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0)
    attr = ctypes.c_uint64(handled)
    fd = libc.syscall(LL_CREATE, ctypes.byref(attr), 8, 0)
    if fd < 0:
        return -1
    for path in paths:
        try:
            parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        rule = PathBeneath(LL_EXECUTE | LL_READ_FILE | LL_READ_DIR, parent)
        libc.syscall(LL_ADD_RULE, fd, 1, ctypes.byref(rule), 0)  # LANDLOCK_RULE_PATH_BENEATH
        os.close(parent)
    return fd


def readable_paths() -> list[str]:
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable)), "/usr"}
    paths |= {os.path.realpath(p) for p in ("/lib", "/lib64", "/lib32", "/bin")}
    return sorted(p for p in paths if os.path.isdir(p))


def build_filter():  # -> pyseccomp.SyscallFilter
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    with contextlib.suppress(OSError, ValueError, RuntimeError, AttributeError):
        # A binary tree over syscall numbers, not a linear scan: the same policy in fewer instructions,
        # which each child's kernel emulates once per syscall number when it loads the filter.
        f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    deny = sc.ERRNO(errno.EPERM)

    def rule(action: int, name: str, *args) -> None:
        try:
            f.add_rule(action, name, *args)
        except (OSError, ValueError, RuntimeError):
            if name in ESSENTIAL:  # never run without these
                raise
            # otherwise: not a syscall on this architecture (open, fork, ... on aarch64)

    for name in DENY:
        rule(deny, name)
    # ENOSYS, not EPERM: glibc then falls back from clone3 to clone, whose flags we can inspect.
    for name in ("clone3", "openat2"):
        rule(sc.ERRNO(errno.ENOSYS), name)
    clone_thread = 0x00010000
    rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, clone_thread, 0))  # a process, not a thread
    for flag in (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND):
        rule(deny, "openat", sc.Arg(2, sc.MASKED_EQ, flag, flag))
        rule(deny, "open", sc.Arg(1, sc.MASKED_EQ, flag, flag))
    rule(deny, "prlimit64", sc.Arg(0, sc.NE, 0))  # its own limits only (and only downwards)
    return f


# ---- the forked child ------------------------------------------------------------------------------
def confine(job: dict, seccomp_filter) -> None:
    """Limits, privileges and the syscall filter, in that order (setuid is itself filtered)."""
    cpu = max(1, int(job["time_limit"]) + 1)
    mem = int(job["memory_mb"]) * 2**20
    for limit, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (0, 0)),
        (resource.RLIMIT_NOFILE, (32, 32)),
        (resource.RLIMIT_NPROC, (256, 256)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(limit, value)
    if os.getuid() == 0:
        drop_root(keep_read=landlock_fd >= 0)
    elif in_user_ns and libc.syscall(CAPSET, _CAP_HEADER, _NO_CAPS) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    # After the uid change, which clears it: the child dies with the worker.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    install_filter(seccomp_filter)


CAPSET = {"x86_64": 126, "aarch64": 91}.get(os.uname().machine)
PR_SET_KEEPCAPS, CAP_DAC_READ_SEARCH = 8, 2
# Built once in the worker: making a ctypes array type in each child costs it ~70 page faults.
_CAP_HEADER = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
_CAP_BIT = 1 << CAP_DAC_READ_SEARCH
_CAP_DATA = (ctypes.c_uint32 * 6)(_CAP_BIT, _CAP_BIT, 0, 0, 0, 0)  # effective, permitted, inheritable (x2)
_NO_CAPS = (ctypes.c_uint32 * 6)(0, 0, 0, 0, 0, 0)


def drop_root(keep_read: bool) -> None:
    """Become nobody. With Landlock confining reads, keep CAP_DAC_READ_SEARCH alone, so that an
    interpreter installed under a private home (/root/.pyenv) can still import lazily."""
    keep_read = keep_read and CAPSET is not None
    if keep_read:
        libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    if keep_read and libc.syscall(CAPSET, _CAP_HEADER, _CAP_DATA) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def child_run(job: dict) -> list:
    """Run the solution on every input; each result is encoded right away (later mutation cannot help)."""
    namespace: dict = {"__name__": "__solution__"}
    try:
        exec(compile(job["code"], "<solution>", "exec"), namespace)
        func = namespace[job["entry"]]
        if not callable(func):
            raise TypeError(f"{job['entry']} is not callable")
    except BaseException as exc:  # SystemExit and friends included: loading the code failed
        return ["load_error", _exc_name(exc)]
    results = []
    for raw in job["inputs"]:
        try:
            args = _plain.decode(raw)
            value = func(*args)
        except BaseException as exc:
            results.append(["exc", _exc_name(exc)])
            continue
        try:
            results.append(["ok", _plain.encode(value)])
        except BaseException as exc:
            results.append(["bad", _exc_name(exc)])
    return ["done", results]


def child_check(job: dict, req_w: int, resp_r: int) -> list:
    """Assert-style tests: `check(candidate)` runs here, the candidate runs in a sibling process.

    The candidate never sees the test code; every call crosses as plain data, so what the asserts
    compare is plain data too (no always-equal object survives the trip). HumanEval's harness runs
    prompt + completion + test in one namespace: the trusted prompt (`prelude`) runs here first, so the
    test finds the helpers it defines (`poly`, `encode_cyclic`), and the entry point's name is bound to
    the candidate's proxy (`check` may call `sort_third(...)` by name).
    """

    class CandidateError(Exception):
        pass

    def candidate(*args):
        write_frame(req_w, _plain.dumps(list(args)).encode())
        frame = read_frame(resp_r)
        if frame is None:
            raise CandidateError("candidate died")
        status, body = _plain.loads(frame)
        if status != "ok":
            raise CandidateError(body)
        return body

    namespace: dict = {"__name__": "__check__"}
    try:
        if job.get("prelude"):
            exec(compile(job["prelude"], "<prompt>", "exec"), namespace)
        namespace[job["entry"]] = candidate
        exec(compile(job["test_code"], "<test>", "exec"), namespace)
        namespace[job.get("check_name", "check")](candidate)
    except BaseException as exc:
        return ["done", "fail", _exc_name(exc)]
    return ["done", "pass", ""]


def candidate_server(job: dict, req_r: int, resp_w: int) -> None:
    namespace: dict = {"__name__": "__solution__"}
    try:
        if job.get("prelude"):  # the prompt's helpers, as HumanEval runs prompt + completion
            exec(compile(job["prelude"], "<prompt>", "exec"), namespace)
        exec(compile(job["code"], "<solution>", "exec"), namespace)
        func = namespace[job["entry"]]
    except BaseException as exc:
        func, load_error = None, _exc_name(exc)
    while True:
        frame = read_frame(req_r)
        if frame is None:
            return
        try:
            if func is None:
                raise RuntimeError(f"load error: {load_error}")
            reply = ["ok", func(*_plain.loads(frame))]
            data = _plain.dumps(reply)
        except BaseException as exc:
            data = _plain.dumps(["exc", _exc_name(exc)])
        write_frame(resp_w, data.encode())


def _exc_name(exc: BaseException) -> str:
    try:
        return type(exc).__name__[:100]
    except BaseException:
        return "BaseException"


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def spawn(meta: dict, seccomp_filter, body, keep: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Fork a confined child running `body(job, *keep)`; returns (pid, data fd, result fd, output fd).

    The child's job data does not exist yet: the worker writes it to the data fd after the fork."""
    data_r, data_w = os.pipe()
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            # Close everything else, the worker's protocol pipe first of all: a forged frame there
            # would reach the host.
            low = 3
            for fd in sorted({data_r, res_w, *keep, landlock_fd} - {-1}):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, 1 << 16)
            job = {**meta, **json.loads(read_all(data_r))}
            os.close(data_r)
            confine(job, seccomp_filter)
            result = body(job, *keep)
            payload = json.dumps([job["nonce"], result], separators=(",", ":")).encode()
            write_all(res_w, payload)
            os.close(res_w)  # the worker answers at this end of stream, not at our (slower) exit
        finally:
            os._exit(0)  # whatever happened (even a BaseException): no return into the worker's loop
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    for fd in (data_r, res_w, out_w):
        os.close(fd)
    return pid, data_w, res_r, out_r


_unreaped: list[int] = []


def reap() -> None:
    """Collect exited children without waiting (their exit is slow under load; the verdict is not)."""
    for pid in list(_unreaped):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _unreaped.remove(pid)


def collect(
    pid: int, res_r: int, out_r: int, deadline: float, result_cap: int
) -> tuple[dict, int, int, int, int]:
    """Move the child's result (and a capped prefix of its output) into memfds until the result pipe
    closes or the deadline passes; then kill its process group, so lingering threads die with it.
    Returns (reply header, result memfd, its size, output memfd, its size); nothing passes this heap."""
    result = os.memfd_create("result", os.MFD_CLOEXEC)
    output = os.memfd_create("output", os.MFD_CLOEXEC)
    got = kept = 0
    status, open_fds = "done", [res_r, out_r]
    while res_r in open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            status = "timeout"
            break
        for fd in select.select(open_fds, [], [], left)[0]:
            if fd == res_r:
                n = os.splice(fd, result, 1 << 16)
                got += n
            elif kept < OUTPUT_KEEP:
                n = os.splice(fd, output, OUTPUT_KEEP - kept)
                kept += n
            else:  # past the kept prefix: drained, never stored
                n = os.splice(fd, _null_w, 1 << 16)
            if not n:
                open_fds.remove(fd)
        if got > result_cap:
            status = "toolarge"
            break
    if out_r in open_fds and kept < OUTPUT_KEEP:  # what was printed before the result
        os.set_blocking(out_r, False)
        with contextlib.suppress(OSError):
            kept += os.splice(out_r, output, OUTPUT_KEEP - kept)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    signum = 0
    if status == "done" and got:
        _unreaped.append(pid)
    else:
        _, wstatus = os.waitpid(pid, 0)
        signum = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else 0
        if status == "done":
            status = "crash"
    os.close(res_r)
    os.close(out_r)
    return {"status": status, "signal": signum}, result, got if status == "done" else 0, output, kept


def run_job(meta: dict, seccomp_filter, inp: int) -> tuple[dict, int, int, int, int]:
    reap()
    deadline = time.monotonic() + float(meta["time_limit"])
    cap = int(meta["result_cap"])
    sizes = [int(n) for n in meta["sizes"]]
    if meta["kind"] == "call":
        pid, data_w, res_r, out_r = spawn(meta, seccomp_filter, child_run, ())
        feed(inp, data_w, sizes[0])
        return collect(pid, res_r, out_r, deadline, cap)
    # kind == "check": the candidate serves calls from a sibling that runs the test code. Both are
    # forked before any data moves; the candidate's pipe gets the code, the sibling's the test code
    # (it holds the expected values), so neither ever was in the candidate's memory.
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    server, s_data, s_res, s_out = spawn(meta, seccomp_filter, candidate_server, (req_r, resp_w))
    pid, data_w, res_r, out_r = spawn(meta, seccomp_filter, child_check, (req_w, resp_r))
    for fd in (req_r, req_w, resp_r, resp_w):
        os.close(fd)
    feed(inp, s_data, sizes[0])
    feed(inp, data_w, sizes[1])
    reply = collect(pid, res_r, out_r, deadline, cap)
    _, *fds = collect(server, s_res, s_out, time.monotonic(), cap)  # kills and reaps the candidate
    for fd in fds[::2]:
        os.close(fd)
    return reply


CLONE_NEWUSER, CLONE_NEWIPC = 0x10000000, 0x08000000
in_user_ns = False


def private_ipc() -> bool:
    """The fallback mode's own IPC namespace (bubblewrap gives one already): System V objects and POSIX
    queues made here are invisible to the host and die with the worker. Root can unshare it directly;
    a plain user needs a user namespace around it, where the kernel allows one (children then drop
    the capabilities that namespace gives them)."""
    global in_user_ns
    if libc.unshare(CLONE_NEWIPC) == 0:
        return True
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWIPC) == 0:
        in_user_ns = True
        return True
    return False


def main() -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # no orphan worker if the host dies (bwrap: pid 1 does)
    # The loader read LD_BIND_NOW at start (and keeps honouring it for later dlopens); the code we run
    # sees the same environment as before (LANG, PATH, PWD).
    os.environ.pop("LD_BIND_NOW", None)
    ipc_ns = private_ipc() if sys.argv[2:3] == ["fallback"] else True
    for name in PRELOAD:
        __import__(name)
    seccomp_filter, _keep_alive = compile_filter()
    global landlock_fd, _null_w
    landlock_fd = landlock_ruleset(readable_paths())
    sys.dont_write_bytecode = True
    inp, out = os.dup(0), os.dup(1)
    # Stray prints (ours or a library's) must never corrupt the protocol stream.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    _null_w = null
    write_frame(out, json.dumps({"ready": True, "landlock": landlock_fd >= 0, "ipc_ns": ipc_ns}).encode())
    while True:
        frame = read_frame(inp)
        if frame is None:
            return
        meta = json.loads(frame)  # ids, sizes and limits only: the data stays in the pipe
        try:
            reply, result, got, output, kept = run_job(meta, seccomp_filter, inp)
        except Exception as exc:  # a worker bug: report it, then leave (the stream may be out of step)
            write_frame(out, json.dumps({"id": meta.get("id"), "status": "crash", "signal": 0}).encode())
            write_frame(out, b"")
            write_frame(out, f"worker: {exc!r}"[:500].encode())
            os._exit(1)
        reply["id"] = meta["id"]
        write_frame(out, json.dumps(reply).encode())
        send_fd(out, result, got)
        send_fd(out, output, kept)
        os.close(result)
        os.close(output)


if __name__ == "__main__":
    main()
