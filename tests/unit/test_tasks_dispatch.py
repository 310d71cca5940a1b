"""The local Cloud Tasks emulator gets every registry queue's dispatch settings, as infra/cdktf
gives them to Cloud Tasks (devstack.stack.tasks_dispatch)."""

from devstack.stack import tasks_dispatch
from functions.registry import QUEUES


def test_every_registry_queue_is_dispatched_as_declared() -> None:
    dispatch = tasks_dispatch()

    assert set(dispatch) == set(QUEUES)
    imports = dispatch["imports"]
    declared = QUEUES["imports"]
    assert imports == {
        "rate": declared.max_dispatches_per_second,
        "concurrency": declared.max_concurrent_dispatches,
        "max_attempts": declared.max_attempts,
        "min_backoff": float(declared.min_backoff.removesuffix("s")),
        "max_backoff": float(declared.max_backoff.removesuffix("s")),
        "max_doublings": declared.max_doublings,
    }
