"""JSON-schema conformance: a generated Draft 2020-12 schema and a JSON value to write for it.

Every schema is built from a small spec tree (`_Obj`, `_Arr`, `_Str`, ...) that renders both the schema and
valid instances of it, so each task is satisfiable by construction and its instance is the gold answer.
Two modes:
- `conform`: produce any value that validates and also meets the constraints stated in the prompt
  (`a.b` must equal 7, `tags` must have exactly 3 items, `note` must be left out);
- `extract`: a text states every value; the answer must validate AND equal the hidden instance.

Verification reads the last <answer> block (else the last fenced json block), rejects by size and by a
cheap nesting scan BEFORE parsing, parses strict JSON (no NaN/Infinity/overflowing floats, no duplicate
keys, exactly one value) and validates with jsonschema-rs, compiled once per schema (LRU cache).

Formats: `date`, `ipv4` and `uuid` are checked (both jsonschema-rs and the reference `jsonschema` package
check them identically on what we generate, see tests/generators/test_json_schema_agreement.py). `email` and `uri`
always come with a `pattern` that implies both validators' checks, because the two disagree on
those formats (the reference accepts `a@@b.com`). Patterns use only `^`, `$`, literals, `[a-z]`-style
classes, `{m,n}` and `(a|b)`: no `\\d`, `\\w` (Unicode-dependent) and no look-around.
Known divergence: Python's `re` lets `$` match before a trailing newline, ECMA-262 and jsonschema-rs
do not; the verifier follows ECMA-262 ("abc\\n" does not match `^[a-z]{3}$`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

import jsonschema_rs

from taskforge.extract import extract_answer, extract_fenced
from taskforge.generator import Generator, Knob
from taskforge.registry import register
from taskforge.task import Task, Verdict

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_RESPONSE_CHARS = 2_000_000  # a whole response beyond this is rejected before anything is copied
MIN_ANSWER_CHARS = 4096  # the answer limit of a task is max(this, 16 x its gold answer)
MAX_DEPTH = 32  # nesting limit of an answer; generated instances stay far below it
MAX_FENCES = 64  # code fences in a response without an <answer> block
CHECKED_FORMATS = ("date", "ipv4", "uuid")

# ---------------------------------------------------------------------------------------------------
# Strict parsing and validation (pure functions of the task record and the response)
# ---------------------------------------------------------------------------------------------------
# A whole JSON string (escapes included), a bracket, or a lone quote that opens a string never closed.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)


def nesting_depth(text: str, limit: int) -> int:
    """Deepest [ / { nesting outside strings, stopping as soon as it exceeds `limit` (linear, no parse).

    An unterminated string ends the scan: json.loads fails there too, without going any deeper."""
    depth = peak = 0
    for m in _TOKEN.finditer(text):
        c = text[m.start()]
        if c == '"':
            if m.end() - m.start() == 1:
                break
        elif c in "[{":
            depth += 1
            if depth > peak:
                peak = depth
                if peak > limit:
                    return peak
        else:
            depth -= 1
    return peak


class StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise StrictJSONError(f"duplicate key {dup[:40]!r}")
    return out


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf in Python; JSON has no infinity
        raise StrictJSONError(f"number {text[:40]} overflows")
    return value


def parse_strict(text: str, max_chars: int, max_depth: int = MAX_DEPTH) -> tuple[Any, str | None]:
    """(value, None) or (None, why). Limits are checked before json.loads sees the text."""
    if len(text) > max_chars:
        return None, f"answer has {len(text)} characters, limit {max_chars}"
    if nesting_depth(text, max_depth) > max_depth:
        return None, f"nesting deeper than {max_depth}"
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, StrictJSONError, int digit limit
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return value, None


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: true/false are not numbers, 1 == 1.0, object key order is irrelevant."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


_VALIDATORS: OrderedDict[str, Any] = OrderedDict()
_BY_IDENTITY: dict[int, tuple[dict[str, Any], Any]] = {}
_VALIDATOR_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


def compiled_validator(schema: dict[str, Any]) -> Any:
    """A jsonschema-rs Draft 2020-12 validator, compiled once per schema (LRU keyed by a hash of its JSON).

    The G responses to one prompt share one schema object: an identity fast path skips even the hash
    (a schema is not edited in place once verified; the entry holds the object, so its id stays unique)."""
    hit = _BY_IDENTITY.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    key = hashlib.blake2b(json.dumps(schema, separators=(",", ":")).encode(), digest_size=16).hexdigest()
    with _CACHE_LOCK:  # verifiers may run in threads; the LRU's reordering is not atomic
        validator = _VALIDATORS.get(key)
        if validator is None:
            validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
            _VALIDATORS[key] = validator
            if len(_VALIDATORS) > _VALIDATOR_CACHE_SIZE:
                _VALIDATORS.popitem(last=False)
        else:
            _VALIDATORS.move_to_end(key)
        if len(_BY_IDENTITY) >= _VALIDATOR_CACHE_SIZE:
            _BY_IDENTITY.clear()
        _BY_IDENTITY[id(schema)] = (schema, validator)
    return validator


def schema_error(schema: dict[str, Any], value: Any) -> str | None:
    """None when `value` validates, else the first error (path and message, truncated)."""
    validator = compiled_validator(schema)
    if validator.is_valid(value):
        return None
    err = next(iter(validator.iter_errors(value)), None)
    if err is None:
        return "invalid"
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.instance_path) or "(root)"
    return f"{path}: {err.message}"[:300]


def render_path(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(the whole object)"


def _walk(value: Any, path: list[str | int]) -> tuple[bool, Any]:
    for p in path:
        if isinstance(p, int):
            if not isinstance(value, list) or p >= len(value):
                return False, None
        elif not isinstance(value, dict) or p not in value:
            return False, None
        value = value[p]
    return True, value


def constraint_holds(value: Any, c: dict[str, Any]) -> bool:
    if c["op"] == "absent":
        found, parent = _walk(value, c["path"][:-1])
        return found and isinstance(parent, dict) and c["path"][-1] not in parent
    found, node = _walk(value, c["path"])
    if not found:
        return False
    if c["op"] == "equals":
        return json_equal(node, c["value"])
    return isinstance(node, list) and len(node) == c["value"]  # "length"


def read_json_answer(response: str) -> tuple[str | None, str | None]:
    """(text, None): the <answer> block (a ```json fence inside it unwrapped), else the last fenced json
    block; (None, None) when there is neither; (None, why) when the fences are too many to scan."""
    text = extract_answer(response)
    if text is not None and not text.startswith("```"):
        return text, None
    source = response if text is None else text
    # A real answer has a few fences at most; thousands are noise, refused before any scan.
    if source.count("```") > MAX_FENCES:
        return None, f"more than {MAX_FENCES} code fences"
    inner = extract_fenced(source, "json")
    return (text if inner is None else inner), None


# ---------------------------------------------------------------------------------------------------
# Spec tree: each node renders its schema and draws valid instances
# ---------------------------------------------------------------------------------------------------
NAMES = (
    "id", "name", "title", "status", "kind", "count", "price", "total", "email", "url", "created", "owner",
    "address", "street", "city", "zip", "country", "tags", "items", "sku", "quantity", "note", "rating",
    "active", "score", "level", "color", "size", "weight", "width", "height", "version", "label", "code",
    "phone", "user", "account", "order", "payment", "method", "currency", "amount", "region", "team",
    "members", "role", "project", "budget", "deadline", "priority", "author", "review", "comment", "host",
    "port", "ip", "device", "sensor", "reading", "unit", "batch", "lot", "vendor", "contact", "shipping",
    "billing", "discount", "coupon", "stock", "warehouse", "shelf", "route", "stop", "driver", "vehicle",
    "plate", "model", "year", "make", "engine", "fuel", "range", "speed", "limit", "window", "schedule",
)
WORDS = (
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kestrel",
    "lumen", "maple", "nectar", "onyx", "prairie", "quartz", "raven", "sierra", "tundra", "umber", "violet",
    "willow", "yarrow", "zephyr", "amber", "basalt", "cobalt", "dune", "echo", "falcon", "glacier", "heron",
)
TLDS = ("com", "org", "net", "io")


@dataclass
class _Node:
    height: int = 0  # levels of objects at and below this node (what the `depth` knob counts)

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def sample(self, rng: random.Random, path: list[str | int], omitted: list[list[str | int]]) -> Any:
        raise NotImplementedError


@dataclass
class _Const(_Node):
    value: Any = None

    def schema(self) -> dict[str, Any]:
        return {"const": self.value}

    def sample(self, rng, path, omitted):
        return self.value


@dataclass
class _Bool(_Node):
    def schema(self):
        return {"type": "boolean"}

    def sample(self, rng, path, omitted):
        return rng.random() < 0.5


@dataclass
class _Null(_Node):
    def schema(self):
        return {"type": "null"}

    def sample(self, rng, path, omitted):
        return None


@dataclass
class _Int(_Node):
    low: int = 0
    high: int = 100
    multiple: int = 1
    exclusive: bool = False  # render the bounds as exclusiveMinimum/Maximum (one step outside)
    keywords: bool = True

    def schema(self):
        out: dict[str, Any] = {"type": "integer"}
        if self.keywords:
            if self.exclusive:
                out["exclusiveMinimum"], out["exclusiveMaximum"] = self.low - 1, self.high + 1
            else:
                out["minimum"], out["maximum"] = self.low, self.high
            if self.multiple > 1:
                out["multipleOf"] = self.multiple
        return out

    def sample(self, rng, path, omitted):
        first = -(-self.low // self.multiple) * self.multiple  # smallest multiple >= low
        return first + self.multiple * rng.randint(0, (self.high - first) // self.multiple)


@dataclass
class _Num(_Node):
    low: float = 0.0
    high: float = 100.0
    step: float = 0.0  # 0.5 or 0.25 (exact in binary) when multipleOf is used; else 2 decimals
    keywords: bool = True

    def schema(self):
        if not self.keywords:
            return {"type": "number"}
        out: dict[str, Any] = {"type": "number", "minimum": self.low, "maximum": self.high}
        if self.step:
            out["multipleOf"] = self.step
        return out

    def sample(self, rng, path, omitted):
        if self.step:
            k = rng.randint(math.ceil(self.low / self.step), math.floor(self.high / self.step))
            return k * self.step
        return round(rng.uniform(self.low, self.high), 2)


@dataclass
class _Str(_Node):
    kind: str = "plain"  # plain | enum | pattern | format
    min_len: int = 0
    max_len: int = 0  # 0: no length keywords
    values: tuple[str, ...] = ()
    pieces: tuple[tuple[str, Any, int, int], ...] = ()  # (kind, payload, min, max)
    fmt: str = ""

    def schema(self):
        out: dict[str, Any] = {"type": "string"}
        if self.kind == "enum":
            out["enum"] = list(self.values)
        elif self.kind == "pattern":
            out["pattern"] = self.regex()
        elif self.kind == "format":
            out["format"] = self.fmt
            if self.pieces:
                out["pattern"] = self.regex()
        if self.max_len:
            out["minLength"], out["maxLength"] = self.min_len, self.max_len
        return out

    def regex(self) -> str:
        parts = []
        for kind, payload, lo, hi in self.pieces:
            if kind == "lit":
                parts.append(re.escape(payload))
            elif kind == "alt":
                parts.append("(" + "|".join(payload) + ")")
            else:
                parts.append(payload + (f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"))
        return "^" + "".join(parts) + "$"

    def sample(self, rng, path, omitted):
        if self.kind == "enum":
            return rng.choice(self.values)
        if self.kind == "format" and not self.pieces:
            return _sample_format(self.fmt, rng)
        if self.pieces:
            out = []
            for kind, payload, lo, hi in self.pieces:
                if kind == "lit":
                    out.append(payload)
                elif kind == "alt":
                    out.append(rng.choice(payload))
                else:
                    alphabet = _CLASSES[payload]
                    out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi))))
            return "".join(out)
        length = rng.randint(self.min_len, self.max_len) if self.max_len else rng.randint(3, 14)
        text = " ".join(rng.choice(WORDS) for _ in range(length // 4 + 2))[:length]
        return text[:-1] + "x" if text.endswith(" ") else text


_CLASSES = {"[a-z]": "abcdefghijklmnopqrstuvwxyz", "[A-Z]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "[0-9]": "0123456789", "[a-f0-9]": "0123456789abcdef"}


def _sample_format(fmt: str, rng: random.Random) -> str:
    if fmt == "date":
        month = rng.randint(1, 12)
        days = 28 if month == 2 else 30 if month in (4, 6, 9, 11) else 31
        return f"{rng.randint(1950, 2049):04d}-{month:02d}-{rng.randint(1, days):02d}"
    if fmt == "ipv4":
        return ".".join(str(rng.randint(0, 255)) for _ in range(4))
    h = f"{rng.getrandbits(128):032x}"  # uuid
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class _Arr(_Node):
    items: _Node = field(default_factory=_Bool)
    min_items: int = 0
    max_items: int = 4
    keywords: bool = True

    def schema(self):
        out: dict[str, Any] = {"type": "array", "items": self.items.schema()}
        if self.keywords:
            out["minItems"], out["maxItems"] = self.min_items, self.max_items
        return out

    def sample(self, rng, path, omitted):
        n = rng.randint(self.min_items, self.max_items)
        return [self.items.sample(rng, [*path, i], omitted) for i in range(n)]


@dataclass
class _Obj(_Node):
    props: list[tuple[str, _Node, bool]] = field(default_factory=list)  # (name, node, required)
    closed: bool = False
    split: bool = False  # render as allOf of parts (closed then becomes unevaluatedProperties)

    def schema(self):
        required = [n for n, _, r in self.props if r]
        if not self.split or len(self.props) < 2:
            out: dict[str, Any] = {"type": "object", "properties": {n: s.schema() for n, s, _ in self.props}}
            if required:
                out["required"] = required
            if self.closed:
                out["additionalProperties"] = False
            return out
        cut = (len(self.props) + 1) // 2
        parts = []
        for chunk in (self.props[:cut], self.props[cut:]):
            part: dict[str, Any] = {"properties": {n: s.schema() for n, s, _ in chunk}}
            if any(r for _, _, r in chunk):
                part["required"] = [n for n, _, r in chunk if r]
            parts.append(part)
        out = {"type": "object", "allOf": parts}
        if self.closed:
            out["unevaluatedProperties"] = False
        return out

    def sample(self, rng, path, omitted):
        out = {}
        for name, node, required in self.props:
            if required or rng.random() < 0.5:
                out[name] = node.sample(rng, [*path, name], omitted)
            else:
                omitted.append([*path, name])
        return out


@dataclass
class _OneOf(_Node):
    variants: list[_Node] = field(default_factory=list)
    word: str = "oneOf"  # oneOf (variants mutually exclusive by construction) or anyOf

    def schema(self):
        return {self.word: [v.schema() for v in self.variants]}

    def sample(self, rng, path, omitted):
        return rng.choice(self.variants).sample(rng, path, omitted)


@dataclass
class _Ref(_Node):
    name: str = ""
    target: _Node = field(default_factory=_Bool)

    def schema(self):
        return {"$ref": f"#/$defs/{self.name}"}

    def sample(self, rng, path, omitted):
        return self.target.sample(rng, path, omitted)


class _Builder:
    """Draws one spec tree under the knobs; `defs` collects the $defs shared by $ref."""

    def __init__(self, params: dict[str, Any], rng: random.Random) -> None:
        self.p, self.rng = params, rng
        self.leaves = params["max_leaves"]
        self.defs: dict[str, _Node] = {}
        self.def_count = 0

    def chance(self, knob: str) -> bool:
        return self.rng.random() < self.p[knob]

    def root(self) -> _Obj:
        obj = self.obj(self.p["depth"], spine=True)
        if not any(r for _, _, r in obj.props):  # `{}` must never be a valid answer
            name, node, _ = obj.props[0]
            obj.props[0] = (name, node, True)
        return obj

    def obj(self, depth: int, spine: bool = False, tag: str = "") -> _Obj:
        """An object of at most `depth` levels; `spine` forces one chain of exactly `depth` levels; a
        `tag` adds a required `kind` constant (what makes oneOf variants mutually exclusive)."""
        rng = self.rng
        # The leaf budget caps the schema's size: once spent, objects keep a single property.
        count = max(1, min(rng.randint((self.p["props"] + 1) // 2, self.p["props"]), self.leaves))
        chosen = ["kind"] * bool(tag) + rng.sample([n for n in NAMES if n != "kind"], count)
        spine_at = rng.randrange(bool(tag), len(chosen)) if spine and depth > 1 else -1
        props = []
        for i, name in enumerate(chosen):
            if tag and i == 0:
                node: _Node = _Const(value=tag)
            elif i == spine_at:
                node = self.nested(depth - 1, spine=True)
            elif depth > 1 and self.leaves > 0 and rng.random() < 0.3:
                node = self.nested(depth - 1)
            else:
                node = self.value()
            required = (bool(tag) and i == 0) or i == spine_at or self.chance("required")
            props.append((name, node, required))
        height = 1 + max((n.height for _, n, _ in props), default=0)
        return _Obj(height=height, props=props, closed=self.chance("closed"),
                    split=self.chance("combinators") and self.rng.random() < 0.4)

    def nested(self, depth: int, spine: bool = False) -> _Node:
        """An object one level down: maybe shared through $defs, maybe a discriminated oneOf of objects."""
        rng = self.rng
        if self.chance("refs"):
            # A reused def must not deepen the schema, nor (on the spine) make it shallower.
            fitting = [n for n, d in self.defs.items() if d.height == depth or (d.height < depth and not spine)]
            if fitting and rng.random() < 0.5:
                name = rng.choice(fitting)
                return _Ref(height=self.defs[name].height, name=name, target=self.defs[name])
            self.def_count += 1  # numbered before the target is built: defs built inside it get others
            name = f"{rng.choice(NAMES)}_{self.def_count}"
            target = self.obj(depth, spine)
            self.defs[name] = target
            return _Ref(height=target.height, name=name, target=target)
        if self.chance("combinators") and rng.random() < 0.5:
            variants = [self.obj(depth, spine, tag=tag) for tag in rng.sample(WORDS, rng.randint(2, 3))]
            return _OneOf(height=max(v.height for v in variants), variants=variants)
        if self.chance("arrays") and rng.random() < 0.5:
            item = self.obj(depth, spine)
            lo = rng.randint(0 if not spine else 1, 2)
            return _Arr(height=item.height, items=item, min_items=lo, max_items=lo + rng.randint(0, 2))
        return self.obj(depth, spine)

    def value(self) -> _Node:
        self.leaves -= 1
        rng = self.rng
        if self.chance("arrays"):
            lo = rng.randint(0, 2)
            keywords = self.chance("keywords")
            return _Arr(items=self.leaf(), min_items=lo if keywords else 0,
                        max_items=lo + rng.randint(1, 3), keywords=keywords)
        if self.chance("combinators") and rng.random() < 0.5:
            a, b = rng.sample(("string", "integer", "boolean", "null"), 2)
            word = rng.choice(("oneOf", "anyOf"))
            return _OneOf(variants=[self.leaf(a), self.leaf(b)], word=word)  # distinct types: exclusive
        return self.leaf()

    def leaf(self, kind: str = "") -> _Node:
        rng = self.rng
        kind = kind or rng.choice(("string", "string", "integer", "number", "boolean"))
        keywords = self.chance("keywords")
        if kind == "boolean":
            return _Bool()
        if kind == "null":
            return _Null()
        if kind == "integer":
            multiple = rng.choice((1, 1, 2, 5, 10)) if keywords else 1
            low = rng.randint(-50, 100) * multiple
            return _Int(low=low, high=low + multiple * rng.randint(1, 200), multiple=multiple,
                        exclusive=keywords and rng.random() < 0.3, keywords=keywords)
        if kind == "number":
            low = float(rng.randint(-100, 100))
            step = rng.choice((0.0, 0.5, 0.25)) if keywords else 0.0
            return _Num(low=low, high=low + rng.randint(1, 1000), step=step, keywords=keywords)
        if not keywords:
            return _Str()
        style = rng.choice(("length", "enum", "pattern", "format"))
        if style == "length":
            lo = rng.randint(1, 8)
            return _Str(min_len=lo, max_len=lo + rng.randint(0, 12))
        if style == "enum":
            return _Str(kind="enum", values=tuple(rng.sample(WORDS, rng.randint(2, 6))))
        if style == "pattern":
            return _Str(kind="pattern", pieces=_random_pieces(rng))
        fmt = rng.choice((*CHECKED_FORMATS, "email", "uri"))
        pieces: tuple = ()
        if fmt == "email":
            pieces = (("cls", "[a-z]", 2, 8), ("lit", "@", 1, 1), ("cls", "[a-z]", 3, 8), ("lit", ".", 1, 1),
                      ("alt", TLDS, 1, 1))
        elif fmt == "uri":
            pieces = (("lit", "https://", 1, 1), ("cls", "[a-z]", 3, 10), ("lit", ".", 1, 1), ("alt", TLDS, 1, 1),
                      ("lit", "/", 1, 1), ("cls", "[a-f0-9]", 1, 8))
        return _Str(kind="format", fmt=fmt, pieces=pieces)


def _random_pieces(rng: random.Random) -> tuple[tuple[str, Any, int, int], ...]:
    pieces: list[tuple[str, Any, int, int]] = []
    for i in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.2 and i > 0:
            pieces.append(("lit", rng.choice(("-", "_", ".", ":")), 1, 1))
        elif roll < 0.4:
            pieces.append(("alt", tuple(rng.sample(WORDS, rng.randint(2, 4))), 1, 1))
        else:
            lo = rng.randint(1, 4)
            pieces.append(("cls", rng.choice(tuple(_CLASSES)), lo, lo + rng.randint(0, 3)))
    return tuple(pieces)


def build_schema(params: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], _Node]:
    """A schema and the spec that draws its valid instances (`spec.sample(rng, [], [])`)."""
    builder = _Builder(params, rng)
    root = builder.root()
    schema = {"$schema": DRAFT, **root.schema()}
    if builder.defs:
        schema["$defs"] = {name: node.schema() for name, node in builder.defs.items()}
    return schema, root


# ---------------------------------------------------------------------------------------------------
# Prompt text: the schema, the prose, the constraints
# ---------------------------------------------------------------------------------------------------
def pretty_json(value: Any) -> str:
    """Indented JSON whose small parts stay on one line (about half the characters of indent=2)."""
    return _pretty(value, "")[0]


def _scalar(value: Any) -> str:
    # What json.dumps writes, without its per-call setup (schemas have hundreds of scalars).
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return float.__repr__(value) if isinstance(value, float) else int.__repr__(value)
    return json.dumps(value, ensure_ascii=False)  # empty containers


def _pretty(value: Any, indent: str) -> tuple[str, str]:
    # Returns (pretty, flat); building both bottom-up keeps it linear in the size of the value.
    if not isinstance(value, (dict, list)) or not value:
        flat = _scalar(value)
        return flat, flat
    inner = indent + "  "
    if isinstance(value, dict):
        keys = [encode_basestring(k) for k in value]
        kids = [_pretty(v, inner) for v in value.values()]
        flat = "{" + ", ".join(f"{k}: {f}" for k, (_, f) in zip(keys, kids, strict=True)) + "}"
        rows = [f"{inner}{k}: {p}" for k, (p, _) in zip(keys, kids, strict=True)]
        opened, closed = "{", "}"
    else:
        kids = [_pretty(v, inner) for v in value]
        flat = "[" + ", ".join(f for _, f in kids) + "]"
        rows = [inner + p for p, _ in kids]
        opened, closed = "[", "]"
    if len(flat) <= 88:
        return flat, flat
    return opened + "\n" + ",\n".join(rows) + "\n" + indent + closed, flat


def _facts(value: Any, path: list[str | int]) -> list[tuple[list[str | int], str]]:
    """(path, statement) for every leaf, empty container and array length of an instance."""
    where = f"`{render_path(path)}`"
    if isinstance(value, dict):
        if not value:
            return [(path, f"{where} is an empty object")]
        return [f for k, v in value.items() for f in _facts(v, [*path, k])]
    if isinstance(value, list):
        head = [(path, f"{where} is an empty list" if not value else f"{where} has {len(value)} item(s)")]
        return head + [f for i, v in enumerate(value) for f in _facts(v, [*path, i])]
    return [(path, f"{where} is {json.dumps(value, ensure_ascii=False)}")]


_TEMPLATES = ("{fact}.", "Note that {fact}.", "According to the record, {fact}.", "Also, {fact}.")


def _prose(instance: dict[str, Any], rng: random.Random, shuffle: bool) -> str:
    facts = [s for _, s in _facts(instance, [])]
    if shuffle:
        rng.shuffle(facts)
    return " ".join(rng.choice(_TEMPLATES).format(fact=f) for f in facts)


def _constraints(instance: Any, omitted: list[list[str | int]], n: int, rng: random.Random) -> list[dict]:
    pool: list[dict[str, Any]] = []

    def walk(v: Any, path: list[str | int]) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, [*path, k])
        elif isinstance(v, list):
            pool.append({"op": "length", "path": path, "value": len(v)})
            for i, x in enumerate(v):
                walk(x, [*path, i])
        else:
            pool.append({"op": "equals", "path": path, "value": v})

    walk(instance, [])
    pool += [{"op": "absent", "path": p} for p in omitted]
    return rng.sample(pool, min(n, len(pool)))


def _keywords_used(schema: Any) -> list[str]:
    """Sorted schema keywords (not property or $defs names), for dataset statistics."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            found.update(node)
            for key, sub in node.items():
                stack.extend(sub.values() if key in ("properties", "$defs") else [sub])
    return sorted(found)


def _describe(c: dict[str, Any]) -> str:
    where = f"`{render_path(c['path'])}`"
    if c["op"] == "equals":
        return f"{where} must equal {json.dumps(c['value'], ensure_ascii=False)}"
    if c["op"] == "length":
        return f"{where} must have exactly {c['value']} item(s)"
    return f"{where} must be left out"


# ---------------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------------
_SHARE = {"low": 0.0, "high": 1.0}


@register
class JsonSchema(Generator):
    family = "json_schema"
    version = "1"
    max_response_chars = None  # its own MAX_RESPONSE_CHARS check, in verify, comes first
    description = "Write a JSON value for a generated Draft 2020-12 schema: conform to it, or extract it from prose."
    knobs = (
        Knob("mode", str, "conform", choices=("conform", "extract"), help="conform: meet the schema and the "
             "stated constraints; extract: reproduce the values stated in a text exactly"),
        Knob("depth", int, 2, low=1, high=8, help="levels of nested objects (the root is 1)"),
        Knob("props", int, 4, low=1, high=16, help="most properties per object"),
        Knob("required", float, 0.7, **_SHARE, help="share of required properties"),
        Knob("arrays", float, 0.2, **_SHARE, help="chance a value is an array"),
        Knob("keywords", float, 0.5, **_SHARE, help="chance a value carries bounds/length/enum/pattern/format"),
        Knob("combinators", float, 0.0, **_SHARE, help="chance of oneOf/anyOf/allOf"),
        Knob("refs", float, 0.0, **_SHARE, help="chance a nested object lives in $defs (and is reused)"),
        Knob("closed", float, 0.0, **_SHARE, help="chance an object forbids additional properties"),
        Knob("constraints", int, 2, low=0, high=20, help="extra constraints stated in the prompt (conform)"),
        Knob("shuffle", bool, False, help="extract: state the values in random order"),
        Knob("max_leaves", int, 12, low=2, high=400, help="budget of leaf values (keeps deep schemas small)"),
    )
    _ladder = (
        # depth props required arrays keywords combinators refs closed constraints shuffle max_leaves
        (1, 2, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1, False, 4),
        (1, 4, 0.6, 0.2, 0.3, 0.0, 0.0, 0.0, 1, False, 6),
        (2, 4, 0.6, 0.25, 0.5, 0.0, 0.0, 0.3, 2, False, 10),
        (2, 5, 0.7, 0.3, 0.6, 0.15, 0.2, 0.4, 2, True, 14),
        (3, 5, 0.7, 0.3, 0.7, 0.25, 0.3, 0.5, 3, True, 20),
        (3, 6, 0.75, 0.35, 0.8, 0.35, 0.4, 0.6, 3, True, 28),
        (4, 6, 0.75, 0.4, 0.9, 0.45, 0.5, 0.7, 4, True, 32),
        (5, 7, 0.8, 0.5, 1.0, 0.5, 0.5, 0.8, 5, True, 40),
    )
    levels = tuple(
        dict(zip(("depth", "props", "required", "arrays", "keywords", "combinators", "refs", "closed",
                  "constraints", "shuffle", "max_leaves"), row, strict=True))
        for row in _ladder
    )

    def difficulty(self, params: dict[str, Any]) -> float:
        # Every term grows with its knob, so a ladder that never lowers a knob is monotone. Stated
        # constraints only matter in conform mode, sentence order only in extract mode.
        p = params
        schema = (
            p["depth"] + 0.5 * p["props"] + p["required"] + 2 * p["arrays"] + 2 * p["keywords"]
            + 3 * p["combinators"] + 2 * p["refs"] + p["closed"] + math.log2(p["max_leaves"])
        )
        task = 0.3 * p["constraints"] if p["mode"] == "conform" else 1.0 + 0.5 * p["shuffle"]
        return round(schema + task, 4)

    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        schema, spec = build_schema(params, rng)
        omitted: list[list[str | int]] = []
        instance = spec.sample(rng, [], omitted)
        answer = json.dumps(instance, ensure_ascii=False, separators=(",", ":"))
        check: dict[str, Any] = {
            "mode": params["mode"],
            "schema": schema,
            "max_chars": max(MIN_ANSWER_CHARS, 16 * len(answer)),  # room for indent=8
            "max_depth": MAX_DEPTH,
        }
        shown = pretty_json(schema)
        if params["mode"] == "conform":
            check["constraints"] = _constraints(instance, omitted, params["constraints"], rng)
            rules = "".join(f"\n- {_describe(c)}" for c in check["constraints"])
            prompt = (
                "Write a JSON value that validates against this JSON Schema (Draft 2020-12; the formats "
                f"{', '.join(CHECKED_FORMATS)} are checked):\n\n```json\n{shown}\n```\n"
                + (f"\nIt must also meet these constraints (paths as in `a.b[0].c`):{rules}\n" if rules else "")
            )
        else:
            check["expected"] = instance
            prompt = (
                "Turn the text below into the JSON object it describes. The object must validate against "
                f"this JSON Schema (Draft 2020-12):\n\n```json\n{shown}\n```\n\nText: "
                f"{_prose(instance, rng, params['shuffle'])}\n\nInclude exactly the values the text states "
                "(paths as in `a.b[0].c`), nothing else.\n"
            )
        prompt += "Give only the JSON inside <answer></answer>."
        meta = {"schema_chars": len(shown), "answer_chars": len(answer), "keywords": _keywords_used(schema)}
        return self.make_task(params, prompt=prompt, answer=answer, check=check, meta=meta)

    def verify(self, task: Task, response: str) -> Verdict:
        if not isinstance(response, str):
            return Verdict.fail("malformed", error="response is not text")
        if len(response) > MAX_RESPONSE_CHARS:  # before any extraction copies it
            return Verdict.fail("malformed", error=f"response longer than {MAX_RESPONSE_CHARS} characters")
        text, problem = read_json_answer(response)
        if problem is not None:
            return Verdict.fail("malformed", error=problem)
        if text is None:
            return Verdict.fail("no_answer")
        check = task.check
        value, problem = parse_strict(text, check["max_chars"], check["max_depth"])
        if problem is not None:
            return Verdict.fail("malformed", parsed=text[:100], error=problem)
        try:
            error = schema_error(check["schema"], value)
        except (ValueError, TypeError, OverflowError) as exc:  # lone surrogates, ints jsonschema-rs cannot hold
            return Verdict.fail("malformed", parsed=text[:100], error=f"{type(exc).__name__}: {exc}"[:200])
        if error is not None:
            return Verdict.fail("wrong", parsed=value, error=error)
        if check["mode"] == "extract":
            if not json_equal(value, check["expected"]):
                return Verdict.fail("wrong", parsed=value, error="valid, but not the values the text states")
            return Verdict.ok(parsed=value)
        broken = [_describe(c) for c in check["constraints"] if not constraint_holds(value, c)]
        if broken:
            return Verdict.fail("wrong", parsed=value, error=f"constraint not met: {broken[0]}")
        return Verdict.ok(parsed=value)

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        gold = json.loads(task.answer)
        for _ in range(50):
            bad = mutate(gold, rng)
            if not self.verify(task, f"<answer>{json.dumps(bad)}</answer>").passed:
                return f"<answer>{json.dumps(bad)}</answer>"
        return '<answer>"not an object"</answer>'


# ---------------------------------------------------------------------------------------------------
# Mutations: near-miss instances for corrupt answers and the validator agreement test
# ---------------------------------------------------------------------------------------------------
def _spots(value: Any, path: list[str | int], out: list[list[str | int]]) -> None:
    out.append(path)
    if isinstance(value, dict):
        for k, v in value.items():
            _spots(v, [*path, k], out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _spots(v, [*path, i], out)


def _mutated_value(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return rng.choice((not v, 1, "true"))
    if isinstance(v, (int, float)):
        return rng.choice((v + 1, v - 1, v + 0.5, v * 1000 + 7, -v - 3, str(v), None))
    if isinstance(v, str):
        return rng.choice((v + "x", v[: len(v) // 2], "", v.upper(), v + v, v[::-1], 12, "zz-" + v, v + "-1"))
    if isinstance(v, list):
        return rng.choice(([*v, *v[:1]], v[:-1], [], [*v, 0], {"items": v}))
    if isinstance(v, dict):
        keys = list(v)
        choices: list[Any] = [{**v, "zz_extra": 1}, [], "x"]
        if keys:
            drop = rng.choice(keys)
            choices.append({k: x for k, x in v.items() if k != drop})
        return rng.choice(choices)
    return rng.choice((0, "null", False, {}))


def mutate(value: Any, rng: random.Random) -> Any:
    """A copy of a JSON value with one spot changed (type, bound, length, key dropped or added)."""
    spots: list[list[str | int]] = []
    _spots(value, [], spots)
    path = rng.choice(spots)
    if not path:
        return _mutated_value(value, rng)
    copy = json.loads(json.dumps(value))
    _, parent = _walk(copy, path[:-1])
    parent[path[-1]] = _mutated_value(parent[path[-1]], rng)
    return copy
