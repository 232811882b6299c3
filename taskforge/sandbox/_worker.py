"""The long-lived sandbox worker. Stdlib + pyseccomp only: it runs as `python -I -S` inside bubblewrap.

Protocol on fds 0/1: length-prefixed frames. A job is a small JSON header (id, kind, limits, the sizes of
its data parts) followed by the data parts as raw bytes (code, inputs, nonce; never expected outputs).
For each job the worker forks a child that takes rlimits, drops to an unprivileged uid (when it is
root), loads a seccomp filter, runs the untrusted code and writes a plain-data result, with the job's
nonce, on a dedicated pipe. The worker enforces the wall-clock deadline (SIGKILL to the child's process
group), caps what it reads, and always answers: a JSON header (status: done, timeout, crash or toolarge)
then two raw frames, the result and a capped prefix of the child's output.

Assert-style jobs (kind "check", HumanEval's `check(candidate)`) fork only the candidate: the test runs
in the worker's judge, a child forked from this zygote like any other and confined alike, which serves
sample after sample (see "assert-style tests" below); the candidate answers its calls in batches.

A clean zygote: job data never enters this process's memory. The worker forks the child first, then
moves the job's bytes from its stdin to the child's pipe with splice(2), and the child's result and
output from their pipes into memfds and on to stdout the same way: kernel to kernel, never through this
heap. Every child is therefore forked from a heap that has held no other job's data: not the reference
solution of a generated task, not another task's test code, not another candidate's source or output
(a child can read all of its own address space, with ctypes and write(pipe, addr, n); issue 10). The
judge holds test code, but no candidate is ever forked from it, and it is not dumpable (no same-uid
process may open its memory).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import errno
import json
import os
import random
import resource
import select
import signal
import socket
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
F_SETOWN, F_SETSIG, F_SETOWN_EX, FIOSETOWN, SIOCSPGRP = 8, 10, 15, 0x8901, 0x8902  # x86_64 and aarch64
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
    """The policy as a BPF program, built once by libseccomp; each child installs it with one prctl.

    Built in a throwaway child: libseccomp and its bindings never load into this zygote, whose every
    mapped page each fork copies (1.7 MB less to copy: ~0.5 ms of CPU per sample on these machines)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            with os.fdopen(w, "wb") as sink:
                build_filter().export_bpf(sink)
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as source:
        code = source.read()
    _, wstatus = os.waitpid(pid, 0)
    if wstatus != 0 or not code or len(code) % 8:
        raise RuntimeError("the seccomp filter could not be built (is libseccomp2 installed?)")
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
    # Signals by another road than kill(2): an fd's owner is sent SIGIO, or any signal F_SETSIG names,
    # SIGKILL included, when the fd becomes ready, under kill's permission check (same uid: a judge,
    # other samples' children). No owner, no signal: setting one is denied, by fcntl and by ioctl.
    for cmd in (F_SETOWN, F_SETSIG, F_SETOWN_EX):
        rule(deny, "fcntl", sc.Arg(1, sc.EQ, cmd))
    for request in (FIOSETOWN, SIOCSPGRP):
        rule(deny, "ioctl", sc.Arg(1, sc.EQ, request))
    # Another process's priority, scheduling or CPUs: a judge that serves 256 samples set to SCHED_IDLE
    # would time out right answers long after the candidate that did it. Its own (pid 0) stay allowed.
    for name in ("sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr"):
        rule(deny, name, sc.Arg(0, sc.NE, 0))
    rule(deny, "setpriority", sc.Arg(0, sc.NE, 0))  # PRIO_PROCESS only (not a group, not a user)
    rule(deny, "setpriority", sc.Arg(1, sc.NE, 0))
    rule(deny, "ioprio_set", sc.Arg(0, sc.NE, 1))  # IOPRIO_WHO_PROCESS only, itself only
    rule(deny, "ioprio_set", sc.Arg(1, sc.NE, 0))
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


# ---- assert-style tests: a judge that runs `check`, a candidate that answers calls -----------------------
# HumanEval's harness runs prompt + completion + test in one namespace. Here `check(candidate)` runs in a
# judge process and the candidate in a sibling forked for its sample; every call crosses as plain data,
# so what the asserts compare is plain data too (no always-equal object survives the trip), and the
# candidate never holds the test code or its expected values.
#
# Where the time went (issue 16): a judge forked per sample (a second fork, ~3 ms of CPU each on these
# machines) and a round trip per call (two wake-ups each, several ms apiece on a loaded machine). So:
# - One judge per worker serves sample after sample (forked from the clean zygote like every child, and
#   confined the same way). It only ever runs the trusted test code on plain data; each sample gets
#   fresh pipes to its candidate, so nothing an earlier candidate wrote can reach a later sample.
# - Calls are prefetched: the judge first runs `check` dry, with a stand-in for each result, to learn
#   the arguments of the calls it will make; they go to the candidate in one frame, the candidate
#   answers them in order, and the real run of `check` takes the answers as it makes the same calls
#   (any call that differs, e.g. one whose arguments depend on an earlier result, is asked live). The
#   verdict comes from the real run alone, exactly as before.
# - Look-ahead: the candidate sees a call's arguments before earlier answers are judged. Where an
#   argument equals a value the dry run compared an earlier result with (`f(a) == b`, then `f(b)`), the
#   batch is cut there: that call is sent only once the real run has judged the earlier answers.
JUDGE_SEED = 0  # `random` is reseeded before each run of check: the dry run and the real run draw alike
JUDGE_JOBS = 256  # a judge serves this many samples, then a fresh one is forked (bounded drift)
JUDGE_CPU_S = 3600  # the judge's own CPU rlimit; each sample's wall deadline still bounds every run
MAX_PREFETCH = 10_000  # calls learned by one dry run
BATCH_MAX = 256  # calls sent at once: what a divergent run may make the candidate compute in vain
MAX_COMPARAND_CHARS = 10_000
MAX_SUBSTRING_SCANS = 10_000  # compared strings x argument strings looked through for one call
PR_SET_DUMPABLE = 4


class CandidateError(Exception):
    """The candidate raised, died or answered garbage. Where it raised an exception of a type below, the
    judge raises a subclass of both (`except ValueError` in a test catches the candidate's ValueError,
    as in HumanEval's in-process harness); anything else is this type itself."""


# Exception types the judge re-raises in the trusted test code, by builtin name (a candidate's own
# subclass crosses as its nearest builtin one on this list). The candidate only ever sends a name: the
# judge raises its own instance, with no candidate object or text in it. Chosen so that a raise can do
# nothing a wrong answer could use beyond what the test's own handlers grant it:
# - In: ordinary error types a test may expect (ArithmeticError, LookupError, ValueError, TypeError,
#   AttributeError, NameError, RuntimeError incl. NotImplementedError and RecursionError, OSError, each
#   with its builtin subclasses). None of them steers the judge's machinery: a candidate's exception is
#   raised only at the end of `Channel.call`, after the batch state is updated (no desync); the dry run
#   never sees one (its stand-ins do not raise them); and `judge_check` fails on anything that escapes.
# - AssertionError is in: only a handler in the test itself can catch it, and such a handler would
#   equally catch the test's own failing asserts, so it grants a candidate nothing the test does not;
#   tests of code that asserts its preconditions expect it.
# - Out: StopIteration and StopAsyncIteration (raised from a call inside `map`/`zip`/a generator they
#   end the test's loop early, skipping its asserts); every BaseException that is not an Exception
#   (SystemExit, KeyboardInterrupt, GeneratorExit); MemoryError (the judge's own state), Warning,
#   ImportError, SyntaxError, EOFError and the rest: rarely expected and not worth the surface. Types
#   whose constructor needs more than a message (UnicodeDecodeError, ...) cross as their nearest listed
#   base (UnicodeError). A load error is never one of these: a program that does not load fails all.
# Left as in-process Python: an IndexError ends a loop over a class the test gives a `__getitem__` that
# calls the candidate, and an AttributeError from a property that calls it falls back to `__getattr__`.
_RAISABLE_ROOTS = (ArithmeticError, LookupError, ValueError, TypeError, AttributeError, NameError)
_RAISABLE_ROOTS += (RuntimeError, AssertionError, OSError)


def _raisable() -> dict:
    table = {}
    for base in vars(builtins).values():
        if not (isinstance(base, type) and issubclass(base, _RAISABLE_ROOTS)):
            continue
        made = type(base.__name__, (CandidateError, base), {"__module__": "candidate"})
        try:
            made("probe")
        except TypeError:  # its constructor needs more than a message: crosses as a base
            continue
        table[base.__name__] = (base, made)
    return table


_RAISABLE = _raisable()  # builtin name -> (builtin type, the judge's CandidateError subclass of it)


def raised_name(exc: BaseException) -> str:
    """The name a candidate's exception crosses as: its nearest builtin type the judge re-raises, else
    its own type's name (which the judge turns into a plain CandidateError)."""
    try:
        for cls in type(exc).__mro__:
            entry = _RAISABLE.get(cls.__name__)
            if entry is not None and entry[0] is cls:
                return cls.__name__
    except BaseException:
        pass
    name = _exc_name(exc)
    return f"{name} (not the builtin)" if name in _RAISABLE else name  # a class of its own, so named


def candidate_raised(body: object) -> CandidateError:
    """The judge's exception for a candidate's "exc" answer (hostile plain data, any shape)."""
    entry = _RAISABLE.get(body) if type(body) is str else None
    if entry is None:
        return CandidateError(body[:100] if type(body) is str else "bad exception name")
    return entry[1](f"candidate raised {body}")


class _Unknown(Exception):
    """A dry-run result was used: what depends on it cannot be known before the candidate answers."""


class _DryRunOver(BaseException):
    """The dry run's budget is spent (a BaseException: a test's `except Exception` cannot hold it)."""


class _Pending:
    """The dry run's stand-in for a result: any use raises. A direct comparison (==, !=, <, ..., and
    truth, which is a comparison with True or False) notes what it was compared with; any other use
    (arithmetic, a function of it: len, sorted, str, math.isclose, a hash lookup) marks it opaque: what
    the test compares in the end cannot be known, so the batch ends after this call."""

    __slots__ = ("index", "notes")

    def __init__(self, index: int, notes: list) -> None:
        self.index, self.notes = index, notes

    def __bool__(self):
        _noting(self, True)

    def __getattr__(self, name):
        _opaque(self)


def _noting(self, other=None):
    try:
        norm = _norm(other) if len(_plain.dumps(other)) <= MAX_COMPARAND_CHARS else None
    except BaseException:  # not plain data (another result, say): what it holds is unknown
        norm = None
    if norm is None:
        _opaque(self)
    if self.notes[self.index] is not None:
        self.notes[self.index].add(norm)
    raise _Unknown


def _opaque(self, *args):
    self.notes[self.index] = None  # None: no batch goes on past this call
    raise _Unknown


for _op in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(_Pending, f"__{_op}__", _noting)
_USES = ("len", "iter", "reversed", "index", "int", "float", "complex", "abs", "neg", "pos", "invert")
_USES += ("round", "trunc", "floor", "ceil", "getitem", "contains", "str", "repr", "format", "bytes")
_USES += ("hash", "call", "enter")
for _op in _USES:
    setattr(_Pending, f"__{_op}__", _opaque)
_ARITHMETIC = ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow", "lshift")
for _op in (*_ARITHMETIC, "rshift", "and", "or", "xor"):
    setattr(_Pending, f"__{_op}__", _opaque)
    setattr(_Pending, f"__r{_op}__", _opaque)


def _norm(value: object) -> tuple:
    """A hashable form of plain data in which values that `==` may take as equal meet: 1 and 1.0, a list
    and a tuple of the same items (what a peek at a later argument can turn into an answer). True and
    False stay apart from 1 and 0: a bit the candidate may as well guess, and they would cut the
    batches of every test that asserts `== True` on number arguments."""
    t = type(value)
    if t is bool:
        return ("bool", value)
    if t is int:
        return ("n", value)
    if t is float:
        return ("n", int(value)) if value.is_integer() else ("n", value)
    if t is list or t is tuple:
        return ("q", tuple(_norm(v) for v in value))
    if t is set or t is frozenset:
        return ("set", frozenset(_norm(v) for v in value))
    if t is dict:
        return ("d", frozenset((_norm(k), _norm(v)) for k, v in value.items()))
    return (t.__name__, value)  # str, None


def _parts(norm: tuple, out: set) -> set:
    """A normalised value and every value nested in it; a list or tuple also as the set of its items
    (an answer compared with a set may be spelt as a list in a later argument)."""
    out.add(norm)
    tag, body = norm
    if tag == "q" or tag == "set":
        if tag == "q":
            out.add(("set", frozenset(body)))
        for v in body:
            _parts(v, out)
    elif tag == "d":
        for k, v in body:
            _parts(k, out)
            _parts(v, out)
    return out


def leaks(args: list, noted: set) -> bool:
    """Whether a call's arguments hold a value an earlier result of its batch is compared with: equal
    (as `_norm` sees it), nested anywhere in them, or as a substring of one of their strings. (Parts of
    a compared value are not looked for: small numbers from expected lists would then cut most tests.)"""
    parts = _parts(_norm(args), set())
    if parts & noted:
        return True
    texts = [body for tag, body in parts if tag == "str"]
    needles = [body for tag, body in noted if tag == "str" and len(body) > 1] if texts else []
    if len(needles) * len(texts) > MAX_SUBSTRING_SCANS:
        return True  # too many to look for: a batch cut too many is safe, only slower
    return any(needle in text for needle in needles for text in texts)


_GUARDED = (ast.Assert, ast.Expr, ast.Assign, ast.AugAssign)
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def tolerant(body: list) -> list:
    """The dry run's copy of a statement list: a failing assert or statement does not end it, and once
    the run's budget is spent every `except` of the test re-raises (a `while True: try: ... except:
    pass` cannot hold it). Walks statements only: a test of big literals stays cheap."""
    out = []
    for node in body:
        if isinstance(node, _GUARDED):
            inner = ast.Expr(node.test) if isinstance(node, ast.Assert) else node
            handler = ast.ExceptHandler(ast.Name("Exception", ast.Load()), None, [ast.Pass()])
            guard = ast.Try([inner], [handler], [], [])
            for made in (guard, handler, handler.type, handler.body[0], inner):
                ast.copy_location(made, node)
            out.append(guard)
            continue
        for field in _BODIES:
            inner = getattr(node, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                setattr(node, field, tolerant(inner))
            elif isinstance(inner, list):  # except handlers and match cases hold statement lists
                for part in inner:
                    part.body = tolerant(part.body)
                    if isinstance(part, ast.ExceptHandler):
                        reraise = ast.parse("if __tf_dry_over__[0]:\n    raise\n").body[0]
                        for made in ast.walk(reraise):
                            ast.copy_location(made, part)
                        part.body.insert(0, reraise)
        out.append(node)
    return out


_dry_active = False


_dry_over = [False]  # the dry run's budget is spent: every handler of the test re-raises


def stop_dry_run() -> None:
    _dry_over[0] = True
    raise _DryRunOver


def _dry_alarm(signum, frame) -> None:
    if _dry_active:
        stop_dry_run()


def dry_run(prelude, tree: ast.Module, entry: str, check_name: str, budget: float) -> tuple[list, list]:
    """The calls `check` will make, as plain-data spellings in order, and where to cut the batch."""
    global _dry_active
    keys: list[str] = []
    notes: list[set | None] = []  # per call: what its result was compared with; None: used otherwise

    def recorder(*args):
        if len(keys) >= MAX_PREFETCH:
            stop_dry_run()
        try:
            key = _plain.dumps(list(args))
        except BaseException:
            raise _Unknown from None  # built from an earlier result: asked live
        keys.append(key)
        notes.append(set())
        return _Pending(len(keys) - 1, notes)

    try:
        tree.body = tolerant(tree.body)
        test = compile(tree, "<test>", "exec")
        _dry_over[0] = False
        namespace: dict = {"__name__": "__check__", "__tf_dry_over__": _dry_over}
        random.seed(JUDGE_SEED)
        signal.signal(signal.SIGALRM, _dry_alarm)
        _dry_active = True
        # Repeating: should a C-level suppress swallow one, the next one ends the run.
        signal.setitimer(signal.ITIMER_REAL, budget, 0.01)
        try:
            if prelude is not None:
                exec(prelude, namespace)
            namespace[entry] = recorder
            exec(test, namespace)
            namespace[check_name](recorder)
        finally:
            _dry_active = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:
        pass  # the dry run ends here; what it learned so far is prefetched, the rest is asked live
    # A batch ends after a call whose result was not only compared directly (a result never compared,
    # or compared through `is` or `type`, counts as such), and before a call whose arguments hold
    # anything an earlier result of the batch is compared with. What a batch's calls are compared with
    # matters within it only: the next batch goes out once every answer before it is in.
    cuts, noted, start, opaque = [], set(), 0, False
    try:
        for i, key in enumerate(keys):
            if i and (opaque or i - start >= BATCH_MAX or leaks(_plain.loads(key), noted)):
                cuts.append(i)
                noted, start = set(), i
            opaque = not notes[i]
            noted |= notes[i] or set()
    except Exception:  # never expected: then every call waits for the answers before it
        cuts = list(range(1, len(keys)))
    return keys, cuts


class Channel:
    """The judge's side of one sample: calls go out in batches, answers come back one frame per call."""

    def __init__(self, req_w: int, resp_r: int, keys: list, cuts: list, cap: int) -> None:
        self.req_w, self.resp_r, self.cap = req_w, resp_r, cap
        self.keys, self.ends = keys, [*cuts, len(keys)]
        self.pos = self.sent = 0
        self.live = False
        self.answers: list = []

    def call(self, *args):
        key = _plain.dumps(list(args))
        if not self.live and self.pos < len(self.keys) and self.keys[self.pos] == key:
            i, self.pos = self.pos, self.pos + 1
            if i == self.sent:  # the first call of a batch not sent yet
                self.request(self.keys[i : next(e for e in self.ends if e > i)])
        else:  # not the call the dry run foresaw: from here on, every call is asked when it is made
            self.live = True
            i = self.sent
            self.request([key])
        while len(self.answers) <= i:
            self.answers.append(self.receive())
        status, body = self.answers[i]
        self.answers[i] = None
        if status != "ok":
            raise candidate_raised(body)
        return body

    def request(self, keys: list) -> None:
        # Every answer owed is read first: a candidate blocked on a full answer pipe never meets a
        # request blocked on a full request pipe.
        while len(self.answers) < self.sent:
            self.answers.append(self.receive())
        write_frame(self.req_w, ("[" + ",".join(keys) + "]").encode())
        self.sent += len(keys)

    def receive(self) -> tuple:
        head = read_exact(self.resp_r, _HEADER.size)
        if head is None:
            raise CandidateError("candidate died")
        n = _HEADER.unpack(head)[0]
        if n > self.cap:
            raise CandidateError("answer too large")
        frame = read_exact(self.resp_r, n)
        if frame is None:
            raise CandidateError("candidate died")
        try:
            answer = _plain.loads(frame)
            if type(answer) is not list or len(answer) != 2:
                raise _plain.PlainError("bad answer")
        except _plain.PlainError as exc:
            raise CandidateError(str(exc)) from None
        return answer[0], answer[1]


PLANS_KEPT = 64
_plans: dict = {}  # (prelude, test code, entry, check name) -> (code objects, dry-run calls and cuts)


def judge_check(job: dict, req_w: int, resp_r: int, cap: int) -> list:
    """One sample's verdict: the prompt's code (its helpers, as HumanEval runs prompt + completion), then
    the test with the entry point's name bound to the candidate's proxy (`check` may call it by name)."""
    entry, check_name = job["entry"], job.get("check_name", "check")
    key = (job.get("prelude", ""), job["test_code"], entry, check_name)
    plan = _plans.pop(key, None)  # a GRPO group: many candidates for one task, one dry run
    if plan is None:
        try:
            prelude = compile(job["prelude"], "<prompt>", "exec") if job.get("prelude") else None
            tree = ast.parse(job["test_code"], "<test>")
            test = compile(tree, "<test>", "exec")  # before the dry run rewrites the tree in place
        except BaseException as exc:
            return ["done", "fail", _exc_name(exc)]
        budget = min(0.5, 0.1 * float(job["time_limit"]))
        plan = (prelude, test, *dry_run(prelude, tree, entry, check_name, budget))
    _plans[key] = plan  # most recent last
    while len(_plans) > PLANS_KEPT:
        del _plans[next(iter(_plans))]
    prelude, test, keys, cuts = plan
    candidate = Channel(req_w, resp_r, keys, cuts, cap).call
    namespace: dict = {"__name__": "__check__"}
    try:
        random.seed(JUDGE_SEED)
        if prelude is not None:
            exec(prelude, namespace)
        namespace[entry] = candidate
        exec(test, namespace)
        namespace[check_name](candidate)
    except BaseException as exc:
        return ["done", "fail", _exc_name(exc)]
    return ["done", "pass", ""]


def judge_loop(ctl: socket.socket, cap: int) -> None:
    """Serve samples until the worker closes the control socket. Each arrives as its limits and four
    fds: the test code to read, the result to write, and the pipes to this sample's candidate."""
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no same-uid process may read this memory via /proc
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1024, 4)
        except OSError:
            return
        if not msg or len(fds) != 4:
            return
        data_r, res_w, req_w, resp_r = fds
        try:
            job = {**json.loads(msg), **json.loads(read_all(data_r))}
            result = judge_check(job, req_w, resp_r, cap)
            payload = json.dumps([job["nonce"], result], separators=(",", ":")).encode()
            with contextlib.suppress(OSError):
                write_all(res_w, payload)
        finally:
            for fd in fds:
                os.close(fd)


def candidate_server(job: dict, req_r: int, resp_w: int) -> None:
    """The candidate's side: each request frame is a batch of argument lists, each answered by its own
    frame as soon as it is computed (and encoded at once: later mutation cannot change it)."""
    os.dup2(0, 1)  # its prints go nowhere (fd 0 is /dev/null): a full output pipe must not stall it
    os.dup2(0, 2)
    namespace: dict = {"__name__": "__solution__"}
    try:
        # The prompt's helpers, as HumanEval runs prompt + completion (skipped when the code repeats
        # the prompt: it would run twice, to the same effect).
        if job.get("prelude") and not job["code"].startswith(job["prelude"]):
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
            batch = _plain.loads(frame)
        except _plain.PlainError:
            return
        for args in batch:
            # Load errors and answers that are not plain data (PlainError is a ValueError) cross under
            # names the judge re-raises as no builtin type: only the call itself raises what a test catches.
            if func is None:
                data = _plain.dumps(["exc", f"load error: {load_error}"])
                write_frame(resp_w, data.encode())
                continue
            try:
                value = func(*args)
            except BaseException as exc:
                data = _plain.dumps(["exc", raised_name(exc)])
            else:
                try:
                    data = _plain.dumps(["ok", value])
                except BaseException as exc:
                    data = _plain.dumps(["exc", f"bad answer: {_exc_name(exc)}"])
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


def close_all_but(*keep: int) -> None:
    """In a fresh child: close every fd above 2 but `keep` (and the Landlock ruleset), the worker's
    protocol pipe first of all (a forged frame there would reach the host)."""
    low = 3
    for fd in sorted({*keep, landlock_fd} - {-1}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


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
            # Read-write: a body may point its stdout there too (reads still see end of file).
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            close_all_but(data_r, res_w, *keep)
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


def kill(pid: int) -> None:
    """SIGKILL a child and its process group. The pid too: a child may leave its group for another of
    this session (setpgid needs no privilege), and it cannot have made processes of its own (the
    seccomp filter), so the pid and the group between them hold every process it runs."""
    for send in (os.killpg, os.kill):
        with contextlib.suppress(OSError):
            send(pid, signal.SIGKILL)


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
    pid: int, res_r: int, out_r: int, deadline: float, result_cap: int, keep: bool = False
) -> tuple[dict, int, int, int, int]:
    """Move the child's result (and a capped prefix of its output) into memfds until the result pipe
    closes or the deadline passes; then kill its process group, so lingering threads die with it.
    Returns (reply header, result memfd, its size, output memfd, its size); nothing passes this heap.
    `keep`: a judge that answered in time lives on; `out_r` -1: no output to keep."""
    result = os.memfd_create("result", os.MFD_CLOEXEC)
    output = os.memfd_create("output", os.MFD_CLOEXEC)
    got = kept = 0
    status, open_fds = "done", [fd for fd in (res_r, out_r) if fd >= 0]
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
    signum = 0
    if keep and status == "done" and got:
        pass
    elif status == "done" and got:
        kill(pid)
        _unreaped.append(pid)
    else:
        kill(pid)
        _, wstatus = os.waitpid(pid, 0)
        signum = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else 0
        if status == "done":
            status = "crash"
    os.close(res_r)
    if out_r >= 0:
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
    # kind == "check": the candidate, forked for this sample, serves calls from the worker's judge. The
    # candidate's pipe gets the code, the judge's the test code (it holds the expected values), so
    # neither ever was in the candidate's memory, nor in this one.
    judge = judge_for(meta, seccomp_filter)
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    server, s_data, s_res, s_out = spawn(meta, seccomp_filter, candidate_server, (req_r, resp_w))
    data_r, data_w = os.pipe()
    res_r, res_w = os.pipe()
    with contextlib.suppress(OSError):  # a dead judge: its result pipe ends empty, a crash verdict
        limits = json.dumps({"time_limit": meta["time_limit"]}).encode()
        socket.send_fds(judge.ctl, [limits], [data_r, res_w, req_w, resp_r])
    for fd in (req_r, req_w, resp_r, resp_w, data_r, res_w):
        os.close(fd)
    feed(inp, s_data, sizes[0])
    feed(inp, data_w, sizes[1])
    reply = collect(judge.pid, res_r, -1, deadline, cap, keep=True)
    judge.jobs += 1
    if reply[0]["status"] != "done" or not reply[2]:
        judge.close()  # killed and reaped by collect: the next sample gets a fresh judge
    kill(server)  # the candidate's own result and output are never read
    _unreaped.append(server)
    os.close(s_res)
    os.close(s_out)
    return reply


class Judge:
    """The worker's judge: a confined child forked from this clean zygote, fed through a socket."""

    def __init__(self, meta: dict, seccomp_filter) -> None:
        self.memory_mb, self.jobs = meta["memory_mb"], 0
        self.ctl, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            try:
                os.setpgid(0, 0)
                devnull = os.open(os.devnull, os.O_RDWR)  # the test's prints go nowhere
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                close_all_but(theirs.fileno())
                limits = {"time_limit": JUDGE_CPU_S, "memory_mb": self.memory_mb}
                confine(limits, seccomp_filter)
                judge_loop(theirs, int(meta["result_cap"]))
            finally:
                os._exit(0)
        with contextlib.suppress(OSError):
            os.setpgid(self.pid, self.pid)
        theirs.close()

    def alive(self) -> bool:
        with contextlib.suppress(ChildProcessError):
            return os.waitpid(self.pid, os.WNOHANG)[0] == 0
        return False

    def close(self) -> None:
        global _judge
        self.ctl.close()
        kill(self.pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        if _judge is self:
            _judge = None


_judge: Judge | None = None


def judge_for(meta: dict, seccomp_filter) -> Judge:
    """The live judge, or a fresh one (the first check sample, after a timeout or crash, after
    JUDGE_JOBS samples, or for other limits)."""
    global _judge
    if _judge is not None and (
        _judge.jobs >= JUDGE_JOBS or _judge.memory_mb != meta["memory_mb"] or not _judge.alive()
    ):
        _judge.close()
    if _judge is None:
        _judge = Judge(meta, seccomp_filter)
    return _judge


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
