"""llmarch: compare large-language-model architectures.

The public, torch-free API. Everything the CLI shows is available here as functions returning plain data.
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from llmarch._version import __version__
from llmarch.calc.params import ParamCount, count_params
from llmarch.catalog.presets import load, load_all, preset_names
from llmarch.core.config import ArchConfig, TrainingMeta
from llmarch.core.errors import InvalidConfigError, InvalidValueError, LlmarchError, UnknownPresetError

if TYPE_CHECKING:
    import pandas


def compare(models: Iterable[str | ArchConfig], **workload: Any) -> "pandas.DataFrame":
    """Compare architectures as a pandas DataFrame, one row per model (the records of `llmarch compare`).

    `models` are preset names, files or override specs, or ArchConfig objects; `workload` takes seq_len,
    batch and dtype. Needs pandas; `llmarch.calc.comparison.compare_records` returns the same rows as dicts.
    """
    from llmarch.calc.comparison import compare_frame

    return compare_frame([m if isinstance(m, ArchConfig) else load(m) for m in models], **workload)


def estimate_inference(model: str | ArchConfig, gpu: str, **options: Any) -> Any:
    """Serving estimate of one architecture on a GPU type (`llmarch.serving.estimate.estimate_inference`, the
    records of `llmarch estimate-inference`): memory, the load, TTFT/TPOT/latency, tokens/s and cost."""
    from llmarch.serving.estimate import estimate_inference as estimate

    return estimate(model if isinstance(model, ArchConfig) else load(model), gpu, **options)


__all__ = [
    "ArchConfig",
    "InvalidConfigError",
    "InvalidValueError",
    "LlmarchError",
    "ParamCount",
    "TrainingMeta",
    "UnknownPresetError",
    "__version__",
    "compare",
    "count_params",
    "estimate_inference",
    "load",
    "load_all",
    "preset_names",
]
