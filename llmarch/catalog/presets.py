"""Preset loading: the only code that reads preset files.

A preset spec is one of
- a preset name (`llama-2-7b`), looked up exactly in the folders of `LLMARCH_PRESET_PATH` (first) and
  in the presets shipped with llmarch;
- a path to a preset YAML file, or to a Hugging Face `config.json` (mapped by `llmarch.catalog.hf`);
- either of those followed by inline overrides: `llama-2-7b:n_kv_heads=8,sliding_window=4096`.

A preset file may say `extends: <spec>` and list only the fields it changes. `extends` inherits the architecture
only: the parent's `training:` facts carry over (merged key by key) only when the file says
`inherit_training: true`, so a fine-tune never shows its base's pre-training tokens as its own. Files whose name
starts with `_` (`_gpt-3.yaml`) are family bases: the fields a family shares, for its presets to extend; they are
not listed by `preset_names` and cannot be loaded by name on their own. YAML is read with `yaml.safe_load` only:
tags such as `!!python/object` are errors.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidConfigError, LlmarchError, UnknownPresetError
from llmarch.core.frozen import frozen_dataclass

PRESET_PATH_ENV = "LLMARCH_PRESET_PATH"
PRESET_SUFFIXES = (".yaml", ".yml")
_MAX_EXTENDS_DEPTH = 16


def shipped_presets_dir() -> Path:
    """Folder of the presets shipped with llmarch (inside the wheel, or `presets/` of a source checkout)."""
    package = Path(__file__).resolve().parent.parent  # llmarch/
    installed = package / "presets"
    return installed if installed.is_dir() else package.parent / "presets"


def preset_dirs() -> list[Path]:
    """Folders searched for preset names, in priority order: LLMARCH_PRESET_PATH entries, then shipped."""
    dirs = [Path(p).expanduser() for p in os.environ.get(PRESET_PATH_ENV, "").split(os.pathsep) if p.strip()]
    return [*dirs, shipped_presets_dir()]


@frozen_dataclass
class PresetInfo:
    """Where a named preset lives (for listing without loading)."""

    name: str
    path: Path
    shipped: bool


def _index() -> dict[str, PresetInfo]:
    return _index_cached(os.environ.get(PRESET_PATH_ENV, ""))


@functools.lru_cache(maxsize=8)
def _index_cached(_preset_path: str) -> dict[str, PresetInfo]:
    found: dict[str, PresetInfo] = {}
    shipped = shipped_presets_dir()
    for folder in preset_dirs():
        for path in _folder_entries(folder):
            if path.suffix in PRESET_SUFFIXES and path.stem not in found:
                found[path.stem] = PresetInfo(path.stem, path, folder == shipped)
    return found


def _folder_entries(folder: Path) -> list[Path]:
    """Sorted entries of a preset folder; a missing folder is empty, an unreadable one is skipped with a
    warning (so a broken LLMARCH_PRESET_PATH entry never stops `compare llama-2-7b`). Entries are not
    opened here: reading one that is not a regular file (a FIFO, /dev/zero) is an error when it is loaded."""
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        import warnings

        from llmarch.core.errors import LlmarchWarning

        warnings.warn(
            f"{PRESET_PATH_ENV}: skipping {str(folder)!r}: {exc.strerror or exc}", LlmarchWarning, stacklevel=2
        )
        return []


#: A preset file whose name starts with this is a family base: extended by presets, never listed or loaded alone.
BASE_PREFIX = "_"


def preset_names() -> list[str]:
    """Names of every preset reachable by name (user folders first, then shipped), sorted; family bases left out."""
    return sorted(name for name in _index() if not name.startswith(BASE_PREFIX))


def preset_info(name: str) -> PresetInfo:
    index = _index()
    key = canonical_preset_name(name, index)
    if key is None:
        raise UnknownPresetError(name, suggest_names(name, [n for n in index if not n.startswith(BASE_PREFIX)]))
    return index[key]


def canonical_preset_name(name: str, names: Mapping[str, Any] | list[str]) -> str | None:
    """The preset name `name` refers to, ignoring case ('llama-3-8B' -> 'llama-3-8b'); None when none does.
    An exact match wins; a name that differs from two presets only in case is ambiguous (None)."""
    if name in names:
        return name
    folded = [n for n in names if n.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def suggest_names(name: str, names: list[str]) -> list[str]:
    """Close matches for a mistyped preset name, ignoring case and punctuation ('llama2-7b' -> 'llama-2-7b')."""

    def squash(s: str) -> str:
        return re.sub(r"[^a-z0-9.]", "", s.lower())

    squashed = {squash(n): n for n in names}
    exact = squashed.get(squash(name))
    if exact:
        return [exact]
    close = difflib.get_close_matches(squash(name), list(squashed), n=3, cutoff=0.75)
    return [squashed[c] for c in close]


CACHE_ENV = "LLMARCH_CACHE_DIR"
_CACHE_FILE = "parsed-presets-v2.json"
_CACHE_VERSION = 2
#: Most files the parse cache remembers (least recently used evicted first); the shipped presets are ~60.
MAX_CACHE_ENTRIES = 512
#: A cache file larger than this is ignored (and rewritten): MAX_CACHE_ENTRIES small presets fit easily.
_MAX_CACHE_BYTES = 16 << 20
#: Files larger than this are parsed every time, not cached (a preset is about 1 KiB; this keeps the cache small).
_MAX_CACHED_FILE_BYTES = 64 << 10


def _digest(data: bytes) -> str:
    """Content key of a preset file (BLAKE2b; `_blake2` directly: hashlib would load OpenSSL, ~10 ms)."""
    try:
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - CPython always has it
        from hashlib import blake2b
    return blake2b(data, digest_size=20).hexdigest()


def cache_folder() -> str | None:
    """Folder of the preset caches: LLMARCH_CACHE_DIR, else $XDG_CACHE_HOME/llmarch or ~/.cache/llmarch; None
    when LLMARCH_CACHE_DIR is set to an empty string (no caching)."""
    folder = os.environ.get(CACHE_ENV)
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "llmarch")
    return folder or None


class _ParseCache:
    """Parsed preset files, keyed by a hash of their bytes, kept as JSON between runs.

    Parsing YAML costs about 0.5 ms a file, more than everything else `llmarch compare --all` does; the cache
    makes a repeated run read one JSON file instead. Keyed by content (not mtime and size: `cp -p`, tar and
    rsync keep both), so an edited file is always parsed afresh. A parse result is staged and kept only once
    the config it belongs to has validated (`commit`); a file that fails is never stored. At most
    MAX_CACHE_ENTRIES files (least recently used evicted); a corrupt or foreign cache file is ignored and
    rewritten. A config built from a parse is always validated (validated configs have a cache of their own,
    `_cached_config`, checked against the bytes of every file they came from). LLMARCH_CACHE_DIR moves both
    (default: $XDG_CACHE_HOME/llmarch or ~/.cache/llmarch); set it to an empty string to disable them.
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] | None = None
        self.pending: dict[str, dict[str, Any]] = {}
        self.dirty = False

    def _path(self) -> Path | None:
        folder = cache_folder()
        return Path(folder) / _CACHE_FILE if folder else None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.entries is None:
            self.entries = {}
            path = self._path()
            if path is not None and path.exists():
                from llmarch.core.io import read_text, refuse_json_constant

                # Plain json.loads: this file is our own, and every entry is checked again where it is used
                # (an entry must be a mapping; a validated config must rebuild), so the input-file depth walk
                # would only cost time.
                try:
                    data = json.loads(read_text(path, limit=_MAX_CACHE_BYTES), parse_constant=refuse_json_constant)
                except (LlmarchError, ValueError, RecursionError):
                    data = None  # unreadable or malformed: start afresh (rewritten on the next flush)
                if isinstance(data, dict) and data.get("version") == _CACHE_VERSION:
                    entries = data.get("entries")
                    if isinstance(entries, dict):
                        self.entries = {k: v for k, v in entries.items() if isinstance(v, dict)}
        return self.entries

    def get(self, digest: str) -> dict[str, Any] | None:
        entries = self._load()
        entry = entries.get(digest)
        if entry is None:
            return self.pending.get(digest)
        entries[digest] = entries.pop(digest)  # most recently used last
        return entry

    def stage(self, digest: str, data: dict[str, Any]) -> None:
        self.pending[digest] = data

    def commit(self) -> None:
        """Keep the staged parse results: the config that read them has validated."""
        if not self.pending:
            return
        entries = self._load()
        entries.update(self.pending)
        self.pending = {}
        while len(entries) > MAX_CACHE_ENTRIES:
            del entries[next(iter(entries))]
        self.dirty = True

    def discard(self) -> None:
        self.pending = {}

    def flush(self) -> None:
        """Write the cache if anything was added (best effort: a read-only home only costs speed)."""
        self.pending = {}
        target = self._path()
        if not self.dirty or target is None or self.entries is None:
            return
        self.dirty = False
        if target.is_symlink() or (target.exists() and not target.is_file()):
            return  # only ever replace a regular file of our own, never write through a link or a device
        try:
            from llmarch.core.io import write_atomic

            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, json.dumps({"version": _CACHE_VERSION, "entries": self.entries}), mode=0o600)
        except (OSError, LlmarchError):
            pass


_cache = _ParseCache()


def _read_yaml(path: Path) -> dict[str, Any]:
    """A preset file's mapping: from the parse cache when its bytes are known, else parsed (and staged)."""
    from llmarch.core.io import MAX_PRESET_BYTES, InputFileError, read_bytes

    try:
        data = read_bytes(path, limit=MAX_PRESET_BYTES)
    except InputFileError as exc:
        raise InvalidConfigError(exc.reason, origin=str(path)) from None
    digest = _digest(data)
    _record_file(path, digest)
    cached = _cache.get(digest)
    if cached is not None:
        return _copy(cached)
    parsed = _parse_yaml(data, origin=str(path))
    if len(data) <= _MAX_CACHED_FILE_BYTES and _json_safe(parsed):
        _cache.stage(digest, parsed)
    return _copy(parsed)


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """A copy deep enough that merging `extends` and overrides never changes a cached mapping."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}


def _json_safe(data: Any) -> bool:
    """Whether `data` survives a JSON round trip unchanged (it always does under the preset YAML rules)."""
    try:
        return json.loads(json.dumps(data, allow_nan=False)) == data
    except (TypeError, ValueError, RecursionError):
        return False


def _parse_yaml(data: bytes, *, origin: str) -> dict[str, Any]:
    """Parse preset YAML under the bounded rules of llmarch.catalog.yamlsafe (one-line errors with the line)."""
    import yaml

    from llmarch.catalog import yamlsafe

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidConfigError(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})", origin=origin
        ) from None
    try:
        parsed = yamlsafe.load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfigError(_yaml_problem(exc), origin=origin) from None
    except RecursionError:
        raise InvalidConfigError(
            f"invalid YAML: nested deeper than {yamlsafe.MAX_DEPTH} levels", origin=origin
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidConfigError("a preset file must be a YAML mapping of field: value", origin=origin)
    return parsed


def _yaml_problem(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"invalid YAML{where}: {problem}"


def _is_hf_config(data: dict[str, Any]) -> bool:
    return "model_type" in data or "architectures" in data


def _split_overrides(spec: str) -> tuple[str, str | None]:
    """Split 'base:key=value,...' into (base, overrides); a Windows drive 'C:\\' is not a separator."""
    match = re.match(r"^(?P<base>(?:[A-Za-z]:[\\/])?[^:]*?):(?P<ov>[A-Za-z_][\w.]*\s*=.*)$", spec)
    if match:
        return match.group("base"), match.group("ov")
    return spec, None


def parse_overrides(text: str, *, origin: str) -> dict[str, Any]:
    """Parse 'n_kv_heads=8,sliding_window=4096,training.tokens=2e12' into a nested mapping.

    Values are YAML scalars (numbers, true/false, null, strings).
    """
    import yaml

    from llmarch.catalog import yamlsafe

    result: dict[str, Any] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidConfigError(f"override {item!r} must look like field=value", origin=origin)
        try:
            value = yamlsafe.load(raw.strip()) if raw.strip() else None
        except (yaml.YAMLError, RecursionError):
            raise InvalidConfigError(f"cannot parse value {raw!r}", origin=origin, field=key) from None
        if isinstance(value, (dict, list)):
            raise InvalidConfigError(f"expected a single value, got {raw!r}", origin=origin, field=key)
        if isinstance(value, str):
            value = _maybe_number(value)
        _set_nested(result, key, value, origin=origin)
    if not result:
        raise InvalidConfigError("no overrides after ':'; write name:field=value", origin=origin)
    return result


def _set_nested(result: dict[str, Any], key: str, value: Any, *, origin: str) -> None:
    """Set `result[a][b] = value` for key 'a.b'; a key that is both a value and a group is an error."""
    parts = key.split(".")
    if not all(part.strip() for part in parts):
        raise InvalidConfigError("empty part in a dotted field name", origin=origin, field=key)
    target = result
    for depth, parent in enumerate(parts[:-1]):
        target = target.setdefault(parent, {})
        if not isinstance(target, dict):
            raise InvalidConfigError(
                "is set to a value and also used as a group", origin=origin, field=".".join(parts[: depth + 1])
            )
    if isinstance(target.get(parts[-1]), dict):
        raise InvalidConfigError(
            "is a group of fields; set one of them, e.g. training.tokens=2e12", origin=origin, field=key
        )
    target[parts[-1]] = value


def _maybe_number(value: str) -> Any:
    """Accept human counts in overrides and files ('2T', '4M' -> numbers); leave other strings alone."""
    from llmarch.core.units import parse_count

    if re.fullmatch(r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?\s*[kKmMbBtT]", value.strip()):
        number = parse_count(value)
        return int(number) if number.is_integer() else number
    return value


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base`; a `training:` mapping merges key by key."""
    merged = dict(base)
    for key, value in changes.items():
        if key == "training" and isinstance(value, dict) and isinstance(merged.get("training"), dict):
            merged["training"] = {**merged["training"], **value}
        else:
            merged[key] = value
    return merged


def _resolve_raw(spec: str, *, depth: int = 0, origin: str | None = None) -> tuple[dict[str, Any], str]:
    """Raw (pre-validation) mapping for `spec` with `extends` resolved, and the file or name it came from."""
    if depth > _MAX_EXTENDS_DEPTH:
        raise InvalidConfigError(f"'extends' chain deeper than {_MAX_EXTENDS_DEPTH}; is there a cycle?", origin=origin)
    base_spec, override_text = _split_overrides(spec)
    path = Path(base_spec).expanduser()
    if _looks_like_path(base_spec):
        if not os.path.lexists(path):
            raise InvalidConfigError("no such file", origin=base_spec)
        where = str(path)
        if path.suffix == ".json":
            raw = _read_hf_json(path)
        else:
            raw = _read_yaml(path)
            if _is_hf_config(raw):
                raw = _hf_to_raw(raw, origin=where)
    else:
        if depth == 0 and base_spec.startswith(BASE_PREFIX):
            raise InvalidConfigError(
                f"{base_spec!r} is a family base (the fields a family shares), not a preset: extend it with "
                f"'extends: {base_spec}' in a preset file"
            )
        info = preset_info(base_spec)
        where = str(info.path)
        _record_name(base_spec, where)
        raw = _read_yaml(info.path)
        stem = info.path.stem
        if raw.get("name", stem) != stem:
            raise InvalidConfigError(
                f"name {raw.get('name')!r} must equal the file name {stem!r}", origin=where, field="name"
            )
    parent = raw.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str) or not parent.strip():
            raise InvalidConfigError("must name a preset or a file", origin=where, field="extends")
        parent_raw, _ = _resolve_raw(_relative_to(parent, where), depth=depth + 1, origin=where)
        # Provenance of a published checkpoint does not carry over to a derived architecture; training facts
        # only when the file asks for them.
        for key in ("hf_id", "reference_params", "reference_exact", "reference_source", "description", "notes"):
            parent_raw.pop(key, None)
        inherit = raw.pop("inherit_training", False)
        if not isinstance(inherit, bool):
            raise InvalidConfigError(f"must be true or false, got {inherit!r}", origin=where, field="inherit_training")
        if not inherit:
            parent_raw.pop("training", None)
        parent_raw.setdefault("family", parent_raw.get("family", ""))
        inherited = {k: v for k, v in parent_raw.items() if k != "name"}  # a derived preset is named by its file
        provenance = derived_provenance(parent_raw, raw, by=where, parent=parent)
        raw = _merge_shapes(inherited, {**raw, **provenance}, origin=where)
    if override_text is not None:
        changes = parse_overrides(override_text, origin=spec)
        provenance = derived_provenance(raw, changes, by="an inline override", parent=base_spec)
        raw = _merge_shapes(raw, {**changes, **provenance}, origin=spec)
        for key in ("hf_id", "reference_params", "reference_exact", "reference_source"):
            if key not in changes:
                raw.pop(key, None)
        raw["name"] = changes.get("name", spec)
    return raw, where


#: Fields that describe a preset rather than its shape: changing them does not make another architecture.
_IDENTITY_KEYS = ("name", "extends", "source", "training", "description", "notes", "family", "year")


def derived_provenance(base: dict[str, Any], child: dict[str, Any], *, by: str, parent: str) -> dict[str, Any]:
    """`source` and `training.source` for a preset derived from preset `parent` (raw mapping `base`) by `child` (the
    keys the user wrote, in file `by` or an inline override): what changed, and that the user's file is the
    source; the parent's sources are quoted, not claimed. Keys the child sets itself are kept."""
    changed = [k for k in child if k not in _IDENTITY_KEYS and child[k] != base.get(k)]
    out: dict[str, Any] = {}
    if "source" not in child:
        what = f"changes {', '.join(changed)}" if changed else "changes no shape field"
        out["source"] = f"{by}: {parent} {what} (shapes otherwise from {parent}: {base.get('source') or '-'})"
    if "training" in child and not isinstance(child["training"], dict):
        return out  # not a mapping: validation says so
    parent_training: dict[str, Any] = base["training"] if isinstance(base.get("training"), dict) else {}
    child_training: dict[str, Any] = child["training"] if isinstance(child.get("training"), dict) else {}
    if "source" in child_training or not (parent_training or child_training):
        return out
    facts = [f"training.{k}" for k, v in child_training.items() if v != parent_training.get(k)]
    quoted = parent_training.get("source") or "no source given"
    if not parent_training:
        note = f"set in {by}"
    elif facts:
        note = f"{by} sets {', '.join(facts)}; other facts are {parent}'s published run ({quoted})"
    else:
        note = f"{parent}'s published run, not this variant's ({quoted})"
    out["training"] = {**child_training, "source": note}
    return out


def _relative_to(spec: str, including_file: str) -> str:
    """`spec` with a relative file path resolved against the folder of the file that names it (not the
    working directory, so a preset counts the same wherever llmarch runs); names are left alone."""
    base, overrides = _split_overrides(spec.strip())
    path = Path(base).expanduser()
    if not _looks_like_path(base) or path.is_absolute():
        return spec
    rebased = str(Path(including_file).parent / path)
    return rebased if overrides is None else f"{rebased}:{overrides}"


def _looks_like_path(base_spec: str) -> bool:
    return os.sep in base_spec or "/" in base_spec or os.path.splitext(base_spec)[1] in (*PRESET_SUFFIXES, ".json")


def _derived_d_head(raw: dict[str, Any]) -> int | None:
    d_model, n_heads = raw.get("d_model"), raw.get("n_heads")
    if isinstance(d_model, int) and isinstance(n_heads, int) and n_heads > 0 and d_model % n_heads == 0:
        return d_model // n_heads
    return None


def _merge_shapes(base: dict[str, Any], changes: dict[str, Any], *, origin: str) -> dict[str, Any]:
    """`_merge`, and a base's d_head that only restated d_model / n_heads follows a changed n_heads or d_model.

    A base written with `d_head: 128` next to `d_model: 4096, n_heads: 32` means "the usual split"; a child
    that changes n_heads means a new split, not 128-wide heads (8.89B params for a 7B model). A d_head that
    differs from d_model / n_heads (Gemma, T5) is a real choice and stays, with a warning saying so.
    """
    merged = _merge(base, changes)
    if "d_head" in changes or "d_head" not in base or not {"n_heads", "d_model"} & changes.keys():
        return merged
    if base["d_head"] == _derived_d_head(base):
        del merged["d_head"]  # re-derived from the new shape by ArchConfig.from_dict
    elif base["d_head"] != _derived_d_head(merged):
        import warnings

        from llmarch.core.errors import LlmarchWarning

        warnings.warn(
            f"{origin}: keeps d_head {base['d_head']} from its base although n_heads or d_model changed; "
            "set d_head to confirm or change it",
            LlmarchWarning,
            stacklevel=2,
        )
    return merged


def _read_hf_json(path: Path) -> dict[str, Any]:
    from llmarch.core.io import MAX_JSON_BYTES, InputFileError, decode_text, parse_json, read_bytes

    try:
        raw_bytes = read_bytes(path, limit=MAX_JSON_BYTES)
        _record_file(path, _digest(raw_bytes))
        data = parse_json(decode_text(raw_bytes, path), origin=str(path))
    except InputFileError as exc:
        raise InvalidConfigError(exc.reason, origin=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidConfigError("a config.json must be a JSON object", origin=str(path))
    if not _is_hf_config(data):
        return data  # a preset written as JSON
    return _hf_to_raw(data, origin=str(path))


def _hf_to_raw(data: dict[str, Any], *, origin: str) -> dict[str, Any]:
    from llmarch.catalog.hf import config_from_hf

    raw = config_from_hf(data, origin=origin)
    path = Path(origin)
    # "models/llama/config.json" is named after its folder; "llama-2-7b.json" after the file.
    raw.setdefault("name", path.parent.name if path.stem == "config" and path.parent.name else path.stem)
    raw.setdefault("source", origin)
    return raw


def load(spec: str) -> ArchConfig:
    """Load a preset by name, file path or config.json path, with optional ':field=value' overrides."""
    _checked([spec])
    try:
        return _load_one(spec.strip())
    finally:
        _cache.flush()
        _validated_cache.flush()


def _load_one(spec: str) -> ArchConfig:
    """A named preset from the in-process cache; a file path read afresh every time (it may have been edited
    since: the parse cache, keyed by content, still spares the parsing)."""
    if _looks_like_path(_split_overrides(spec)[0]):
        return _load_cached.__wrapped__(spec, "")
    return _load_cached(spec, os.environ.get(PRESET_PATH_ENV, ""))


@functools.lru_cache(maxsize=256)
def _load_cached(spec: str, _preset_path: str) -> ArchConfig:
    key = _spec_key(spec)
    cached = _cached_config(key)
    if cached is not None:
        return cached
    reads = _Reads()
    token = _reads.set(reads)
    try:
        raw, where = _resolve_raw(spec)
        origin = where if _split_overrides(spec)[1] is None else spec
        if "name" not in raw:
            raw["name"] = Path(where).stem
        config = ArchConfig.from_dict(raw, origin=origin)
    except BaseException:
        _cache.discard()  # never keep the parse of a file that does not validate
        _validated_cache.discard()
        raise
    finally:
        _reads.reset(token)
    _stage_config(key, reads, config)
    _cache.commit()
    _validated_cache.commit()
    return config


def load_many(specs: list[str]) -> list[ArchConfig]:
    """Load several specs (see `load`), in order."""
    try:
        return [_load_one(s.strip()) for s in _checked(specs)]
    finally:
        _cache.flush()
        _validated_cache.flush()


def _checked(specs: list[str]) -> list[str]:
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidConfigError("empty preset name; run 'llmarch presets' to list them")
    return specs


def load_all() -> list[ArchConfig]:
    """Every preset reachable by name, sorted by name."""
    return load_many(preset_names())


class _ValidatedCache:
    """Configs that validated, one small JSON file each (named by the key of `_spec_key`) in a folder beside the
    parse cache, so that a command loading one preset reads one entry, not every preset's.

    The parse cache's rules: an entry is staged and written only once its load commits; a file that is not
    a readable regular file of plain JSON, or that does not rebuild, is a miss (and replaced on the next
    write, never written through: links and devices are left alone); at most MAX_CACHE_ENTRIES files (the
    oldest written removed first); any failure to write only costs speed. `entries` holds the entries read or
    written in this process (None: forget them)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] | None = None
        self.pending: dict[str, dict[str, Any]] = {}
        self.ready: dict[str, dict[str, Any]] = {}

    def _folder(self) -> str | None:
        folder = cache_folder()
        return None if folder is None else os.path.join(folder, _VALIDATED_FOLDER)

    def get(self, key: str) -> dict[str, Any] | None:
        if self.entries is None:
            self.entries = {}
        if key in self.entries:
            return self.entries[key]
        folder = self._folder()
        if folder is None:
            return None
        from llmarch.core.io import read_bytes, refuse_json_constant

        try:
            entry = json.loads(
                read_bytes(os.path.join(folder, f"{key}.json"), limit=_MAX_CACHED_FILE_BYTES),
                parse_constant=refuse_json_constant,
            )
        except (LlmarchError, ValueError, RecursionError):
            return None  # absent, unreadable or malformed: a miss
        if not isinstance(entry, dict):
            return None
        self.entries[key] = entry
        return entry

    def stage(self, key: str, data: dict[str, Any]) -> None:
        self.pending[key] = data

    def commit(self) -> None:
        self.ready.update(self.pending)
        self.pending = {}

    def discard(self) -> None:
        self.pending = {}

    def flush(self) -> None:
        """Write the committed entries (best effort), then keep the folder within MAX_CACHE_ENTRIES files."""
        ready, self.ready, self.pending = self.ready, {}, {}
        name = self._folder()
        if not ready or name is None:
            return
        folder = Path(name)
        from llmarch.core.io import write_atomic

        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if folder.is_symlink() or not folder.is_dir():
                return
            for key, entry in ready.items():
                target = folder / f"{key}.json"
                if target.is_symlink() or (target.exists() and not target.is_file()):
                    continue  # only ever replace a regular file of our own
                write_atomic(target, json.dumps(entry), mode=0o600)
                if self.entries is not None:
                    self.entries[key] = entry
            self._evict(folder)
        except (OSError, LlmarchError):
            pass

    @staticmethod
    def _evict(folder: Path) -> None:
        with os.scandir(folder) as scan:
            files = [e for e in scan if e.name.endswith(".json") and e.is_file(follow_symlinks=False)]
        if len(files) > MAX_CACHE_ENTRIES:
            files.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
            for entry in files[: len(files) - MAX_CACHE_ENTRIES]:
                os.unlink(entry.path)


_VALIDATED_FOLDER = "validated-presets-v3"
_validated_cache = _ValidatedCache()


class _Reads:
    """The files one load read (path, content hash) and the names it resolved (name, path), in order."""

    def __init__(self) -> None:
        self.files: list[list[str]] = []
        self.names: list[list[str]] = []


#: The reads of the load in progress in this thread or task (None outside `_load_cached`).
_reads: ContextVar[_Reads | None] = ContextVar("llmarch_preset_reads", default=None)


def _record_file(path: Path, digest: str) -> None:
    reads = _reads.get()
    if reads is not None:
        reads.files.append([str(path), digest])


def _record_name(name: str, path: str) -> None:
    reads = _reads.get()
    if reads is not None:
        reads.names.append([name, path])


def _spec_key(spec: str) -> str | None:
    """Cache key of a preset spec: the spec with everything that decides which files it reads and how they are
    read (llmarch's version and the source files of its loader, the preset path, and for file paths or a set
    preset path the working and home folders); None where that cannot be told (a deleted working folder)."""
    preset_path = os.environ.get(PRESET_PATH_ENV, "")
    try:
        where = [os.getcwd(), os.path.expanduser("~")] if preset_path or _looks_like_path(spec) else []
        text = _loader_stamp() + json.dumps([preset_path, where, spec])
    except (OSError, ValueError):
        return None
    return _digest(text.encode("utf-8", "surrogatepass"))


@functools.cache
def _loader_stamp() -> str:
    """llmarch's version, and the size and modification time of the modules that turn files into configs
    (core/, catalog/): a cached config is never used by a loader that was edited since, even within a version."""
    from llmarch._version import __version__

    package = Path(__file__).resolve().parent.parent
    stamp = [__version__]
    for folder in (package / "core", package / "catalog"):
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    info = entry.stat()
                    stamp.append(f"{entry.name}:{info.st_size}:{info.st_mtime_ns}")
    return json.dumps(stamp)


def _cached_config(key: str | None) -> ArchConfig | None:
    """The config stored under `key`, if every file it was read from still holds the same bytes and every
    name still resolves to the same file; None otherwise (the spec is then loaded and validated in full).

    Validation is most of what loading a known preset costs; its result depends only on the files read (their
    bytes, hashed as the parse cache hashes them) and the names resolved on the way, so both are stored with
    the fields and checked again before the fields are used: an edited, replaced or shadowed file is a miss.
    """
    from llmarch.core.io import MAX_JSON_BYTES, MAX_PRESET_BYTES, read_bytes

    entry = None if key is None else _validated_cache.get(key)
    if not isinstance(entry, dict):
        return None
    files, names = entry.get("files"), entry.get("names")
    if not (isinstance(files, list) and files and isinstance(names, list)):
        return None
    try:
        for name, path in names:
            if str(preset_info(name).path) != path:
                return None
        for path, digest in files:
            limit = MAX_JSON_BYTES if path.endswith(".json") else MAX_PRESET_BYTES
            if _digest(read_bytes(path, limit=limit)) != digest:
                return None
    except (LlmarchError, TypeError, ValueError):
        return None
    return _rebuild(entry.get("fields"))


def _stage_config(key: str | None, reads: _Reads, config: ArchConfig) -> None:
    """Stage `config` under `key` with its reads, if its fields survive a JSON round trip unchanged."""
    if key is None or not reads.files:
        return
    fields = _fields_of(config)
    try:
        stored = json.loads(json.dumps(fields, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return
    if _rebuild(stored) == config:
        _validated_cache.stage(key, {"files": reads.files, "names": reads.names, "fields": fields})


def _fields_of(config: ArchConfig) -> dict[str, Any]:
    """The fields of a validated config that differ from their defaults, as plain JSON data (training facts as
    a mapping, always present)."""
    import dataclasses

    fields = {
        f.name: value
        for f in dataclasses.fields(config)
        if (value := getattr(config, f.name)) is not f.default
        and (type(value) is not type(f.default) or value != f.default)
    }
    fields["training"] = {k: v for k, v in dataclasses.asdict(config.training).items() if v is not None}
    if fields.get("weight_dtypes") is not None:
        fields["weight_dtypes"] = dict(fields["weight_dtypes"])
    return fields


def _rebuild(fields: Any) -> ArchConfig | None:
    """The config whose fields `_fields_of` gave, without validating again; None for a malformed entry.

    The frozen dataclasses are filled directly (their generated `__init__`, one `object.__setattr__` per field,
    would cost more than the rest of loading); an entry naming a field that does not exist is malformed."""
    from llmarch.core.config import DtypeMap, TrainingMeta

    if not isinstance(fields, dict) or not isinstance(fields.get("training"), dict):
        return None
    defaults, training_defaults, required = _defaults()
    if not (required <= fields.keys() <= defaults.keys() and fields["training"].keys() <= training_defaults.keys()):
        return None
    training = object.__new__(TrainingMeta)
    training.__dict__.update(training_defaults, **fields["training"])
    config = object.__new__(ArchConfig)
    config.__dict__.update(defaults, **fields)
    config.__dict__["training"] = training
    if isinstance(fields.get("weight_dtypes"), dict):
        config.__dict__["weight_dtypes"] = DtypeMap(fields["weight_dtypes"])
    return config


_REQUIRED = object()


@functools.cache
def _defaults() -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
    """Default value of every ArchConfig and TrainingMeta field (_REQUIRED for a field without one), and the
    names of the ArchConfig fields an entry must give (those without a default; `training` always is)."""
    import dataclasses

    from llmarch.core.config import TrainingMeta

    def defaults(cls: type) -> dict[str, Any]:
        return {f.name: _REQUIRED if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(cls)}

    config_defaults, training_defaults = defaults(ArchConfig), defaults(TrainingMeta)  # training facts: all optional
    required = frozenset(name for name, value in config_defaults.items() if value is _REQUIRED)
    return config_defaults, training_defaults, required
