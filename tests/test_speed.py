"""The start-up fast paths of `llmarch compare` change no number and no byte: the validated-config cache and the
indented JSON writer."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmarch.calc.comparison import compare_records
from llmarch.catalog import presets
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidConfigError
from llmarch.report.encode import dumps_indented
from llmarch.report.tables import envelope, plain, to_json


class Color(enum.IntEnum):
    RED = 1


SAMPLES: list[Any] = [
    {},
    [],
    {"a": {}, "b": [], "c": [{}], "d": [[]]},
    {"name": "llama-2-7b", "n": 7, "f": 0.1, "big": 10**30, "tiny": 1e-300, "neg": -2.5e12, "z": -0.0},
    {"text": 'quote " backslash \\ newline \n tab \t nul \x00 é ☃ \U0001f600 \ud800'},
    {"bools": [True, False, None], "tuple": (1, "x", (2.0,))},
    {1: "int key", 2.5: "float key", None: "null", False: "false"},
    {"ordered": OrderedDict([("b", 1), ("a", 2)]), "enum": Color.RED, "enum_key": {Color.RED: 1}},
    "just a string",
    3.0,
    [1, [2, [3, {"deep": [4]}]]],
]


@pytest.mark.parametrize("value", SAMPLES, ids=range(len(SAMPLES)))
def test_indented_json_is_the_standard_librarys(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2, allow_nan=False)
    nested = json.dumps({"k": value}, indent=2, allow_nan=False)
    assert nested == '{\n  "k": ' + dumps_indented(value, 1) + "\n}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_indented_json_equals_json_dumps_on_any_json_data(value: Any) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2, allow_nan=False)


@pytest.mark.parametrize("bad", [math.nan, [math.inf], {"x": -math.inf}])
def test_indented_json_refuses_what_json_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        dumps_indented(bad)


def test_indented_json_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        dumps_indented({"x": object()})


def test_plain_passes_scalars_and_rounds_floats_as_before() -> None:
    record = {"a_bytes": 1.5, "n": 3.0, "s": "x", "t": True, "nested": {"b_bytes": 0.25, "k": [2.0, 2.5]}}
    assert plain(record) == {"a_bytes": 2, "n": 3, "s": "x", "t": True, "nested": {"b_bytes": 1, "k": [2, 2.5]}}
    assert type(plain(record)["t"]) is bool


def test_compare_json_of_every_preset_equals_json_dumps() -> None:
    records = compare_records(presets.load_all())
    document = envelope("models", records, kind="compare")
    assert to_json(document) == json.dumps(document, indent=2, allow_nan=False) + "\n"


def _typed(config: ArchConfig) -> str:
    """Every field with its type (2 and 2.0 differ here, though they compare equal)."""
    return json.dumps(config.to_dict(), sort_keys=True)


@pytest.mark.parametrize("name", presets.preset_names())
def test_validated_fields_rebuild_every_preset_exactly(name: str) -> None:
    config = presets.load(name)
    rebuilt = presets._rebuild(json.loads(json.dumps(presets._fields_of(config))))
    assert rebuilt == config
    assert _typed(rebuilt) == _typed(config)
    assert rebuilt.training == config.training and hash(rebuilt) == hash(config)


def _fresh_process() -> None:
    """Forget everything held in memory, as a new `llmarch` process would; the cache files stay."""
    presets._load_cached.cache_clear()
    presets._cache.entries = None
    presets._validated_cache.entries = None


def test_second_run_skips_validation_with_equal_results(monkeypatch: pytest.MonkeyPatch) -> None:
    first = presets.load_all()
    _fresh_process()

    def refuse(*args: Any, **kwargs: Any) -> ArchConfig:
        raise AssertionError("validated again")

    monkeypatch.setattr(ArchConfig, "from_dict", refuse)
    second = presets.load_all()
    assert second == first
    assert [_typed(c) for c in second] == [_typed(c) for c in first]
    assert compare_records(second) == compare_records(first)


# A file of one's own (so an edit can be made), on the shapes of GPT-2 small (Radford et al. 2019).
TINY = "extends: gpt-2\nname: tiny\nsource: https://example.com/tiny\nn_layers: 2\n"


def test_an_edited_file_is_validated_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    assert presets.load(str(path)).n_layers == 2
    _fresh_process()
    path.write_text(TINY.replace("n_layers: 2", "n_layers: -2"))
    with pytest.raises(InvalidConfigError, match="n_layers"):
        presets.load(str(path))
    _fresh_process()
    path.write_text(TINY.replace("n_layers: 2", "n_layers: 3"))
    assert presets.load(str(path)).n_layers == 3


@pytest.mark.parametrize(
    "fields",
    [
        None,
        5,
        {"n_layers": 2},
        {"training": {}, "no_such_field": 1},
        {"training": {"no_such_fact": 1}},
        {"training": {}},
    ],
)
def test_a_malformed_validated_entry_is_validated_in_full(
    fields: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    expected = presets.load(str(path))
    _fresh_process()
    (entry_file,) = (tmp_path / "cache" / presets._VALIDATED_FOLDER).iterdir()
    entry = json.loads(entry_file.read_text())
    assert [name for name, _ in entry["names"]] == ["gpt-2", "_gpt-2"]  # the parent and its family base, by name
    assert [Path(p) for p, _ in entry["files"]] == [path, *(presets.preset_info(n).path for n in ("gpt-2", "_gpt-2"))]
    entry_file.write_text(json.dumps({**entry, "fields": fields}))  # the files still match; the fields do not
    assert _typed(presets.load(str(path))) == _typed(expected)


def test_a_second_process_reads_only_the_entries_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    presets.load_many(["gpt-2", "llama-2-7b", "mistral-7b"])
    assert len(list((tmp_path / "cache" / presets._VALIDATED_FOLDER).iterdir())) == 3
    _fresh_process()
    assert presets.load("llama-2-7b").n_layers == 32
    assert presets._validated_cache.entries is not None and len(presets._validated_cache.entries) == 1


def test_the_validated_folder_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(presets, "MAX_CACHE_ENTRIES", 2)
    presets.load_many(["gpt-2", "llama-2-7b", "mistral-7b"])
    assert len(list((tmp_path / "cache" / presets._VALIDATED_FOLDER).iterdir())) == 2


def test_fields_of_keeps_only_what_differs_from_the_defaults() -> None:
    config = presets.load("llama-2-7b")
    fields = presets._fields_of(config)
    defaults = {f.name: f.default for f in dataclasses.fields(ArchConfig)}
    assert all(fields[k] != defaults[k] or type(fields[k]) is not type(defaults[k]) for k in fields if k != "training")
    assert fields["n_layers"] == 32 and fields["d_model"] == 4096  # Touvron et al. 2023, arXiv:2307.09288, Table 1


def test_archconfig_eq_hash_repr_are_the_generated_ones() -> None:
    """ArchConfig writes its __eq__, __hash__ and __repr__ instead of generating them (start-up time): they must
    behave as `@dataclass(frozen=True)` would, checked against such a class with the same fields."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(ArchConfig)]
    generated = dataclasses.make_dataclass("ArchConfig", fields, frozen=True)
    for name in ("llama-2-7b", "deepseek-v3", "gemma-3-27b", "t5-base"):
        config = presets.load(name)
        twin = generated(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
        assert repr(config) == repr(twin)
        assert hash(config) == hash(twin)
        changed = config.replace(d_ff=config.d_ff + 1)
        assert config == presets.load(name) and hash(config) == hash(presets.load(name))
        assert config != changed and (config == changed) == (twin == dataclasses.replace(twin, d_ff=twin.d_ff + 1))
    assert (presets.load("gpt-2") == "gpt-2") is False
    assert presets.load("gpt-2").__eq__(object()) is NotImplemented


def test_a_changed_loader_validates_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The validated cache is keyed by llmarch's version and the loader's sources (core/, catalog/): an edited
    loader never reuses a config validated by the old one."""
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    stamp = json.loads(presets._loader_stamp())
    assert any(s.startswith("config.py:") for s in stamp) and any(s.startswith("presets.py:") for s in stamp)
    first = presets.load("gpt-2")
    _fresh_process()
    calls: list[str] = []
    original = ArchConfig.from_dict

    def counting(data: dict[str, Any], *, origin: str | None = None) -> ArchConfig:
        calls.append(str(data.get("name")))
        return original(data, origin=origin)

    monkeypatch.setattr(ArchConfig, "from_dict", counting)
    assert presets.load("gpt-2") == first and calls == []  # same loader: the cached config
    _fresh_process()
    monkeypatch.setattr(presets, "_loader_stamp", lambda: '["0.0.0-edited"]')
    assert presets.load("gpt-2") == first and calls == ["gpt-2"]  # another loader: validated again
