"""Two small pieces of machinery that families share: per-process lazy values and an identity-keyed LRU.

`PerProcess` makes a value (a connection, a thread, a scratch folder) on first use in each process, and
in each thread when asked: a forked child must never use its parent's DuckDB connections or rely on its
parent's threads, which do not survive fork.

`IdentityLRU` remembers one value per JSON-like object (a task's `check`, a schema). The G responses to one
prompt come with the very same object, so the object's identity finds the value without hashing it; an
equal object read back from a file finds it by content hash. The entry holds the object, so its id
cannot be reused while the entry lives. Objects are not edited in place once looked up.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from taskforge.task import canonical_json

T = TypeVar("T")


class PerProcess(Generic[T]):
    """`get()` returns the value `factory()` made in this process (and thread, if `per_thread`)."""

    def __init__(self, factory: Callable[[], T], *, per_thread: bool = False) -> None:
        self._factory = factory
        self._per_thread = per_thread
        self._local = threading.local()
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid = -1
        _LIVE.add(self)

    def get(self) -> T:
        pid = os.getpid()
        if self._per_thread:
            local = self._local
            if getattr(local, "pid", None) != pid:
                local.value, local.pid = self._factory(), pid
            return local.value
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    self._value = self._factory()
                    self._pid = pid
        return self._value  # type: ignore[return-value]


# A fork while another thread holds a lock would leave the child's copy locked forever, so a child
# process gets new locks.
_LIVE: weakref.WeakSet[PerProcess[Any]] = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for value in list(_LIVE):
        value._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_in_child)


def content_key(obj: Any) -> str:
    """A 128-bit hex digest of an object's canonical JSON: the same in every process."""
    return hashlib.blake2b(canonical_json(obj).encode(), digest_size=16).hexdigest()


class IdentityLRU(Generic[T]):
    """At most `capacity` values keyed by an object's content, found by identity first. Thread-safe.

    An identity hit costs one dict lookup and no lock: the G responses to one prompt pay nothing more. An
    object keeps the value it was given even after the content-keyed entry leaves (at most `identities`
    objects are remembered), which is still the right value for it."""

    def __init__(self, capacity: int, *, identities: int | None = None) -> None:
        self.capacity = capacity
        self._identities = identities if identities is not None else 2 * capacity
        # id(obj) -> (obj, content key, value or None): holding obj keeps its id from being reused
        self._by_id: OrderedDict[int, tuple[Any, str, T | None]] = OrderedDict()
        self._values: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, obj: Any) -> str:
        """The content key of `obj`, hashed once per object."""
        hit = self._by_id.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        key = content_key(obj)
        self._remember(obj, key, None)
        return key

    def get(self, obj: Any, make: Callable[[], T]) -> T:
        """The value for `obj`, else `make()` stored (the oldest entry leaves when full).

        `make` runs outside the lock, so two threads may both make a value for a new object; one is kept."""
        hit = self._by_id.get(id(obj))
        if hit is not None and hit[0] is obj and hit[2] is not None:
            return hit[2]
        key = self.key(obj)
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
        if value is None:
            made = make()
            with self._lock:
                value = self._values.setdefault(key, made)
                self._values.move_to_end(key)
                while len(self._values) > self.capacity:
                    self._values.popitem(last=False)
        self._remember(obj, key, value)
        return value

    def _remember(self, obj: Any, key: str, value: T | None) -> None:
        with self._lock:
            self._by_id[id(obj)] = (obj, key, value)
            while len(self._by_id) > self._identities:
                self._by_id.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
