"""Local cloud for ValorizeAI: emulators, functions and a gateway, for `nox -s dev` and tests."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.ports import PortInUseError
    from devstack.process import ServiceError
    from devstack.stack import Ports, Stack, StackConfig, StackStartError, StackUrls

# Resolved on first use (PEP 562): the gateway and SMTP sink processes import this package too,
# and should not pay for loading the Stack's dependencies (redis, requests) at every start.
_EXPORTS = {
    "PortInUseError": "devstack.ports",
    "ServiceError": "devstack.process",
    "Ports": "devstack.stack",
    "Stack": "devstack.stack",
    "StackConfig": "devstack.stack",
    "StackStartError": "devstack.stack",
    "StackUrls": "devstack.stack",
}
__all__ = [
    "PortInUseError",
    "Ports",
    "ServiceError",
    "Stack",
    "StackConfig",
    "StackStartError",
    "StackUrls",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'devstack' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
