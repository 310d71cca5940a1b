"""Port helpers: pick free loopback ports, and refuse busy ones with an actionable message."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

HOST = "127.0.0.1"


class PortInUseError(RuntimeError):
    """A port the user asked for explicitly is taken by another process."""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.name = name
        option = name.replace("_", "-")
        super().__init__(
            f"port {port} ({name}) is already in use; "
            f"pass --{option}-port or set {env_var_for(name)}"
        )


def env_var_for(name: str) -> str:
    """Environment variable that overrides the port of service ``name``."""
    return f"VALORIZE_{name.upper()}_PORT"


def _bindable(port: int, host: str = HOST) -> bool:
    # SO_REUSEADDR as every server we launch sets it: sockets in TIME_WAIT from a previous run
    # must not count as "in use", while a live listener (on any address) still does on Linux.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_port_free(port: int, name: str, host: str = HOST) -> None:
    """Raise :class:`PortInUseError` if ``port`` cannot be bound on ``host``."""
    if not _bindable(port, host):
        raise PortInUseError(port, name)


def free_ports(count: int, host: str = HOST, exclude: Iterable[int] = ()) -> list[int]:
    """Return ``count`` distinct ports the kernel considers free right now.

    All sockets stay open until every port is chosen so the kernel cannot hand out the same
    one twice; ports in ``exclude`` (explicitly requested elsewhere) are skipped.
    """
    excluded = set(exclude)
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        while len(ports) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            port = sock.getsockname()[1]
            if port not in excluded:
                ports.append(port)
    return ports


def free_port(host: str = HOST) -> int:
    return free_ports(1, host)[0]
