"""`frozen_dataclass` behaves as `@dataclass(frozen=True)`: the same equality, hash, repr and immutability."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmarch.core.frozen import frozen_dataclass


def both(body: dict[str, Any], annotations: dict[str, Any]) -> tuple[type, type]:
    """The same class body made by `frozen_dataclass` and by `dataclass(frozen=True)`."""

    def make(decorate: Any) -> type:
        return decorate(type("Rec", (), {**body, "__annotations__": dict(annotations)}))

    return make(frozen_dataclass), make(dataclasses.dataclass(frozen=True))


SHAPES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({}, {"a": "int"}),
    ({"b": 2.5}, {"a": "int", "b": "float"}),
    ({"b": dataclasses.field(default=1, compare=False)}, {"a": "int", "b": "int"}),
    ({"b": dataclasses.field(default=1, hash=False)}, {"a": "int", "b": "int"}),
    ({"b": dataclasses.field(default=1, repr=False)}, {"a": "int", "b": "int"}),
    ({"b": dataclasses.field(default=1, compare=False, hash=True)}, {"a": "int", "b": "int"}),
    ({"c": dataclasses.field(default_factory=tuple)}, {"a": "str", "c": "tuple"}),
]


@pytest.mark.parametrize(("body", "annotations"), SHAPES, ids=range(len(SHAPES)))
def test_equality_hash_and_repr_are_those_dataclass_generates(
    body: dict[str, Any], annotations: dict[str, Any]
) -> None:
    ours, theirs = both(body, annotations)
    required = sum(name not in body for name in annotations)
    calls = [v for v in ([], [1], [1, 2], [2, 2], [1, 3]) if required <= len(v) <= len(annotations)]
    for values in calls:
        for other in calls:
            a, b, x, y = ours(*values), ours(*other), theirs(*values), theirs(*other)
            assert (a == b) == (x == y) and (a != b) == (x != y)
            assert (hash(a) == hash(b)) == (hash(x) == hash(y))
            assert hash(a) == hash(x) and repr(a) == repr(x)
    assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(theirs)]


def test_frozen_and_other_classes() -> None:
    ours, theirs = both({}, {"a": "int"})
    record = ours(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.a = 2  # type: ignore[attr-defined]
    assert (record == theirs(1)) is False  # another class: never equal, as generated
    assert record.__eq__(theirs(1)) is NotImplemented
    assert dataclasses.replace(record, a=3) == ours(3)


def test_methods_the_class_writes_are_kept() -> None:
    def eq(self: Any, other: object) -> bool:
        return True

    def hash_(self: Any) -> int:
        return 7

    def repr_(self: Any) -> str:
        return "mine"

    ours, theirs = both({"__eq__": eq}, {"a": "int"})  # __eq__ alone: the class still gets the dataclass hash
    assert ours(1) == ours(2) and hash(ours(1)) == hash(theirs(1))
    ours, theirs = both({"__hash__": hash_, "__repr__": repr_}, {"a": "int"})
    assert hash(ours(1)) == 7 == hash(theirs(1)) and repr(ours(1)) == "mine" == repr(theirs(1))
    assert ours(1) != ours(2)


def test_a_subclass_compares_its_own_fields() -> None:
    base = frozen_dataclass(type("Base", (), {"__annotations__": {"a": "int"}}))
    child = frozen_dataclass(type("Child", (base,), {"__annotations__": {"b": "int"}}))
    assert child(1, 2) != child(1, 3) and child(1, 2) == child(1, 2) and child(1, 2) != base(1)
    assert repr(child(1, 2)) == "Child(a=1, b=2)"


def test_recursive_repr_is_guarded() -> None:
    ours, theirs = both({}, {"items": "list"})
    loop: list[Any] = []
    record, twin = ours(loop), theirs(loop)
    loop.append(record)
    assert repr(record) == "Rec(items=[...])"
    loop[0] = twin
    assert repr(twin) == "Rec(items=[...])"
