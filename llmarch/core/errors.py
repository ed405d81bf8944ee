"""Domain errors. Library code raises these; only the CLI turns them into one line and an exit code."""

from __future__ import annotations


class LlmarchError(Exception):
    """Base class for every error a user can cause (bad preset, bad value, unknown name)."""

    exit_code = 1


class UnknownPresetError(LlmarchError):
    """A preset name that matches no shipped or user preset."""

    def __init__(self, name: str, suggestions: list[str] | None = None):
        self.name = name
        self.suggestions = suggestions or []
        hint = ""
        if self.suggestions:
            hint = "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        else:
            hint = "; run 'llmarch presets' to list them"
        super().__init__(f"unknown preset {name!r}{hint}")


class InvalidConfigError(LlmarchError):
    """An architecture description (preset file, override or config.json) that cannot be valid."""

    def __init__(self, message: str, *, origin: str | None = None, field: str | None = None):
        self.origin = origin
        self.field = field
        prefix = f"{origin}: " if origin else ""
        where = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{where}{message}")


class InvalidValueError(LlmarchError):
    """A command-line or API value that is malformed or out of range (a size, a dtype, a count)."""


class LlmarchWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as one line)."""
