"""File input and output shared by every layer: the atomic writer and the JSON input reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmarch.core.errors import InvalidValueError


def write_atomic(path: str | Path, content: str | bytes, *, what: str = "--output") -> None:
    """Write `content` (text as UTF-8, or bytes) to `path` atomically: a temporary file beside it, then a
    rename, so a reader never sees half a file and an interrupted run leaves the old one."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidValueError(f"{what}: folder {str(folder)!r} does not exist")
    import tempfile

    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file owner-only (0600); give it the mode a plain open() would (0666 less umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_file(path: str | Path, *, what: str) -> Any:
    """Parse a JSON input file, or raise InvalidValueError naming the option (`what`) and the problem."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidValueError(f"{what}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidValueError(f"{what}: {str(path)!r} is not JSON: {exc}") from None
