"""File input and output shared by every layer: the one atomic writer and the bounded input readers.

Inputs (preset files, config.json, bench results) may come from a pull request, so reading is bounded:
regular files only (a FIFO would block, /dev/zero never ends), opened non-blocking, at most `limit`
bytes, UTF-8. Outputs never lose a file: a regular file is replaced atomically and keeps its mode; a FIFO
or character device (`-o /dev/stdout`) is written through, never replaced by a regular file; anything
else is refused. Every failure is an InvalidValueError of one line naming the option and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from llmarch.core.errors import InvalidValueError

#: Largest preset file read (a preset is a few hundred bytes; a YAML bomb needs no more than this).
MAX_PRESET_BYTES = 1 << 20
#: Largest JSON input read (config.json, bench results).
MAX_JSON_BYTES = 64 << 20
#: Deepest nesting of a JSON input (a config.json nests 3 levels; 100 000 '[' would exhaust the stack).
MAX_JSON_DEPTH = 64

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class InputFileError(InvalidValueError):
    """An input file that cannot be read: missing, not a regular file, too large or not UTF-8."""

    def __init__(self, path: str | Path, reason: str, *, what: str | None = None):
        self.path = str(path)
        self.reason = reason
        prefix = f"{what}: " if what else ""
        if reason.startswith("cannot read: "):
            super().__init__(f"{prefix}cannot read {self.path!r}: {reason.removeprefix('cannot read: ')}")
        else:
            super().__init__(f"{prefix}{self.path!r} {reason}")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bytes(path: str | Path, *, limit: int = MAX_PRESET_BYTES, what: str | None = None) -> bytes:
    """The bytes of regular file `path` (symlinks followed), at most `limit` of them; never blocks."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}", what=what) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(path, f"is {_kind(info.st_mode)}, not a regular file", what=what)
        if info.st_size > limit:
            raise InputFileError(path, f"is {info.st_size} bytes; the limit is {limit}", what=what)
        chunks, total = [], 0
        while total <= limit:  # read to EOF: st_size can lie (procfs, a file still growing)
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise InputFileError(path, f"is larger than the limit of {limit} bytes", what=what)
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}", what=what) from None
    finally:
        os.close(fd)


def read_text(path: str | Path, *, limit: int = MAX_PRESET_BYTES, what: str | None = None) -> str:
    """`read_bytes` decoded as UTF-8 (a leading byte-order mark is dropped)."""
    return decode_text(read_bytes(path, limit=limit, what=what), path, what=what)


def decode_text(data: bytes, path: str | Path, *, what: str | None = None) -> str:
    """The bytes of file `path` as UTF-8 text (a leading byte-order mark dropped); InputFileError if they are not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise InputFileError(path, f"is not UTF-8 text (byte 0x{bad:02x} at offset {exc.start})", what=what) from None


def refuse_json_constant(name: str) -> Any:
    """`json.loads(parse_constant=...)`: NaN, Infinity and -Infinity are errors, not numbers."""
    raise ValueError(f"{name} is not a JSON number")


def _check_depth(document: Any, limit: int) -> bool:
    """Whether `document` nests at most `limit` containers deep (iterative: no recursion to exhaust)."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def parse_json(text: str, *, origin: str, what: str | None = None) -> Any:
    """Parse JSON text: NaN/Infinity, integers over 4300 digits and nesting over MAX_JSON_DEPTH are errors."""
    try:
        document = json.loads(text, parse_constant=refuse_json_constant)
    except json.JSONDecodeError as exc:
        raise InputFileError(origin, f"is not JSON: {exc.msg} at line {exc.lineno}", what=what) from None
    except RecursionError:
        raise InputFileError(origin, f"is nested deeper than {MAX_JSON_DEPTH} levels", what=what) from None
    except ValueError as exc:  # int digits limit, NaN
        raise InputFileError(origin, f"is not valid JSON: {str(exc).splitlines()[0]}", what=what) from None
    if not _check_depth(document, MAX_JSON_DEPTH):
        raise InputFileError(origin, f"is nested deeper than {MAX_JSON_DEPTH} levels", what=what)
    return document


def read_json_file(path: str | Path, *, what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON input file, or raise InvalidValueError naming the option (`what`) and the problem."""
    return parse_json(read_text(path, limit=limit, what=what), origin=str(path), what=what)


# -- output ----------------------------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_through(path: str, data: bytes, what: str, kind: str) -> None:
    """Write into an existing FIFO or character device (or /dev/stdout) without replacing the node."""
    try:
        # Non-blocking open: a FIFO without a reader fails (ENXIO) instead of hanging.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        reason = "a FIFO with no reader" if exc.errno == errno.ENXIO else exc.strerror or str(exc)
        raise InvalidValueError(f"{what}: cannot write {path!r}: {reason}") from None
    try:
        os.set_blocking(fd, True)
        _write_all(fd, data)
    except OSError as exc:
        raise InvalidValueError(f"{what}: cannot write {path!r} ({kind}): {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _is_stream_alias(path: str) -> bool:
    """Whether `path` names an open stream (/dev/stdout, /dev/fd/1, /proc/self/fd/1): written through, since
    replacing what it resolves to would leave the stream's reader with nothing."""
    absolute = os.path.abspath(path)
    return absolute in ("/dev/stdout", "/dev/stderr") or absolute.startswith(("/dev/fd/", "/proc/"))


def writes_through(path: str | Path) -> bool:
    """Whether `write_atomic(path, ...)` writes into an existing stream (FIFO, character device, /dev/stdout)
    rather than a file: nothing can be written "beside" such a target (a report's images, for one)."""
    raw = os.fspath(path)
    try:
        info = os.stat(raw)
    except OSError:
        return False
    return not stat.S_ISREG(info.st_mode) or _is_stream_alias(raw)


def write_atomic(path: str | Path, content: str | bytes, *, what: str = "--output", mode: int | None = None) -> None:
    """Write `content` (text as UTF-8, or bytes) to `path` atomically: a temporary file beside it, then a
    rename, so a reader never sees half a file and an interrupted run leaves the old one.

    An existing file keeps its permission bits (and owner, where allowed); a new one gets `mode` or the
    mode a plain open() would give (0666 less umask). A symlink is followed (the link stays). FIFOs,
    character devices and stream aliases (/dev/stdout, /dev/fd/N) are written through; folders, sockets and block
    devices are refused. Any failure (disk full, read-only folder) is one InvalidValueError.
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise InvalidValueError(f"{what}: the file name is empty")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        info: os.stat_result | None = os.stat(raw)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise InvalidValueError(f"{what}: cannot write {raw!r}: {exc.strerror or exc}") from None
    if info is not None and (not stat.S_ISREG(info.st_mode) or _is_stream_alias(raw)):
        kind = _kind(info.st_mode)
        if stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISREG(info.st_mode):
            _write_through(raw, data, what, kind)
            return
        raise InvalidValueError(f"{what}: {raw!r} is {kind}; name a regular file")
    if info is not None and not os.access(raw, os.W_OK):
        raise InvalidValueError(f"{what}: {raw!r} is read-only; make it writable or pick another name")
    if raw.endswith(("/", os.sep)):
        raise InvalidValueError(f"{what}: {raw!r} names a folder; name a file")
    target = Path(os.path.realpath(raw)) if os.path.islink(raw) else Path(raw)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidValueError(f"{what}: folder {str(folder)!r} does not exist")
    _replace(target, folder, data, info, what, mode)


def _replace(target: Path, folder: Path, data: bytes, info: os.stat_result | None, what: str, mode: int | None) -> None:
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InvalidValueError(f"{what}: cannot write in {str(folder)!r}: {exc.strerror or exc}") from None
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
            # mkstemp creates the file owner-only (0600): give it the old file's mode, or a new file's.
            os.fchmod(fd, stat.S_IMODE(info.st_mode) if info is not None else (mode or _new_file_mode()))
            if info is not None and (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(OSError):  # not allowed unless root; the mode is still kept
                    os.fchown(fd, info.st_uid, info.st_gid)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InvalidValueError(f"{what}: cannot write {str(target)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_folder(path: str | Path, *, what: str = "--output") -> Path:
    """Create folder `path` if missing (one level); a file of that name is an error, not a traceback."""
    folder = Path(path)
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:
        raise InvalidValueError(
            f"{what}: {str(folder)!r} exists and is not a folder; move it or pick another name"
        ) from None
    except OSError as exc:
        raise InvalidValueError(f"{what}: cannot create folder {str(folder)!r}: {exc.strerror or exc}") from None
    return folder
