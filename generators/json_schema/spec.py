"""The spec tree of a JSON-schema task: each node (`_Obj`, `_Arr`, `_Str`, ...) renders its piece of the
schema and draws valid instances of it, so every schema is satisfiable by construction."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
CHECKED_FORMATS = ("date", "ipv4", "uuid")

# fmt: off
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
# fmt: on
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


_CLASSES = {
    "[a-z]": "abcdefghijklmnopqrstuvwxyz",
    "[A-Z]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[0-9]": "0123456789",
    "[a-f0-9]": "0123456789abcdef",
}


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
        return _Obj(
            height=height,
            props=props,
            closed=self.chance("closed"),
            split=self.chance("combinators") and self.rng.random() < 0.4,
        )

    def nested(self, depth: int, spine: bool = False) -> _Node:
        """An object one level down: maybe shared through $defs, maybe a discriminated oneOf of objects."""
        rng = self.rng
        if self.chance("refs"):
            # A reused def must not deepen the schema, nor (on the spine) make it shallower.
            fitting = [
                n for n, d in self.defs.items() if d.height == depth or (d.height < depth and not spine)
            ]
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
            return _Arr(
                items=self.leaf(),
                min_items=lo if keywords else 0,
                max_items=lo + rng.randint(1, 3),
                keywords=keywords,
            )
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
            return _Int(
                low=low,
                high=low + multiple * rng.randint(1, 200),
                multiple=multiple,
                exclusive=keywords and rng.random() < 0.3,
                keywords=keywords,
            )
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
            pieces = (
                ("cls", "[a-z]", 2, 8),
                ("lit", "@", 1, 1),
                ("cls", "[a-z]", 3, 8),
                ("lit", ".", 1, 1),
                ("alt", TLDS, 1, 1),
            )
        elif fmt == "uri":
            pieces = (
                ("lit", "https://", 1, 1),
                ("cls", "[a-z]", 3, 10),
                ("lit", ".", 1, 1),
                ("alt", TLDS, 1, 1),
                ("lit", "/", 1, 1),
                ("cls", "[a-f0-9]", 1, 8),
            )
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
