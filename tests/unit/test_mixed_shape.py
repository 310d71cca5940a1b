"""load/mixed.py's scenario: the original's task mix and the stepped load shape.

The locustfile itself is read with ast, not imported: importing locust monkey-patches the test
process with gevent.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

LOAD = Path(__file__).resolve().parents[2] / "load"


def _shape() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mixed_shape", LOAD / "mixed_shape.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mixed_shape", module)
    spec.loader.exec_module(module)
    return module


shape = _shape()


def test_the_mix_is_the_originals() -> None:
    assert shape.MIX == {"list": 65, "create": 20, "accounts": 15}
    assert shape.THINK_SECONDS == 1.0
    assert shape.PAGE == 15


def test_every_locust_task_is_weighted_by_the_mix() -> None:
    tree = ast.parse((LOAD / "mixed_locustfile.py").read_text())
    weights = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "task":
                    (arg,) = deco.args
                    assert isinstance(arg, ast.Subscript) and getattr(arg.value, "id", "") == "MIX"
                    assert isinstance(arg.slice, ast.Constant)
                    weights.append(arg.slice.value)
    assert sorted(weights) == sorted(shape.MIX)


def test_stages_parse_and_must_increase() -> None:
    assert shape.parse_stages("25,50 100") == [25, 50, 100]
    for bad in ("", "0,10", "50,25", "10,10"):
        with pytest.raises(ValueError):
            shape.parse_stages(bad)


def test_stepper_waits_for_setup_then_settles_measures_and_moves_on() -> None:
    s = shape.Stepper([10, 20], settle=5, window=30, setup_timeout=60)
    assert s.tick(0, ready=0) == 10  # ramping: 10 users, none set up yet
    assert s.tick(3, ready=10) == 10  # all set up: settle starts
    assert s.tick(7, ready=10) == 10 and s.events == []
    assert s.tick(8, ready=10) == 10 and s.events == [("open", 0)]
    assert s.tick(37, ready=10) == 10 and s.events == [("open", 0)]
    assert s.tick(38, ready=10) == 20 and s.events[-1] == ("close", 0)
    # Setup that never completes stops waiting after setup_timeout.
    assert s.tick(97, ready=15) == 20 and s.phase == "ramp"
    assert s.tick(98, ready=15) == 20 and s.phase == "settle"
    s.tick(103, ready=15)
    assert s.events[-1] == ("open", 1)
    assert s.tick(133, ready=20) is None and s.events[-1] == ("close", 1)


def test_stepper_stop_ends_the_run() -> None:
    s = shape.Stepper([10, 20, 30])
    s.tick(0, ready=0)
    s.stop()
    assert s.tick(1, ready=10) is None


def test_slo() -> None:
    assert shape.meets_slo(300.0, 0.0049)
    assert not shape.meets_slo(301.0, 0.0)
    assert not shape.meets_slo(100.0, 0.005)
    assert not shape.meets_slo(None, 0.0)
