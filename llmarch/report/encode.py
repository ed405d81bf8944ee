"""Indented JSON text, byte for byte what `json.dumps(value, indent=2, allow_nan=False)` writes, faster.

With `indent` set, the standard library encodes in pure Python, one generator per nested value: for the
~7000 values of `llmarch compare --all` that is a noticeable part of the command's start-up. This writes
the same text from one loop per container: strings through the C escaper `json` itself uses, integers and
floats through the same `repr`s, and anything else (non-string keys, other types) through `json.dumps`, so
every value the standard library accepts gives the same text and every one it refuses raises the same error.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:  # the C escaper json.dumps uses (ensure_ascii=True); the pure-Python one where it is missing
    from _json import encode_basestring_ascii as _encode_str
except ImportError:  # pragma: no cover - CPython always has it
    from json.encoder import py_encode_basestring_ascii as _encode_str

_INDENT = "  "
_LITERALS: dict[Any, str] = {None: "null", True: "true", False: "false"}


def dumps_indented(value: Any, level: int = 0) -> str:
    """`json.dumps(value, indent=2, allow_nan=False)`, the text indented `level` levels deeper after the first
    line (as it stands inside an enclosing object)."""
    out: list[str] = []
    _encode(value, "\n" + _INDENT * level, out)
    return "".join(out)


def _scalar(value: Any) -> str | None:
    """The JSON text of a string, number, bool or None; None for anything else."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
        return float.__repr__(value)
    if value is None or kind is bool:
        return _LITERALS[value]
    return None


def _encode(value: Any, newline: str, out: list[str]) -> None:
    """Append the text of `value`; `newline` is a line break followed by the current indentation."""
    text = _scalar(value)
    if text is not None:
        out.append(text)
        return
    kind = type(value)
    inner = newline + _INDENT
    if kind is dict and all(type(key) is str for key in value):
        if not value:
            out.append("{}")
            return
        out.append("{")
        separator = inner
        for key, item in value.items():
            kind = type(item)
            # The common scalars inline (this loop runs for every value of a document); the rest as above.
            if kind is str:
                out.append(f"{separator}{_encode_str(key)}: {_encode_str(item)}")
            elif kind is int:
                out.append(f"{separator}{_encode_str(key)}: {int.__repr__(item)}")
            elif item is None:
                out.append(f"{separator}{_encode_str(key)}: null")
            else:
                out.append(f"{separator}{_encode_str(key)}: ")
                _encode(item, inner, out)
            separator = "," + inner
        out.append(newline + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        out.append("[")
        for index, item in enumerate(value):
            out.append(inner if index == 0 else "," + inner)
            _encode(item, inner, out)
        out.append(newline + "]")
    else:  # subclasses, non-string keys, unsupported types: exactly as the standard library does it
        out.append(json.dumps(value, indent=2, allow_nan=False).replace("\n", newline))
