"""Typed, validated run configuration: dataclasses, YAML files and dotted overrides.

A configuration is a tree of dataclasses with :class:`Config` at the root, in three modules:
:mod:`~mvmr.config.schema` (the sections, every option typed, bounded and documented),
:mod:`~mvmr.config.validate` (pydantic validation, the checks across keys, and errors that name the
key: ``loss.l3: expected one of 'maximize', 'minimize', got 'foo'``) and :mod:`~mvmr.config.load`
(YAML files with ``base:`` inheritance, ``key=value`` overrides, shipped configs, writing YAML).

>>> cfg = load_config("stl10", ["trainer.max_epochs=10", "loss.l3=minimize"])
>>> print(to_yaml(cfg))
"""

from mvmr.config.load import (
    CONFIG_DIR,
    apply_overrides,
    load_config,
    resolve_config_path,
    save_config,
    shipped_configs,
    to_yaml,
)
from mvmr.config.schema import (
    AugmentationConfig,
    Config,
    DataConfig,
    EvaluationConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    ProbeConfig,
    RegressionConfig,
    RepresentationsConfig,
    RepresentationSpec,
    TeacherConfig,
    TrainerConfig,
)
from mvmr.config.validate import from_dict, to_dict, validate

__all__ = [
    "AugmentationConfig",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "RepresentationSpec",
    "RepresentationsConfig",
    "RegressionConfig",
    "OptimConfig",
    "TrainerConfig",
    "ProbeConfig",
    "TeacherConfig",
    "EvaluationConfig",
    "Config",
    "CONFIG_DIR",
    "shipped_configs",
    "resolve_config_path",
    "load_config",
    "from_dict",
    "to_dict",
    "to_yaml",
    "save_config",
    "apply_overrides",
    "validate",
]
