"""A stalled or unreachable Firestore costs a request a bounded time, then a 503.

The official client's defaults would hold each call for 60 s of attempts (300 s for queries),
past a function's own 60 s timeout: the user would get the platform's 504 after a minute
instead of our 503 with Retry-After. These tests point the client built by the composition
root at a server that accepts connections and never answers (a stalled backend, as
`load/chaos.py` makes by freezing the emulator) and at a closed port (an unreachable one)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from valorize import bootstrap
from valorize.config import Settings
from valorize.entrypoints.http import _backend_down

DEADLINE = 0.5


@pytest.fixture(params=["stalled", "unreachable"])
def dead_firestore(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[Any] = []
    if request.param == "stalled":
        listener.listen(64)

        def hold() -> None:
            # Accepts and never answers, until the test closes the socket.
            with contextlib.suppress(OSError):
                while True:
                    held.append(listener.accept())

        threading.Thread(target=hold, daemon=True).start()
    else:
        listener.close()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    yield str(request.param)
    listener.close()


def calls(db: Any) -> dict[str, Callable[[], object]]:
    def commit() -> None:
        batch = db.batch()
        batch.set(db.document("users/u/accounts/a"), {"name": "x"})
        batch.commit()

    return {
        "get": lambda: db.document("users/u").get(),
        "get_all": lambda: list(db.get_all([db.document("users/u")])),
        "query": lambda: list(db.collection("users").limit(5).stream()),
        "commit": commit,
        "update": lambda: db.document("users/u").update({"x": 1}),
    }


def test_every_call_gives_up_within_the_deadline(dead_firestore: str) -> None:
    services = bootstrap.build(Settings(project="deadlines", firestore_deadline_seconds=DEADLINE))
    for name, call in calls(services.firestore).items():
        started = time.monotonic()
        with pytest.raises(gexc.GoogleAPIError) as raised:
            call()
        took = time.monotonic() - started
        assert took < DEADLINE + 1, (name, dead_firestore, took)
        # ... and the HTTP layer answers it 503 with Retry-After (tests/unit/test_http.py).
        assert _backend_down(raised.value), (name, repr(raised.value))
