"""Text that is safe to show: control characters and terminal escape sequences made visible, never obeyed.

A preset file, a config.json or a command-line argument can carry ESC sequences (clear the screen, set the
window title, OSC 52 writes the clipboard), carriage returns that overwrite a line, or bidirectional overrides
that reorder it. Names are refused at validation (`has_control`); everything else is passed through
`printable` before it reaches a terminal, a CSV cell or a Markdown line.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (0x80-0x9f; 0x9b is a one-byte CSI), Unicode line/paragraph separators,
# and the bidirectional embeddings, overrides and isolates (the "Trojan Source" characters). Patterns as text:
# `re` compiles each on first use and keeps it (a command that shows nothing never compiles them).
_CONTROL = "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
_CONTROL_EXCEPT_TAB_NEWLINE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character written as a visible escape ('\\x1b'), so nothing is executed.

    With `keep_newlines`, tabs and line feeds stay (multi-line terminal output); carriage returns never do.
    """
    pattern = _CONTROL_EXCEPT_TAB_NEWLINE if keep_newlines else _CONTROL
    return re.sub(pattern, _visible, text)


def has_control(text: str) -> bool:
    """Whether `text` holds a control, line-separator or bidirectional-override character."""
    return re.search(_CONTROL, text) is not None
