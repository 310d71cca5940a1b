"""Every Firestore call gives up after a bounded time, its retries included.

The official client's defaults (google/cloud/firestore_v1/services/firestore/transports/
base.py) give each call 60 s per attempt and 60 s of retries (300 s for queries), so a
stalled or unreachable Firestore holds a request for a minute or more: past a function's own
60 s timeout, where the user gets the platform's 504 instead of our 503 with Retry-After
(entrypoints/http.py), and a worker thread is held all that time. Firestore answers in
milliseconds when it is up, so a bound of seconds costs nothing then.

The library has no client-wide setting for it, and a per-call `timeout=` would have to be
passed at every call site (and forgotten at the next). So this shortens the defaults of the
client's wrapped methods (google.api_core's `_GapicCallable._timeout` and `_retry`), which
every call uses unless it passes its own. They are private: tests/integration/
test_firestore_deadlines.py proves the bound against a server that never answers and a
closed port, so a library change that moves them fails there, not in production.
"""

from __future__ import annotations

from typing import Any


def bound(client: Any, seconds: float) -> None:
    """Make `seconds` the longest any call of `client` waits, attempts and retries together
    (the long-lived Listen and Write streams keep theirs)."""
    transport = client._firestore_api._transport
    streams = {transport.listen, transport.write}
    for stub, rpc in transport._wrapped_methods.items():
        if stub in streams:
            continue
        if rpc._timeout is not None:
            rpc._timeout = min(rpc._timeout, seconds)
        if rpc._retry is not None:
            rpc._retry = rpc._retry.with_timeout(seconds)
