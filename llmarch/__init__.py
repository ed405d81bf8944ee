"""llmarch: compare large-language-model architectures.

The public, torch-free API. Everything the CLI shows is available here as functions returning plain data.
"""

__version__ = "0.1.0"

from llmarch.config import ArchConfig, TrainingMeta
from llmarch.errors import InvalidConfigError, InvalidValueError, LlmarchError, UnknownPresetError
from llmarch.params import ParamCount, count_params
from llmarch.presets import load, load_all, preset_names

__all__ = [
    "ArchConfig",
    "InvalidConfigError",
    "InvalidValueError",
    "LlmarchError",
    "ParamCount",
    "TrainingMeta",
    "UnknownPresetError",
    "__version__",
    "count_params",
    "load",
    "load_all",
    "preset_names",
]
