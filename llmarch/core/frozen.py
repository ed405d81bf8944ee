"""`frozen_dataclass`: `@dataclass(frozen=True)` with its comparison, hash and repr shared, not generated.

`dataclasses` writes the source of `__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__` and
`__delattr__` for every class and compiles it when the module is imported: for the ~80 result records of
llmarch that is several milliseconds of every command's start-up (`llmarch estimate-cost` imports 21 of
them). Three of the six do the same thing in every class, so this decorator lets `dataclasses` generate
only `__init__` and the frozen `__setattr__`/`__delattr__`, and installs one shared `__eq__`, `__hash__`
and `__repr__` that behave exactly as the generated ones (the same fields compared, hashed and shown, the
same rules for methods a class writes itself). Standard library only.
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
import typing
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving a record's values of `names` as a tuple (as the generated methods build them)."""
    if not names:
        return lambda _: ()
    getter = operator.attrgetter(*names)
    return getter if len(names) > 1 else lambda obj: (getter(obj),)


@typing.dataclass_transform(frozen_default=True)
def frozen_dataclass(cls: type[T]) -> type[T]:
    """`@dataclass(frozen=True)`, with `__eq__`, `__hash__` and `__repr__` shared instead of generated.

    As generated: `==` compares the fields with `compare=True` as a tuple when both objects are of the very
    same class (NotImplemented otherwise); the hash is that of the fields with `hash=True`, or `hash=None`
    and `compare=True`; the repr is `QualName(field=value!r, ...)` over the fields with `repr=True`, guarded
    against recursion. A method the class body defines itself is kept (a class defining `__eq__` alone still
    gets the shared hash, as `dataclass` would give it the generated one)."""
    own = dict(cls.__dict__)
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    made: Any = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
    fields = dataclasses.fields(made)
    compared = _values(tuple(f.name for f in fields if f.compare))
    hashed = _values(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))
    shown = tuple(f.name for f in fields if f.repr)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(compared(self) == compared(other))
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    if "__eq__" not in own:
        made.__eq__ = __eq__
    if not explicit_hash:
        made.__hash__ = __hash__
    if "__repr__" not in own:
        made.__repr__ = __repr__
    for method in (__eq__, __hash__, __repr__):
        method.__qualname__ = f"{made.__qualname__}.{method.__name__}"
    return typing.cast(type[T], made)
