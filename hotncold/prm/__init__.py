"""Process reward models: one interface (`PRM.score`), chosen by `prm.name`.

Implementations are imported lazily so that validating a config never loads a model library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hotncold.config import PRMConfig
    from hotncold.engine import Engine
    from hotncold.prm.base import PRM

# name -> "module:class"; each class is built as cls(cfg, engine=...)
REGISTRY: dict[str, str] = {
    "equation_checker": "hotncold.prm.equation_checker:EquationChecker",
}
PRM_NAMES = tuple(REGISTRY)


def build_prm(cfg: PRMConfig, engine: Engine | None = None) -> PRM:
    module, cls = REGISTRY[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, engine=engine)
