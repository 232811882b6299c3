"""The shared machinery of taskforge/cache.py: per-process lazy values and the identity-keyed LRU."""

from __future__ import annotations

import copy
import os
import threading

from taskforge.cache import IdentityLRU, PerProcess, content_key


def test_per_process_value_is_made_once_and_again_after_fork() -> None:
    made: list[int] = []
    value = PerProcess(lambda: made.append(os.getpid()) or len(made))
    assert value.get() == 1 and value.get() == 1 and made == [os.getpid()]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must make its own value, not reuse the parent's
        os.write(write, str(value.get()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"2"
    assert value.get() == 1  # the parent keeps its own


def test_per_thread_values_differ_between_threads() -> None:
    value = PerProcess(object, per_thread=True)
    here = value.get()
    there: list[object] = []
    thread = threading.Thread(target=lambda: there.append(value.get()))
    thread.start()
    thread.join()
    assert value.get() is here and there[0] is not here


def test_identity_lru_finds_equal_objects_by_content() -> None:
    lru: IdentityLRU[list[int]] = IdentityLRU(2)
    calls: list[int] = []
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    first = lru.get(schema, lambda: calls.append(1) or [1])
    assert lru.get(schema, lambda: [2]) is first  # the same object: found by identity
    assert lru.get(copy.deepcopy(schema), lambda: [3]) is first  # an equal copy: found by content
    assert calls == [1]
    assert lru.key(schema) == content_key(copy.deepcopy(schema))


def test_identity_lru_evicts_the_least_recently_used() -> None:
    lru: IdentityLRU[str] = IdentityLRU(2, identities=16)
    a, b, c = {"n": 1}, {"n": 2}, {"n": 3}
    lru.get(a, lambda: "a")
    lru.get(b, lambda: "b")
    lru.get(dict(a), lambda: "a again")  # found by content: a is now the most recent
    lru.get(c, lambda: "c")  # b's content entry leaves
    assert len(lru) == 2
    assert lru.get(dict(a), lambda: "rebuilt") == "a"
    assert lru.get(dict(b), lambda: "rebuilt") == "rebuilt"
    assert lru.get(b, lambda: "rebuilt again") == "b"  # the object itself keeps the value it was given


def test_identity_lru_is_safe_under_threads() -> None:
    lru: IdentityLRU[int] = IdentityLRU(16)
    objects = [{"i": i} for i in range(64)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for j in range(2000):
                obj = objects[(j + offset) % len(objects)]
                assert lru.get(obj, lambda obj=obj: obj["i"]) == obj["i"]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(lru) <= 16
