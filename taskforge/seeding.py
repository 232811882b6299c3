"""Per-item seeds: a hash of everything that names the item, never `seed + index`.

`seed + index` makes base seed 2 repeat base seed 1 shifted by one item (reasoning-gym's defect).
Hashing (family, version, params, base seed, split, index) gives independent streams for every item,
the same in every process (no use of Python's salted `hash`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from taskforge.task import canonical_json


def item_seed(family: str, version: str, params: dict[str, Any], seed: int, split: str, index: int) -> int:
    """The seed of item `index`, as `Generator.sampler` computes it (spelled out for tests and readers)."""
    return key_seed(stream_key(family, version, params, seed, split) + f"{index}]")


def stream_key(family: str, version: str, params: dict[str, Any], seed: int, split: str) -> str:
    """The hashed key of item i is `stream_key(...) + f"{i}]"`, i.e. canonical_json of the six parts.

    Split out so a loop over indices encodes the params once: that encoding is a fair share of the
    cost of a small task, and the bytes hashed are the same either way.
    """
    return canonical_json([family, version, params, seed, split])[:-1] + ","


def block_seeds(prefix: str, start: int, n: int) -> list[int]:
    """`key_seed(prefix + f"{i}]")` for i in start .. start+n-1, drawn at once: the prefix is hashed once
    and each item's hash continues from a copy of that state (blake2b streams, so the bytes are equal)."""
    head = hashlib.blake2b(prefix.encode(), digest_size=16)
    out = []
    for i in range(start, start + n):
        h = head.copy()
        h.update(f"{i}]".encode())
        out.append(int.from_bytes(h.digest(), "little"))
    return out


def key_seed(key: str) -> int:
    """A 128-bit seed from a key string."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")


def hash_unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from any JSON-able parts (used for mixtures and split buckets)."""
    return key_unit(canonical_json(list(parts)))


def key_unit(key: str) -> float:
    """A number in [0, 1) from a key string."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64
