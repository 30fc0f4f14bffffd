"""Typed configuration: the dataclass schemas of every config group, and ConfigError.

A leaf of the package: nothing here imports any other part of hotncold. The rules about each
group's values live with the component that owns them (`hotncold.experiment.validate` runs
them all); the Hydra registration is `hotncold.config.hydra`, imported only at the edges.
"""

from hotncold.config.errors import ConfigError
from hotncold.config.schemas import (
    ApproachConfig,
    ClusterConfig,
    Config,
    DatasetConfig,
    MetricsConfig,
    ModelConfig,
    OutputConfig,
    PRMConfig,
    PRMServerConfig,
    PromptConfig,
    TemperatureConfig,
)

__all__ = [
    "ApproachConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DatasetConfig",
    "MetricsConfig",
    "ModelConfig",
    "OutputConfig",
    "PRMConfig",
    "PRMServerConfig",
    "PromptConfig",
    "TemperatureConfig",
]
