"""Run gcloud-tasks-emulator bound to one host instead of every interface.

Executed by path with the interpreter of the emulator's own virtualenv (it needs protobuf<5), so
it must not import anything from devstack. The emulator hard-codes ``[::]:PORT``; we rewrite
that address when the gRPC server is created. Usage: ``python _tasks_emulator_shim.py HOST
start -p PORT ...`` (everything after HOST goes to the emulator's own CLI).
"""

import sys
from typing import Any

import grpc
from gcloud_tasks_emulator import __main__ as emulator_cli


def _bind_only(host: str) -> None:
    create_server = grpc.server

    def server(*args: Any, **kwargs: Any) -> Any:
        grpc_server = create_server(*args, **kwargs)
        add_port = grpc_server.add_insecure_port

        def add_insecure_port(address: str) -> int:
            port = address.rsplit(":", 1)[1]
            return int(add_port(f"{host}:{port}"))

        grpc_server.add_insecure_port = add_insecure_port
        return grpc_server

    grpc.server = server


if __name__ == "__main__":
    _bind_only(sys.argv[1])
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    emulator_cli.main()
