"""Instances start warm (issue 14 item 4): every function of the stack answers /healthz 200
once it is up (devstack waits for that 200, which each function gives only once the clients
its registry entry names are built), and its worker logged every one of them warm."""

from __future__ import annotations

import json

import requests

from devstack.stack import Stack
from functions.registry import FUNCTIONS


def test_every_function_is_ready_with_its_clients_warm(stack: Stack) -> None:
    for name, url in stack.urls.functions.items():
        response = requests.get(f"{url}/api/{name}/healthz", timeout=10)
        assert response.status_code == 200, name
        log = stack.log_dir / f"function-{name}.log"
        warm = [
            json.loads(line)
            for line in log.read_text(errors="replace").splitlines()
            if line.startswith("{") and '"warm in ' in line
        ]
        assert warm, f"{name} logged no warm-up ({log})"
        took = warm[-1]["warm_seconds"]
        assert list(took) == list(FUNCTIONS[name].clients), name
        assert None not in took.values(), f"{name}: a client failed to warm: {took}"
