"""Where families are found: the `@register` decorator for built-ins, the `taskforge.generators`
entry-point group for plugins installed as separate packages."""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from importlib.metadata import entry_points

from taskforge.errors import UnknownFamilyError
from taskforge.generator import Generator

ENTRY_POINT_GROUP = "taskforge.generators"
_registry: dict[str, type[Generator]] = {}
_loaded = False


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a Generator subclass available by its `family` name."""
    if not isinstance(cls, type) or not issubclass(cls, Generator):
        raise TypeError(f"@register expects a Generator subclass, got {cls!r}")
    if not getattr(cls, "family", None):
        raise TypeError(f"{cls.__name__} must set a `family` name")
    existing = _registry.get(cls.family)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"family {cls.family!r} is already registered by {existing.__module__}")
    _registry[cls.family] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import taskforge.generators as builtin

    for info in pkgutil.iter_modules(builtin.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{builtin.__name__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            warnings.warn(f"taskforge plugin {ep.name!r} failed to load: {exc}", stacklevel=2)
            continue
        if isinstance(obj, type) and issubclass(obj, Generator):
            register(obj)


def families() -> list[str]:
    _load_all()
    return sorted(_registry)


def generator_class(family: str) -> type[Generator]:
    _load_all()
    try:
        return _registry[family]
    except KeyError:
        raise UnknownFamilyError(
            f"unknown family {family!r}; valid: {', '.join(sorted(_registry)) or '(none)'}"
        ) from None


_instances: dict[str, Generator] = {}


def get_generator(family: str) -> Generator:
    inst = _instances.get(family)
    if inst is not None and type(inst) is _registry.get(family):
        return inst  # the per-verdict path: one lookup, no loading check (an instance means it loaded)
    cls = generator_class(family)
    inst = _instances.get(family)
    if inst is None or type(inst) is not cls:
        inst = _instances[family] = cls()
    return inst
