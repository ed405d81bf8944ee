"""Bounded YAML for preset files: the safe subset, YAML 1.2 scalars, no aliases, no duplicate keys.

PyYAML's `safe_load` is safe against code execution but not against denial of service or silent misreads:
- anchors and aliases let 1 KB expand into gigabytes ("billion laughs"): refused here while composing,
  before anything is expanded, with a cap on nesting depth and on the number of nodes;
- YAML 1.1 reads `010` as 8, `2:3` as 123 (base 60), `on`/`yes` as booleans and `2020-01-01` as a date:
  here scalars follow the YAML 1.2 core schema (`010` is 10, `2:3` and `on` are strings);
- a repeated key silently keeps the last value: here it is an error naming both lines;
- a key that is not text (`1:`, `null:`, `[a, b]:`) is an error, as is any tag outside the core schema.

The loader scans with libyaml when PyYAML has it (the scanner is the slow part) and composes in Python, so
every check runs before any value is built. Errors are `yaml.MarkedYAMLError`s with a line number.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

#: Deepest nesting of mappings and sequences (a preset nests two levels: `training:` facts).
MAX_DEPTH = 32
#: Most nodes (scalars, mappings, sequences) in one document; a preset has about a hundred.
MAX_NODES = 100_000

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_ALLOWED_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _SEQ, _MAP})


class PresetYAMLError(yaml.MarkedYAMLError):
    """A document outside the preset subset of YAML (alias, duplicate key, non-text key, tag, too deep)."""


class Resolver12(Resolver):
    """Implicit types of the YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)."""

    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {}


def _add(tag: str, pattern: str, first: str) -> None:
    Resolver12.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_add(_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add(_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_add(
    _FLOAT,
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    "-+.0123456789",
)
_add(_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])  # type: ignore[arg-type]


class _Constructor(SafeConstructor):
    """SafeConstructor with YAML 1.2 integers (`010` = 10, `0o10` = 8) and checked mapping keys."""

    def construct_yaml_int(self, node: ScalarNode) -> int:  # type: ignore[override]
        text = str(self.construct_scalar(node))
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
        base = 16 if digits.startswith("0x") else 8 if digits.startswith("0o") else 10
        digits = digits[2:] if base != 10 else digits
        if len(digits) > 30:
            raise PresetYAMLError(None, None, f"integer {text[:20]}... has more than 30 digits", node.start_mark)
        try:
            return sign * int(digits, base)
        except ValueError:
            raise PresetYAMLError(None, None, f"{text[:40]!r} is not an integer", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a " + key_node.id
                raise PresetYAMLError(
                    None, None, f"keys must be field names (text); got {shown!r}; quote it", key_node.start_mark
                )
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise PresetYAMLError(
                    None,
                    None,
                    f"duplicate key {key_node.value!r} (lines {seen[key_node.value]} and {line})",
                    key_node.start_mark,
                )
            seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


_Constructor.add_constructor(_INT, _Constructor.construct_yaml_int)
for _tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:set",
             "tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs"):  # fmt: skip
    _Constructor.yaml_constructors.pop(_tag, None)


class _BoundedComposer(Composer):
    """Composer that refuses anchors and aliases and caps depth and node count before building anything."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise PresetYAMLError(
                None, None, "anchors and aliases (&name, *name) are not allowed; use 'extends:'", event.start_mark
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise PresetYAMLError(None, None, f"more than {MAX_NODES} values in one file", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            raise PresetYAMLError(None, None, f"tag {tag!r} is not allowed in a preset", event.start_mark)
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise PresetYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        if not isinstance(event, ScalarEvent):
            raise PresetYAMLError(None, None, "unexpected YAML event", event.start_mark)
        return super().compose_node(parent, index)


try:
    from yaml.cyaml import CParser as _Parser  # libyaml's scanner and parser: ~6x faster

    _HAVE_LIBYAML = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _HAVE_LIBYAML = False


def _make_loader() -> type:
    if _HAVE_LIBYAML:

        class PresetLoader(_Parser, _BoundedComposer, _Constructor, Resolver12):  # type: ignore[misc, valid-type]
            """libyaml parser + the bounded Python composer + YAML 1.2 resolution + checked construction."""

            def __init__(self, stream: str) -> None:
                _Parser.__init__(self, stream)
                _BoundedComposer.__init__(self)
                _Constructor.__init__(self)
                Resolver12.__init__(self)

            # CParser brings its own (C) composer; use the bounded Python one, fed by libyaml's events.
            get_single_node = _BoundedComposer.get_single_node
            compose_document = _BoundedComposer.compose_document
            compose_node = _BoundedComposer.compose_node
            compose_scalar_node = _BoundedComposer.compose_scalar_node
            compose_sequence_node = _BoundedComposer.compose_sequence_node
            compose_mapping_node = _BoundedComposer.compose_mapping_node
            check_node = _BoundedComposer.check_node
            get_node = _BoundedComposer.get_node

        return PresetLoader

    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class PurePresetLoader(Reader, Scanner, Parser, _BoundedComposer, _Constructor, Resolver12):
        """Pure-Python PyYAML: the same checks, slower."""

        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _BoundedComposer.__init__(self)
            _Constructor.__init__(self)
            Resolver12.__init__(self)

    return PurePresetLoader


#: The loader class (a SafeLoader-compatible subclass of PyYAML's safe constructor with the checks above).
PresetLoader = _make_loader()


def load(text: str) -> Any:
    """Parse one YAML document under the preset rules; raises yaml.YAMLError (with a line) on anything else."""
    loader = PresetLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
