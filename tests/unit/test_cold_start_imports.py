"""Cold start matters: importing a function must not import the heavy clients (Firestore,
gRPC, Redis); the composition root builds them on first use (load/coldstart.py measures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from functions.registry import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["main"] = module
spec.loader.exec_module(module)
heavy = {"grpc", "redis", "argon2", "socketio", "engineio", "smtplib"}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy
                        or m.startswith("google.cloud.firestore"))))
"""


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_importing_a_function_leaves_heavy_clients_unloaded(name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / name / "main.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{name} imports {loaded} at cold start"
