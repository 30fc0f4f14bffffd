"""Typed configuration: the dataclass schemas of every config group, and ConfigError.

A leaf of the package: nothing here imports any other part of hotncold. The rules about each
group's values live with the component that owns them (`hotncold.experiment.validate` runs
them all); the Hydra registration is `hotncold.config.hydra`, imported only at the edges.
"""

from hotncold.config.errors import ConfigError
from hotncold.config.schemas import (
    APPROACH_SCHEMAS,
    PRM_SCHEMAS,
    AdaptiveBoNConfig,
    ApproachConfig,
    ClusterConfig,
    Config,
    DatasetConfig,
    EquationCheckerConfig,
    GenerativePRMConfig,
    HeadPRMConfig,
    JudgePRMConfig,
    MathShepherdConfig,
    MetricsConfig,
    ModelConfig,
    ModelPRMConfig,
    OutputConfig,
    ParticleFilterConfig,
    PRMConfig,
    PRMServerConfig,
    PromptConfig,
    QwenMathPRMConfig,
    ResamplingConfig,
    RescoreConfig,
    SelfCertaintyConfig,
    TemperatureConfig,
)

__all__ = [
    "APPROACH_SCHEMAS",
    "PRM_SCHEMAS",
    "AdaptiveBoNConfig",
    "ApproachConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DatasetConfig",
    "EquationCheckerConfig",
    "GenerativePRMConfig",
    "HeadPRMConfig",
    "JudgePRMConfig",
    "MathShepherdConfig",
    "MetricsConfig",
    "ModelConfig",
    "ModelPRMConfig",
    "OutputConfig",
    "PRMConfig",
    "PRMServerConfig",
    "ParticleFilterConfig",
    "PromptConfig",
    "QwenMathPRMConfig",
    "ResamplingConfig",
    "RescoreConfig",
    "SelfCertaintyConfig",
    "TemperatureConfig",
]
