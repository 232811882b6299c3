"""The SQL database cache holds what it promises: sized by bytes against the address-space limit, never
driving its process into the limit, and 32 level-3 tasks fit in the worker's 4 GiB."""

from __future__ import annotations

import json
import mmap
import subprocess
import sys
import textwrap

from taskforge.generators.sql import box


class _Mapped:
    """A cache value that maps `mib` MiB of address space until closed."""

    def __init__(self, mib: int) -> None:
        self.map = mmap.mmap(-1, mib << 20)
        self.closed = False

    def close(self) -> None:
        self.map.close()
        self.closed = True


def test_cache_bounded_by_bytes_evicts_least_recent():
    cache = box.DatabaseCache(capacity=100, max_bytes=100 << 20)
    cache.directory()  # as a real build does: the cache now belongs to this process
    values = [cache.get(f"k{i}", lambda: _Mapped(30)) for i in range(3)]
    assert len(cache) == 3 and 80 << 20 <= cache.bytes <= 100 << 20
    assert cache.get("k0", lambda: _Mapped(30)) is values[0]  # a hit, and k0 is now the most recent
    cache.get("k3", lambda: _Mapped(30))
    assert len(cache) == 3 and cache.evicted_for_bytes == 1
    assert values[1].closed and not values[0].closed and not values[2].closed  # k1 was the oldest
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and all(v.closed for v in values)


# One child process, the worker's situation: an address-space limit, level-3 tasks' real databases.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import taskforge
    from taskforge.generators.sql import box, judge
    tasks = list(taskforge.generate("sql", 32, level=3, seed=4))
    judge.instances(tasks[0].check)  # DuckDB's own one-time mappings land in the baseline
    judge.DATABASES.clear()
    out = {}
    # 1. A tight limit (baseline + 800 MiB), default thread stacks (about 70 MiB a task): the cache keeps
    #    fewer tasks than fit by count, evicting by bytes, and no build or query fails for memory.
    limit = box.address_space() + (800 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    for t in tasks[:16]:
        judge.instances(t.check)
    passed = all(judge.judge_check(t.check, t.answer).passed for t in tasks[13:16])
    out["tight"] = [len(judge.DATABASES), judge.DATABASES.evicted_for_bytes, box.address_space() < limit, passed]
    judge.DATABASES.clear()
    judge.DATABASES.evicted_for_bytes = 0
    # 2. The worker's settings: its 4 GiB limit and 1 MiB thread stacks. All 32 stay, and a second pass
    #    over them in rotation is served from the cache (the same objects, nothing rebuilt).
    resource.setrlimit(resource.RLIMIT_AS, (box.WORKER_ADDRESS_SPACE, resource.RLIM_INFINITY))
    out["stacks"] = box.small_thread_stacks()
    first = [judge.instances(t.check) for t in tasks]
    again = [judge.instances(t.check) for t in tasks]
    out["worker"] = [len(judge.DATABASES), judge.DATABASES.evicted_for_bytes, all(a is b for a, b in zip(first, again))]
    out["mib_per_task"] = judge.DATABASES.bytes / 32 / 2**20
    print(json.dumps(out))
    """
)


def test_worker_settings_hold_32_level3_tasks_and_a_tight_limit_evicts_by_bytes():
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TASKFORGE_SQL_ISOLATE": "0", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    kept, evicted, under, passed = out["tight"]
    assert kept < 16 and evicted > 0 and under and passed, out
    assert out["stacks"], "pthread_setattr_default_np is available on glibc"
    assert out["worker"] == [32, 0, True], out
    assert out["mib_per_task"] < 40, out
