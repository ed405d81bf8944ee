"""Hostile and careless input (issue 14): no denial of service, no injection, no lost files, no stale or
silently wrong numbers, no tracebacks.

Every case runs a real command and checks its exit code, that an error is exactly one line on stderr with
no traceback and no raw control character, and (autouse fixture) that nothing outside the test's tmp_path
changed. Most cases run in-process (CliRunner); the denial-of-service and stream cases run the console
script in a subprocess under a 4 GiB address-space limit and a timeout. No case points an output at a
device: FIFOs live in tmp_path, a full disk is a monkeypatched os.write.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmarch import load
from llmarch.catalog import presets
from llmarch.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

TINY = """\
name: tiny
source: https://example.com/tiny
architecture: decoder
n_layers: 2
d_model: 64
n_heads: 4
d_ff: 256
vocab_size: 1000
max_seq_len: 128
position: learned
norm: layernorm
norm_position: pre
final_norm: true
mlp: gelu
tie_embeddings: true
"""


def _snapshot() -> dict[str, tuple[int, int, int]]:
    """Names, sizes, modes and mtimes of the repository's top level, presets/ and tests/ (what a stray write
    or an atomic rename in the wrong folder would change)."""
    seen: dict[str, tuple[int, int, int]] = {}
    for folder in (REPO, REPO / "presets", REPO / "tests"):
        for entry in os.scandir(folder):
            info = entry.stat(follow_symlinks=False)
            seen[entry.path] = (info.st_size, info.st_mode, info.st_mtime_ns)
    return seen


@pytest.fixture(autouse=True)
def _contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each case runs in its own tmp_path (working folder and parse cache) and must touch nothing else."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("LLMARCH_DEBUG", raising=False)
    for cache in (presets._cache, presets._validated_cache):
        cache.entries = None
        cache.pending = {}
    presets._load_cached.cache_clear()
    presets._index_cached.cache_clear()
    before = _snapshot()
    yield
    presets._load_cached.cache_clear()
    presets._index_cached.cache_clear()
    after = {k: v for k, v in _snapshot().items() if "__pycache__" not in k and ".pytest_cache" not in k}
    assert after == {k: v for k, v in before.items() if "__pycache__" not in k and ".pytest_cache" not in k}


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_clean_error(code: int, out: str, err: str, *, contains: str = "", exit_code: int = 1) -> str:
    """A clean failure: the exit code, one line on stderr starting 'error:', no traceback, no raw escape."""
    assert code == exit_code, (code, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    assert "\x1b" not in err and "\r" not in err
    assert contains.lower() in err.lower(), err
    return lines[0]


def write(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def compare_json(*specs: str) -> list[dict[str, Any]]:
    code, out, err = cli("compare", *specs, "--format", "json")
    assert code == 0, err
    return json.loads(out)["models"]


def run_limited(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60, **kwargs: Any) -> Any:
    """The console script in a subprocess under a 4 GiB address-space limit, with a timeout."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    code = "import sys; from llmarch.cli import main; sys.argv[0] = 'llmarch'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=full_env,
        preexec_fn=limit,
        timeout=timeout,
        capture_output=True,
        text=True,
        **kwargs,
    )


# -- 1. bounded YAML -------------------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)

BAD_YAML = {
    "alias bomb": (BOMB, "aliases"),
    "alias": (TINY + "notes: &n hello\ndescription: *n\n", "aliases"),
    "anchor only": (TINY.replace("n_layers: 2", "n_layers: &l 2"), "anchors"),
    "recursive alias": ("a: &a [*a]\n", "aliases"),
    "merge key": ("base: &b {n_layers: 2}\n<<: *b\n", "aliases"),
    "duplicate key": (TINY + "n_layers: 48\n", "duplicate key 'n_layers'"),
    "duplicate training key": (TINY + "training:\n  tokens: 1\n  tokens: 2\n", "duplicate key 'tokens'"),
    "sexagesimal": (TINY.replace("n_layers: 2", "n_layers: 2:3"), "n_layers"),
    "on key": (TINY + "on: true\n", "unknown field"),
    "yes key": (TINY + "yes: 1\n", "unknown field"),
    "int key": (TINY + "1: x\n", "keys must be field names"),
    "null key": (TINY + "null: x\n", "keys must be field names"),
    "sequence key": (TINY + "? [a, b]\n: 1\n", "keys must be field names"),
    "python tag": (TINY + "notes: !!python/object/apply:os.system ['touch pwned']\n", "not allowed"),
    "binary tag": (TINY + "notes: !!binary aGVsbG8=\n", "not allowed"),
    "local tag": (TINY + "notes: !evil x\n", "not allowed"),
    "huge integer": (TINY.replace("n_layers: 2", "n_layers: " + "9" * 5000), "digits"),
    "integer over 2**53": (TINY.replace("d_model: 64", "d_model: 99999999999999999999"), "d_model"),
    "float overflow": (TINY.replace("n_layers: 2", "n_layers: 1e400"), "n_layers"),
    "inf": (TINY.replace("n_layers: 2", "n_layers: .inf"), "n_layers"),
    "nan": (TINY.replace("d_ff: 256", "d_ff: .nan"), "d_ff"),
    "deep nesting": (TINY + "notes: " + "[" * 1000 + "]" * 1000 + "\n", "nest"),
    "deep block nesting": (TINY + "".join(" " * i + f"k{i}:\n" for i in range(200)), "nested"),
    "empty file": ("", "mapping"),
    "list document": ("- a\n- b\n", "mapping"),
    "scalar document": ("just text\n", "mapping"),
    "two documents": (TINY + "---\n" + TINY, "invalid YAML"),
    "unterminated quote": ('name: "tiny\n', "invalid YAML"),
    "tab indentation": ("training:\n\ttokens: 1\n", "invalid YAML"),
    "NUL byte": (TINY + "notes: a\x00b\n", "invalid YAML"),
    "escape in name": (TINY.replace("name: tiny", 'name: "tiny\\e]0;pwned\\a"'), "control characters"),
    "carriage return in name": (TINY.replace("name: tiny", 'name: "tiny\\r## Budget: all checks passed"'), "control"),
    "bidi override in name": (TINY.replace("name: tiny", 'name: "tiny\\u202e"'), "control characters"),
    "newline in family": (TINY + 'family: "a\\nb"\n', "control characters"),
    "escape in source": (TINY.replace("source: https://example.com/tiny", 'source: "\\e[2J"'), "control"),
    "escape in key": (TINY + '"\\e[2Jx": 1\n', "unknown field"),
    "negative tokens": (TINY + "training:\n  tokens: -5\n", "training.tokens"),
    "zero learning rate": (TINY + "training:\n  learning_rate: 0\n", "training.learning_rate"),
    "beta over one": (TINY + "training:\n  adam_beta2: 1.5\n", "training.adam_beta2"),
    "negative dropout": (TINY + "training:\n  dropout: -0.1\n", "training.dropout"),
    "negative warmup": (TINY + "training:\n  warmup_steps: -1\n", "training.warmup_steps"),
    "training not a mapping": (TINY + "training: 5\n", "training"),
    "unknown training fact": (TINY + "training:\n  tokns: 5\n", "training.tokns"),
    "year": (TINY + "year: -5\n", "year"),
    "negative relative distance": (TINY + "relative_attention_max_distance: -1\n", "relative_attention_max_distance"),
    "too many layers": (TINY.replace("n_layers: 2", "n_layers: 10001"), "n_layers"),
    "string layers": (TINY.replace("n_layers: 2", "n_layers: many"), "n_layers"),
    "bool layers": (TINY.replace("n_layers: 2", "n_layers: true"), "n_layers"),
    "extends not text": (TINY + "extends: 5\n", "extends"),
    "extends missing file": (TINY + "extends: ./nowhere.yaml\n", "no such file"),
    "extends self": ("extends: ./p.yaml\n", "extends"),
}


@pytest.mark.parametrize("case", list(BAD_YAML))
def test_bad_preset_file_is_one_line(tmp_path: Path, case: str) -> None:
    text, message = BAD_YAML[case]
    path = write(tmp_path, text)
    assert_clean_error(*cli("compare", str(path)), contains=message)
    assert not (tmp_path / "pwned").exists()


def test_bad_bytes_are_one_line(tmp_path: Path) -> None:
    for name, data, message in [
        ("latin1.yaml", TINY.encode() + "notes: caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("utf16.yaml", TINY.encode("utf-16"), "not UTF-8"),
        ("big.yaml", TINY.encode() + b"#" * (1 << 20) + b"\n", "limit"),
    ]:
        assert_clean_error(*cli("compare", str(write(tmp_path, data, name))), contains=message)


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [("010", 10), ("0o10", 8), ("0x10", 16), ("+12", 12), ("12.0", 12), ("1_2", 12)],
)
def test_yaml_1_2_integers(tmp_path: Path, yaml_value: str, expected: int) -> None:
    path = write(tmp_path, TINY.replace("n_layers: 2", f"n_layers: {yaml_value}"))
    assert compare_json(str(path))[0]["n_layers"] == expected


def test_yaml_1_1_words_are_text(tmp_path: Path) -> None:
    path = write(tmp_path, TINY + "description: 2020-01-01\nnotes: on\nfamily: no\ntraining:\n  optimizer: yes\n")
    config = load(str(path))
    assert (config.description, config.notes, config.family, config.training.optimizer) == (
        "2020-01-01",
        "on",
        "no",
        "yes",
    )
    assert config.training.tokens is None


def test_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    # YAML 1.1 reads 2e12 (no dot, no sign) as a string; 1.2 as a number.
    assert load(str(write(tmp_path, TINY + "training:\n  tokens: 2e12\n"))).training.tokens == 2e12


# -- 2. the parse cache ----------------------------------------------------------------------------------------


def _cache_entries(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "cache" / presets._CACHE_FILE
    return json.loads(path.read_text())["entries"] if path.exists() else {}


def test_cache_keyed_by_content_not_mtime(tmp_path: Path) -> None:
    path = write(tmp_path, TINY)
    assert compare_json(str(path))[0]["n_layers"] == 2
    info = path.stat()
    path.write_text(TINY.replace("n_layers: 2", "n_layers: 7"))  # same size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # same mtime, as cp -p or rsync -a leave it
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    presets._cache.entries = None
    presets._load_cached.cache_clear()
    assert compare_json(str(path))[0]["n_layers"] == 7


def test_cache_keeps_only_validated_files(tmp_path: Path) -> None:
    bad = write(tmp_path, TINY.replace("n_layers: 2", "n_layers: -3"), "bad.yaml")
    bomb = write(tmp_path, BOMB, "bomb.yaml")
    assert_clean_error(*cli("compare", str(bad)), contains="n_layers")
    assert_clean_error(*cli("compare", str(bomb)), contains="aliases")
    assert _cache_entries(tmp_path) == {}
    good = write(tmp_path, TINY, "good.yaml")
    compare_json(str(good))
    assert [entry["n_layers"] for entry in _cache_entries(tmp_path).values()] == [2]


def test_large_files_are_not_cached(tmp_path: Path) -> None:
    path = write(tmp_path, TINY + "notes: " + "x" * (200 << 10) + "\n")
    assert compare_json(str(path))[0]["n_layers"] == 2
    assert _cache_entries(tmp_path) == {}


def test_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presets, "MAX_CACHE_ENTRIES", 3)
    for i in range(6):
        path = write(tmp_path, TINY.replace("n_layers: 2", f"n_layers: {i + 1}"), f"p{i}.yaml")
        assert compare_json(str(path))[0]["n_layers"] == i + 1
    assert len(_cache_entries(tmp_path)) == 3


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[" * 200_000, b'{"version": 2, "entries": {"x": 5, "y": [1]}}', b"\xff\xfe", b"null", b"7"],
)
def test_corrupt_cache_is_ignored_and_rewritten(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / presets._CACHE_FILE).write_bytes(content)
    path = write(tmp_path, TINY)
    assert compare_json(str(path))[0]["n_layers"] == 2
    assert len(_cache_entries(tmp_path)) == 1


def _forget_caches(*, validated_file: bool = False, tmp_path: Path | None = None) -> None:
    """Make the next load read the cache files again (and, with `validated_file`, find no validated configs)."""
    if validated_file and tmp_path is not None:
        for entry in (tmp_path / "cache" / presets._VALIDATED_FOLDER).iterdir():
            entry.unlink()
    presets._cache.entries = None
    presets._validated_cache.entries = None
    presets._load_cached.cache_clear()
    presets._index_cached.cache_clear()


def test_tampered_cache_entry_is_still_validated(tmp_path: Path) -> None:
    path = write(tmp_path, TINY)
    compare_json(str(path))
    cache_file = tmp_path / "cache" / presets._CACHE_FILE
    document = json.loads(cache_file.read_text())
    for entry in document["entries"].values():
        entry["n_layers"] = -1
    cache_file.write_text(json.dumps(document))
    _forget_caches()
    assert compare_json(str(path))[0]["n_layers"] == 2  # the validated config of these very bytes
    _forget_caches(validated_file=True, tmp_path=tmp_path)
    assert_clean_error(*cli("compare", str(path)), contains="n_layers")  # a parse is validated before use


def test_validated_config_is_used_only_for_the_same_bytes(tmp_path: Path) -> None:
    base = write(tmp_path, TINY, "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nd_ff: 256\n", "child.yaml")
    assert compare_json(str(child))[0]["n_layers"] == 2
    base.write_text(TINY.replace("n_layers: 2", "n_layers: 5"))  # the parent changes, the child file does not
    _forget_caches()
    assert compare_json(str(child))[0]["n_layers"] == 5


def test_validated_config_of_a_name_follows_a_shadowing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    monkeypatch.setenv(presets.PRESET_PATH_ENV, str(folder))
    assert compare_json("gpt-2")[0]["n_layers"] == 12
    write(folder, TINY.replace("name: tiny", "name: gpt-2"), "gpt-2.yaml")  # now found first by name
    _forget_caches()
    assert compare_json("gpt-2")[0]["n_layers"] == 2


def test_cache_fifo_or_folder_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    os.mkfifo(tmp_path / "cache" / presets._CACHE_FILE)
    assert compare_json("gpt-2")[0]["name"] == "gpt-2"
    assert stat.S_ISFIFO((tmp_path / "cache" / presets._CACHE_FILE).stat().st_mode)


def test_cache_file_linked_to_a_device_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / presets._CACHE_FILE).symlink_to("/dev/zero")  # read-only use: refused after fstat
    assert compare_json(str(write(tmp_path, TINY)))[0]["n_layers"] == 2
    assert os.readlink(tmp_path / "cache" / presets._CACHE_FILE) == "/dev/zero"


@pytest.mark.parametrize("kind", ["fifo", "device link", "folder"])
def test_a_validated_entry_that_is_not_a_regular_file_is_left_alone(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "cache" / presets._VALIDATED_FOLDER
    folder.mkdir(parents=True)
    entry = folder / f"{presets._spec_key('gpt-2')}.json"
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "device link":
        entry.symlink_to("/dev/zero")
    else:
        entry.mkdir()
    assert compare_json("gpt-2")[0]["name"] == "gpt-2"  # a miss: loaded and validated, no hang
    assert entry.is_symlink() if kind == "device link" else entry.exists() and not entry.is_file()


def test_validated_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / presets._VALIDATED_FOLDER).write_text("not a folder")
    assert compare_json("gpt-2")[0]["name"] == "gpt-2"
    assert (tmp_path / "cache" / presets._VALIDATED_FOLDER).read_text() == "not a folder"


def test_cache_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a folder")
    assert compare_json("gpt-2")[0]["name"] == "gpt-2"
    assert (tmp_path / "cache").read_text() == "not a folder"


# -- 3. extends, derived widths, numbers ------------------------------------------------------------------------


def test_relative_extends_follows_the_including_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base.yaml").write_text(TINY)
    (tmp_path / "models" / "child.yaml").write_text("extends: base.yaml\nname: child\nn_layers: 5\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "base.yaml").write_text(TINY.replace("d_model: 64", "d_model: 4096"))
    seen = set()
    for cwd in (tmp_path, tmp_path / "elsewhere", tmp_path / "models"):
        monkeypatch.chdir(cwd)
        presets._load_cached.cache_clear()
        record = compare_json(os.path.relpath(tmp_path / "models" / "child.yaml"))[0]
        seen.add((record["n_layers"], record["d_model"], record["params_total"]))
    assert len(seen) == 1 and next(iter(seen))[:2] == (5, 64)


def test_overriding_heads_rederives_a_derived_d_head() -> None:
    # llama-2-7b writes d_head: 128 = 4096 / 32; 16 heads of 256 keep the published 6.74B.
    record = compare_json("llama-2-7b:n_heads=16,n_kv_heads=16")[0]
    assert record["d_head"] == 256
    assert record["params_total"] == 6_738_415_616


def test_extends_changing_d_model_rederives(tmp_path: Path) -> None:
    path = write(tmp_path, "extends: llama-2-7b\nname: wide\nd_model: 5120\nn_heads: 40\nn_kv_heads: 40\n")
    assert compare_json(str(path))[0]["d_head"] == 128
    path = write(tmp_path, "extends: llama-2-7b\nname: wide\nd_model: 8192\n")
    assert compare_json(str(path))[0]["d_head"] == 256


def test_explicit_d_head_is_kept_with_a_warning() -> None:
    # gemma-7b: d_head 256 with d_model 3072 and 16 heads (not 3072 / 16): a real choice, kept and reported.
    code, out, err = cli("compare", "gemma-7b:n_heads=8,n_kv_heads=8", "--format", "json")
    assert code == 0 and "Traceback" not in err
    assert json.loads(out)["models"][0]["d_head"] == 256
    assert err.count("\n") == 1 and err.startswith("warning: ") and "d_head" in err


BAD_OVERRIDES = {
    "llama-2-7b:n_layers=2:3": "n_layers",
    "llama-2-7b:n_layers=1e400": "n_layers",
    "llama-2-7b:n_layers=" + "9" * 5000: "n_layers",
    "llama-2-7b:n_layers=10001": "n_layers",
    "llama-2-7b:training.tokens=-5": "training.tokens",
    "llama-2-7b:training.tokens=1e400": "training.tokens",
    "llama-2-7b:training=5": "training",
    "llama-2-7b:n_layers=5,n_layers.x=1": "n_layers",
    "llama-2-7b:training.tokens.x=1": "training.tokens",
    "llama-2-7b:a..b=1": "a..b",
    "llama-2-7b:n_layers=*a": "n_layers",
    "llama-2-7b:n_layers=!!python/object:os.system": "n_layers",
    "llama-2-7b:n_layers=[1,2]": "n_layers",
    "llama-2-7b:d_model=-1": "d_model",
    "llama-2-7b:name=x\x1b]0;pwned\x07": "name",
    "llama-2-7b:family=x\u202ey": "control",
    "llama-2-7b:rope_theta=1e31": "rope_theta",
    "llama-2-7b:training.adam_beta1=2": "adam_beta1",
    "llama-2-7b:sliding_window=0": "sliding_window",
    "llama-2-7b:n_kv_heads=0": "n_kv_heads",
}


@pytest.mark.parametrize("spec", list(BAD_OVERRIDES))
def test_bad_override_is_one_line(spec: str) -> None:
    assert_clean_error(*cli("compare", spec), contains=BAD_OVERRIDES[spec])


def test_override_yaml_1_2() -> None:
    assert compare_json("llama-2-7b:n_layers=010")[0]["n_layers"] == 10


BAD_NUMBERS = [
    ["compare", "llama-2-7b", "--batch", "9" * 400],
    ["compare", "llama-2-7b", "--seq-len", "9" * 400, "--columns", "inference"],
    ["memory", "llama-2-7b", "--batch", "9" * 100],
    ["estimate-cost", "llama-2-7b", "--tokens", "2.8e299", "--gpu", "h100-sxm"],
    ["estimate-cost", "llama-2-7b", "--tokens", "1e400", "--gpu", "h100-sxm"],
    ["estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--prompt-len", "9" * 300],
]


@pytest.mark.parametrize("args", BAD_NUMBERS, ids=lambda a: " ".join(a)[:50])
def test_huge_numbers_are_one_line(args: list[str]) -> None:
    code, out, err = cli(*args)
    assert_clean_error(code, out, err)
    assert "inf" not in out


# -- 4. preset folders -------------------------------------------------------------------------------------------


def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    return folder


def test_fifo_in_preset_folder(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    os.mkfifo(folder / "x.yaml")
    env = {presets.PRESET_PATH_ENV: str(folder)}
    code, _, err = cli("compare", "llama-2-7b", "--format", "json", env=env)
    assert code == 0 and err == ""
    assert_clean_error(*cli("compare", "x", env=env), contains="FIFO")
    assert_clean_error(*cli("compare", "--all", env=env), contains="FIFO")
    assert stat.S_ISFIFO((folder / "x.yaml").stat().st_mode)


def test_symlink_to_device_in_preset_folder(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    (folder / "z.yaml").symlink_to("/dev/zero")  # read-only use: opened non-blocking, refused after fstat
    env = {presets.PRESET_PATH_ENV: str(folder)}
    assert_clean_error(*cli("compare", "z", env=env), contains="device")
    assert cli("compare", "gpt-2", env=env)[0] == 0


def test_folder_named_like_a_preset(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    (folder / "d.yaml").mkdir()
    env = {presets.PRESET_PATH_ENV: str(folder)}
    assert_clean_error(*cli("compare", "d", env=env), contains="folder")


def test_unreadable_preset_folder_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _user_folder(tmp_path)
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Any:
        if self == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code, out, err = cli("compare", "llama-2-7b", "--format", "json", env={presets.PRESET_PATH_ENV: str(folder)})
    assert code == 0 and json.loads(out)["models"][0]["name"] == "llama-2-7b"
    assert err.count("\n") == 1 and err.startswith("warning: ") and "Permission denied" in err


@pytest.mark.skipif(IS_ROOT, reason="root reads folders whatever their mode")
def test_unreadable_preset_folder_by_mode(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    folder.chmod(0)
    try:
        code, _, err = cli("compare", "llama-2-7b", env={presets.PRESET_PATH_ENV: str(folder)})
        assert code == 0 and "Traceback" not in err
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("entry", ["missing", "file", "empty"])
def test_odd_preset_path_entries(tmp_path: Path, entry: str) -> None:
    (tmp_path / "file").write_text("x")
    value = {"missing": str(tmp_path / "nope"), "file": str(tmp_path / "file"), "empty": os.pathsep}[entry]
    code, _, err = cli("compare", "gpt-2", env={presets.PRESET_PATH_ENV: value})
    assert code == 0
    if entry == "file":  # a file where a folder belongs is worth one line; a missing folder is not
        assert err.count("\n") == 1 and err.startswith("warning: ") and "Not a directory" in err
    else:
        assert err == ""


def test_bomb_in_preset_folder_does_not_affect_others(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    (folder / "bomb.yaml").write_text(BOMB)
    env = {presets.PRESET_PATH_ENV: str(folder)}
    assert cli("compare", "llama-2-7b", env=env)[0] == 0
    assert_clean_error(*cli("compare", "bomb", env=env), contains="aliases")


def test_user_preset_name_must_match_file(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    (folder / "mine.yaml").write_text(TINY)
    assert_clean_error(*cli("compare", "mine", env={presets.PRESET_PATH_ENV: str(folder)}), contains="file name")


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_special_file_given_as_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "s.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    assert_clean_error(*cli("compare", str(path)), contains="not a regular file")


def test_extends_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "base.yaml")
    path = write(tmp_path, "extends: ./base.yaml\nname: c\n")
    assert_clean_error(*cli("compare", str(path)), contains="FIFO")


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    assert_clean_error(*cli("compare", str(tmp_path / "a.yaml")), contains="cycle")


# -- JSON inputs (config.json, --bench) -----------------------------------------------------------------------

HF = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "max_position_embeddings": 128,
}

BAD_JSON = {
    "deep nesting": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
    "moderate nesting": (b'{"model_type": "llama", "x": ' + b"[" * 500 + b"]" * 500 + b"}", "nested"),
    "not utf-8": (b'{"model_type": "ll\xe9ma"}', "not UTF-8"),
    "huge integer": (b'{"model_type": "llama", "hidden_size": ' + b"9" * 5000 + b"}", "JSON"),
    "NaN": (b'{"model_type": "llama", "hidden_size": NaN}', "NaN"),
    "list": (b"[1, 2]", "JSON object"),
    "truncated": (b'{"model_type": "llama", ', "JSON"),
    "rope_scaling string": (json.dumps({**HF, "rope_scaling": "linear"}).encode(), "rope"),
    "rope_theta string": (json.dumps({**HF, "rope_theta": "fast"}).encode(), ""),
    "heads string": (json.dumps({**HF, "num_attention_heads": "four"}).encode(), ""),
    "escape in model_type": (json.dumps({**HF, "model_type": "\x1b[2Jllama"}).encode(), ""),
}


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_config_json_is_one_line(tmp_path: Path, case: str) -> None:
    data, message = BAD_JSON[case]
    path = write(tmp_path, data, "config.json")
    assert_clean_error(*cli("compare", str(path)), contains=message)


def test_config_json_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.json")
    assert_clean_error(*cli("compare", str(tmp_path / "config.json")), contains="FIFO")


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b"\xff\xfe{}",
        b'{"schema_version": 1, "results": 5}',
        b"NaN",
        b'{"schema_version": ' + b"9" * 5000 + b"}",
    ],
    ids=["deep", "utf16", "results", "nan", "huge"],
)
def test_bad_bench_file_for_report(tmp_path: Path, data: bytes) -> None:
    bench = write(tmp_path, data, "bench.json")
    out = tmp_path / "r.md"
    assert_clean_error(*cli("report", "gpt-2", "--bench", str(bench), "--no-images", "-o", str(out)))
    assert not out.exists()


# -- 5. output safety ----------------------------------------------------------------------------------------------


def test_rewrite_keeps_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    out.chmod(0o600)
    assert cli("compare", "gpt-2", "--format", "json", "-o", str(out))[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["models"][0]["name"] == "gpt-2"


def test_new_file_gets_umask_mode(tmp_path: Path) -> None:
    out = tmp_path / "new.json"
    old = os.umask(0o022)
    try:
        assert cli("compare", "gpt-2", "--format", "json", "-o", str(out))[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_output_to_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as fh:
            received.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    import time

    for _ in range(200):  # wait until the reader has the FIFO open (a writer without one gets ENXIO)
        code, _, err = cli("compare", "gpt-2", "--format", "json", "-o", str(fifo))
        if code == 0:
            break
        assert "no reader" in err
        time.sleep(0.01)
    thread.join(timeout=10)
    assert json.loads(received[0])["models"][0]["name"] == "gpt-2"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["pipe"]


def test_output_to_fifo_without_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_clean_error(*cli("compare", "gpt-2", "-o", str(fifo)), contains="no reader")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_report_to_fifo_writes_no_assets_beside_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_clean_error(*cli("report", "gpt-2", "--format", "markdown", "-o", str(fifo)), contains="no reader")
    assert not (tmp_path / "pipe_assets").exists() and stat.S_ISFIFO(fifo.stat().st_mode)


def test_output_through_symlink_keeps_link(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert cli("compare", "gpt-2", "--format", "json", "-o", str(link))[0] == 0
    assert link.is_symlink() and json.loads(target.read_text())["models"][0]["name"] == "gpt-2"


@pytest.mark.parametrize("kind", ["folder", "empty", "blank", "trailing slash", "missing folder", "socket"])
def test_bad_output_targets(tmp_path: Path, kind: str) -> None:
    import socket

    sock = None
    if kind == "folder":
        target = str(tmp_path)
    elif kind == "empty":
        target = ""
    elif kind == "blank":
        target = "  "
    elif kind == "trailing slash":
        target = str(tmp_path / "newdir") + "/"
    elif kind == "missing folder":
        target = str(tmp_path / "no" / "x.json")
    else:
        target = str(tmp_path / "s.sock")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(target)
    try:
        assert_clean_error(*cli("compare", "gpt-2", "-o", target))
    finally:
        if sock is not None:
            sock.close()
    assert not (tmp_path / "newdir").exists()


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        if fd > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    assert_clean_error(*cli("compare", "gpt-2", "-o", str(out)), contains="No space left")
    monkeypatch.setattr(os, "write", real_write)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["out.json"]


def test_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert_clean_error(*cli("compare", "gpt-2", "-o", str(tmp_path / "x.json")), contains="Read-only")


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_read_only_folder_by_mode(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert_clean_error(*cli("compare", "gpt-2", "-o", str(folder / "x.json")), contains="Permission")
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(IS_ROOT, reason="root may write any file")
def test_read_only_file_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "locked.json"
    out.write_text("keep")
    out.chmod(0o444)
    assert_clean_error(*cli("compare", "gpt-2", "-o", str(out)), contains="read-only")
    assert out.read_text() == "keep"


def test_report_assets_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "r_assets").write_text("mine")
    assert_clean_error(*cli("report", "gpt-2", "-o", str(tmp_path / "r.md")), contains="r_assets")
    assert (tmp_path / "r_assets").read_text() == "mine"


# -- 6. injection ------------------------------------------------------------------------------------------------


def _named(tmp_path: Path, name: str, **fields: str) -> str:
    extra = "".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items())
    text = TINY.replace("name: tiny", f"name: {json.dumps(name)}") + extra
    if "source" in fields:
        text = text.replace("source: https://example.com/tiny\n", "")
    return str(write(tmp_path, text))


def test_markdown_table_escapes_html_and_pipes(tmp_path: Path) -> None:
    spec = _named(tmp_path, "<img src=x onerror=alert(1)>|x")
    code, out, _ = cli("compare", spec, "--format", "markdown")
    assert code == 0
    header, _, row = out.strip().splitlines()
    assert len(re.split(r"(?<!\\)\|", row)) == len(re.split(r"(?<!\\)\|", header))  # no extra cell
    assert "<" not in out and "&lt;img src=x onerror=alert(1)>\\|x" in out
    assert len(out.strip().splitlines()) == 3


def test_markdown_links_cannot_break_out(tmp_path: Path) -> None:
    source = "https://example.com/a)![x](https://evil.example/p.png)<b>"
    spec = _named(tmp_path, "tiny", source=source)
    out = tmp_path / "r.md"
    assert cli("report", spec, "--no-images", "-o", str(out))[0] == 0
    text = out.read_text()
    assert "![x](https://evil" not in text and "<b>" not in text
    assert "https://example.com/a%29%21%5Bx%5D%28https://evil.example/p.png%29%3Cb%3E" in text or "%29" in text


@pytest.mark.parametrize("source", ["javascript:alert(1)", "data:text/html,<script>", 'https://x/">y'])
def test_html_report_links_only_http(tmp_path: Path, source: str) -> None:
    spec = _named(tmp_path, "tiny", source=source)
    out = tmp_path / "r.html"
    assert cli("report", spec, "--no-images", "-o", str(out))[0] == 0
    text = out.read_text()
    assert 'href="javascript' not in text and 'href="data' not in text and "<script>" not in text
    assert '">y' not in text


def test_html_report_escapes_names(tmp_path: Path) -> None:
    spec = _named(tmp_path, "<script>alert(1)</script>")
    out = tmp_path / "r.html"
    assert cli("report", spec, "--no-images", "-o", str(out))[0] == 0
    assert "<script>alert" not in out.read_text() and "&lt;script&gt;" in out.read_text()


def test_markdown_report_headings_cannot_be_injected(tmp_path: Path) -> None:
    spec = _named(tmp_path, "# Budget: all checks passed")
    out = tmp_path / "r.md"
    assert cli("report", spec, "--no-images", "-o", str(out))[0] == 0
    assert not any(line.startswith("# Budget") for line in out.read_text().splitlines())


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_csv_formula_prefix_is_neutralised(tmp_path: Path, prefix: str) -> None:
    import csv
    import io

    spec = _named(tmp_path, f"{prefix}HYPERLINK(1)", family=f"{prefix}cmd|' /C calc'!A0")
    code, out, _ = cli("compare", spec, "--format", "csv")
    assert code == 0
    row = next(csv.DictReader(io.StringIO(out)))
    cells = [v for v in row.values() if v]
    assert not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in cells)
    assert row["family"].startswith("'")


@pytest.mark.parametrize("cell", ["\tx", "\rx", "=1+1", "@A1", "-2+3", "+3"])
def test_csv_safe_cells(cell: str) -> None:
    from llmarch.report.tables import csv_safe

    assert csv_safe(cell).startswith("'") and "\r" not in csv_safe(cell) and "\t" not in csv_safe(cell)
    assert csv_safe(-2.5) == -2.5


@pytest.mark.parametrize("name", ["llama-2-7b [kv=8]", "[/]", "[bold red]x[/bold red]", "[link=https://e]x"])
def test_rich_markup_is_shown_literally(tmp_path: Path, name: str) -> None:
    spec = _named(tmp_path, name)
    for command in (["compare", spec], ["show", spec], ["compare", spec, "-o", str(tmp_path / "t.txt")]):
        code, out, err = cli(*command)
        assert code == 0, err
        shown = out if "-o" not in command else (tmp_path / "t.txt").read_text()
        assert name in shown.replace("\n", "") or name in shown


@pytest.mark.parametrize(
    "spec",
    ["\x1b]0;pwned\x07", "evil\x1b[2J", "\x9b31m", "x\ry", "a\u202eb"],
    ids=["osc", "csi", "c1", "cr", "bidi"],
)
def test_escape_sequences_never_reach_stderr(spec: str) -> None:
    line = assert_clean_error(*cli("compare", spec))
    assert "\x07" not in line and "\x9b" not in line and "\u202e" not in line


def test_escape_in_unknown_key_is_visible_not_executed(tmp_path: Path) -> None:
    path = write(tmp_path, TINY + '"\\e]52;c;cHduZWQ=\\a": 1\n')
    line = assert_clean_error(*cli("compare", str(path)), contains="unknown field")
    assert "\\x1b]52" in line and "\x07" not in line


def test_file_name_with_newline(tmp_path: Path) -> None:
    path = tmp_path / "a\nb.yaml"
    path.write_text("n_layers: [")
    assert_clean_error(*cli("compare", str(path)), contains="invalid YAML")


# -- 7. the error boundary ------------------------------------------------------------------------------------------


def test_internal_error_is_one_line_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmarch.calc import comparison

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug")

    monkeypatch.setattr(comparison, "compare_records", broken)
    assert_clean_error(*cli("compare", "gpt-2"), contains="internal error")
    result = runner.invoke(app, ["compare", "gpt-2"], env={"LLMARCH_DEBUG": "1"})
    assert isinstance(result.exception, TypeError)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EIO, "Input/output error"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ValueError("bad"),
        OverflowError("too big"),
        RecursionError("deep"),
    ],
    ids=["oserror", "unicode", "value", "overflow", "recursion"],
)
def test_input_output_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    from llmarch.calc import comparison

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(comparison, "compare_records", failing)
    assert_clean_error(*cli("compare", "gpt-2"))


# -- subprocess cases: memory limit, timeouts, streams ---------------------------------------------------------------


def assert_clean_process(proc: Any, *, exit_code: int = 1, contains: str = "") -> None:
    assert_clean_error(proc.returncode, proc.stdout, proc.stderr, contains=contains, exit_code=exit_code)


def test_alias_bomb_under_memory_limit(tmp_path: Path) -> None:
    big = (
        "a: &a ["
        + ", ".join(["x"] * 30)
        + "]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 30)}]\n" for i in range(12))
    )
    path = write(tmp_path, big)
    proc = run_limited(["compare", str(path)], env={presets.CACHE_ENV: str(tmp_path / "cache")}, timeout=60)
    assert_clean_process(proc, contains="aliases")


def test_fifo_and_zero_under_limits(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path)
    os.mkfifo(folder / "x.yaml")
    (folder / "z.yaml").symlink_to("/dev/zero")
    env = {presets.PRESET_PATH_ENV: str(folder), presets.CACHE_ENV: str(tmp_path / "cache")}
    for name in ("x", "z"):
        assert_clean_process(run_limited(["compare", name], env=env, timeout=60), contains="not a regular file")
    proc = run_limited(["compare", "llama-2-7b"], env=env, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    env = {presets.CACHE_ENV: str(tmp_path / "cache")}
    for args, message in [
        (["compare", "llama-2-7b", "--batch", "2.8e299"], "--batch"),
        (["compare", "llama-2-7b", "--bogus"], "--bogus"),
        (["compare"], "preset"),
    ]:
        assert_clean_process(run_limited(args, env=env), exit_code=2, contains=message)


def test_streams(tmp_path: Path) -> None:
    env = {presets.CACHE_ENV: str(tmp_path / "cache")}
    spec = _named(tmp_path, "caf\u00e9-\u2603")
    # An ASCII-only terminal: non-ASCII output is escaped, not a UnicodeEncodeError.
    proc = run_limited(["compare", spec], env={**env, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "caf" in proc.stdout
    # stdout closed before start (llmarch ... >&-): one line, exit 1.
    closed = subprocess.run(
        [sys.executable, "-c", "import sys; from llmarch.cli import main; sys.argv[0] = 'llmarch'; main()",
         "compare", "gpt-2"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        preexec_fn=lambda: os.close(1),
        stderr=subprocess.PIPE, text=True, timeout=60,
    )  # fmt: skip
    assert closed.returncode == 1 and closed.stderr.count("\n") == 1 and "closed" in closed.stderr
    # with -o, a closed stdout does not matter
    closed_ok = subprocess.run(
        [sys.executable, "-c", "import sys; from llmarch.cli import main; sys.argv[0] = 'llmarch'; main()",
         "compare", "gpt-2", "-o", str(tmp_path / "x.txt")],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        preexec_fn=lambda: os.close(1),
        stderr=subprocess.PIPE, text=True, timeout=60,
    )  # fmt: skip
    assert closed_ok.returncode == 0 and closed_ok.stderr == "" and (tmp_path / "x.txt").exists()
    # A reader that goes away (| head -1): no traceback.
    head = subprocess.Popen(
        [sys.executable, "-c", "import sys; from llmarch.cli import main; sys.argv[0] = 'llmarch'; main()",
         "compare", "--all", "--format", "csv"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert head.stdout is not None
    head.stdout.readline()
    head.stdout.close()
    _, err = head.communicate(timeout=60)
    assert b"Traceback" not in err and err.count(b"\n") <= 1
