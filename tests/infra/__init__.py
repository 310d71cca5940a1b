"""Tests of the infrastructure: infra/cdktf/config.py is loaded once for all of them."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra" / "cdktf"


@functools.cache
def load_config() -> ModuleType:
    # Loaded under a unique name: a bare `import config` could pick up another package's module.
    spec = importlib.util.spec_from_file_location("valorize_infra_config", INFRA_DIR / "config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module
