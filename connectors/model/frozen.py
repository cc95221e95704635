"""Frozen slots dataclasses built and pickled fast, and pickles written by earlier versions.

Every model type is a frozen slots dataclass: immutable, small, and made per record on the hot path,
where the dataclass machinery's generic costs showed (see `fast_init`, `fast_pickle`)."""

from __future__ import annotations

import io
import pickle
from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")


def fast_pickle(cls: type[T]) -> type[T]:
    """Pickle a frozen slots dataclass as (class, field values).

    Beam pickles every element that crosses a shuffle; the dataclass default (`__getstate__` calling
    `fields()` per object) cost more than the rules did once correlation shuffles matches."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, tuple(getattr(self, name) for name in names)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


def fast_init(cls: type[T]) -> type[T]:
    """Build instances of a frozen slots dataclass without its `object.__setattr__` per field.

    A frozen dataclass's `__init__` pays a generic `object.__setattr__` call per field (1.6 µs for an
    AuditEvent, as much as the rest of normalizing). Instead `__new__` fills an instance of a twin
    class with the same slots and no frozen `__setattr__`, then gives it the real class (same
    layout, so CPython allows the switch): 0.35 µs. The result is the frozen class's own instance,
    immutable, equal, hashed and printed as before. `cls.build(...)` takes the same arguments and
    skips `type.__call__` as well (0.25 µs): for decoders' hot paths."""
    fs = fields(cls)  # type: ignore[arg-type]
    if any(f.default is MISSING and f.default_factory is not MISSING for f in fs):
        raise TypeError(f"{cls.__name__}: fast_init does not support default_factory")
    slots = cls.__slots__  # type: ignore[attr-defined]
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": slots})
    params = ", ".join(f.name if f.default is MISSING else f"{f.name}=_d_{f.name}" for f in fs)
    sets = "".join(f"    self.{f.name} = {f.name}\n" for f in fs)
    source = f"def __new__(cls, {params}):\n    self = _new(_twin)\n{sets}    self.__class__ = cls\n    return self\n"
    # `build`: the same without going through type.__call__ (0.15 µs less), for hot paths.
    source += (
        f"def build({params}):\n    self = _new(_twin)\n{sets}    self.__class__ = _cls\n    return self\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    namespace.update({f"_d_{f.name}": f.default for f in fs if f.default is not MISSING})
    exec(compile(source, f"<{cls.__name__}.__new__>", "exec"), namespace)
    new = namespace["__new__"]
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    cls.__new__ = new  # type: ignore[method-assign]
    cls.build = staticmethod(namespace["build"])  # type: ignore[attr-defined]
    cls.__init__ = object.__init__  # type: ignore[method-assign]  # everything was set in __new__
    return cls


# Where classes lived before the model had one home, and before the streaming stages were split. A
# streaming job updated in place (Dataflow `--update`) keeps pickles of them in its state (suppression
# holds candidates with their hit, event and rule; both stages their per-key metadata); they load as the
# classes' new homes. Paths only: nothing here imports the pipeline.
MOVED_MODULES = {
    "kubesigma.connectors.event": "kubesigma.connectors.model.event",
    "kubesigma.detections.rule": "kubesigma.connectors.model.rule",
}
_MOVED_CLASSES = {
    ("kubesigma.connectors.model.event", "RawRecord"): "kubesigma.connectors.model.records",
    ("kubesigma.connectors.model.event", "DeadLetter"): "kubesigma.connectors.model.records",
    ("kubesigma.connectors.model.event", "Skipped"): "kubesigma.connectors.model.records",
    ("kubesigma.pipeline.streaming", "CorrelationHit"): "kubesigma.pipeline.correlate",
    ("kubesigma.pipeline.streaming", "_GroupMeta"): "kubesigma.pipeline.correlate",
    ("kubesigma.pipeline.streaming", "Candidate"): "kubesigma.pipeline.alerts",
    ("kubesigma.pipeline.streaming", "_RunMeta"): "kubesigma.pipeline.suppress",
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = MOVED_MODULES.get(module, module)
        module = _MOVED_CLASSES.get((module, name), module)
        return super().find_class(module, name)


def load_pickle(data: bytes) -> Any:
    """`pickle.loads`, also for pickles of model classes written where they lived before."""
    try:
        # In C first: a pickle naming a class where it lived before fails here (none of those paths
        # resolves any more), and only such pickles pay for the mapping unpickler, a Python class whose
        # construction alone cost the correlation state more than unpickling its rows did.
        return pickle.loads(data)
    except (ImportError, AttributeError):
        return _Unpickler(io.BytesIO(data)).load()
