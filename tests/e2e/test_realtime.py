"""Realtime end to end: functions publish through Redis, realtime_server instances deliver.

The session stack runs two instances (eventlet) behind the gateway's /socket.io/; the failover
test starts its own pair, one under eventlet and one under gevent, and kills one of them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import socketio

from devstack.ports import free_ports
from devstack.services import RealtimeInstance
from devstack.stack import STACK_ENV_KEYS, Stack
from tests.e2e.conftest import Api, register
from valorize.adapters.realtime import EventLog

Event = tuple[str, dict[str, Any]]


class Listener:
    """A python-socketio client that queues every event it receives."""

    def __init__(
        self,
        url: str | Callable[[], str],
        token: str,
        since: int | None = None,
        transports: list[str] | None = None,
        reconnection: bool = False,
    ) -> None:
        self.url = url
        self.token = token
        self.last_seq = since
        self.transports = transports or ["websocket"]
        self.events: queue.Queue[Event] = queue.Queue()
        self.refused: Any = None
        self.client = socketio.Client(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=0.5
        )
        self.client.on("*", self._on_event)
        self.client.on("connect_error", self._on_refused)

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        seq = data.get("seq")
        if isinstance(seq, int):
            self.last_seq = seq
        elif event in ("sync.done", "sync.reset"):
            self.last_seq = data["latest_seq"]
        # Every ledger write also says dashboard.changed (tested in tests/unit/test_live.py);
        # these tests follow the resource events, so they count it as seen and move on.
        if event == "dashboard.changed":
            return
        self.events.put((event, data))

    def _on_refused(self, data: Any) -> None:
        self.refused = data

    def auth(self) -> dict[str, Any]:
        # Called on every (re)connect, like socket.io-client's auth callback: a reconnect
        # asks for what it missed.
        return {"token": self.token, "since": self.last_seq}

    def connect(self) -> list[Event]:
        """Connect; return the replayed events and the sync.done/sync.reset that ends them."""
        self.client.connect(self.url, auth=self.auth, transports=self.transports, wait_timeout=10)
        return self.until_sync()

    def until_sync(self) -> list[Event]:
        events = [self.next()]
        while events[-1][0] not in ("sync.done", "sync.reset"):
            events.append(self.next())
        return events

    def next(self, timeout: float = 10) -> Event:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None

    def take(self, count: int) -> list[Event]:
        return [self.next() for _ in range(count)]

    def silent(self, seconds: float = 0.5) -> bool:
        time.sleep(seconds)
        return self.events.empty()

    def close(self) -> None:
        self.client.disconnect()


@contextlib.contextmanager
def listening(url: str, token: str, **kw: Any) -> Iterator[Listener]:
    listener = Listener(url, token, **kw)
    listener.connect()
    try:
        yield listener
    finally:
        listener.close()


def balance(account_id: str, amount: int) -> dict[str, Any]:
    return {"account_id": account_id, "balance": {"amount": amount, "currency": "BRL"}}


@pytest.fixture(scope="module")
def instances(stack: Stack, base_url: str) -> list[str]:
    """The stack's two instances, once both deliver (an earlier test may have restarted
    Redis, and each instance's subscriber reconnects with a backoff)."""
    urls = stack.urls.realtime_instances
    assert len(urls) == 2
    user = register(base_url)
    event_log = EventLog(redis.Redis.from_url(stack.env["REDIS_URL"]))
    me = user.get("/api/auth/me").json()["id"]
    for url in urls:
        with listening(url, str(user.token)) as listener:
            deadline = time.monotonic() + 30
            while True:
                event_log.append(me, "probe", {})
                with contextlib.suppress(AssertionError):
                    if listener.next(timeout=0.5)[0] == "probe":
                        break
                assert time.monotonic() < deadline, f"{url} never delivered"
    return urls


def caught_up(events: list[Event]) -> bool:
    """A reconnect's catch-up ended and a write's two events (created, then balance) arrived."""
    names = [name for name, _ in events]
    if "sync.done" not in names or "transaction.created" not in names:
        return False
    return "account.balance" in names[names.index("transaction.created") :]


def created(events: list[Event]) -> list[dict[str, Any]]:
    return [data["data"] for name, data in events if name == "transaction.created"]


def test_a_function_event_reaches_the_client_on_either_instance(
    api: Api, instances: list[str]
) -> None:
    a, b = instances
    account = api.account(opening_balance=10_000)
    with listening(a, str(api.token)) as on_a, listening(b, str(api.token)) as on_b:
        txn = api.txn(account["id"], -1_550)
        for listener in (on_a, on_b):
            (name, event), (next_name, next_event) = listener.take(2)
            # The payload is the transaction exactly as the API answered the POST.
            assert (name, event["data"]) == ("transaction.created", txn)
            assert (next_name, next_event["data"]) == (
                "account.balance",
                balance(account["id"], 8_450),
            )
            assert next_event["seq"] == event["seq"] + 1
            assert event["ts"].endswith("Z")


def test_a_client_moving_between_instances_misses_nothing(api: Api, instances: list[str]) -> None:
    a, b = instances
    account = api.account()
    listener = Listener(b, str(api.token))
    listener.connect()
    first = api.txn(account["id"], -100, description="while on B")
    assert created(listener.take(2)) == [first]
    listener.close()

    # Published while the client was away: replayed, in order, when it connects to A.
    second = api.txn(account["id"], -200, description="between")
    third = api.patch(f"/api/transactions/{second['id']}", {"description": "edited"}).json()
    listener.url = a
    replayed = listener.connect()
    assert [(name, data.get("data")) for name, data in replayed[:-1]] == [
        ("transaction.created", second),
        ("account.balance", balance(account["id"], -300)),
        ("transaction.updated", third),
    ]
    # Five replayed: those three and the two dashboard.changed before the writes.
    assert replayed[-1] == ("sync.done", {"latest_seq": replayed[2][1]["seq"], "replayed": 5})
    # And from there on, live on A, continuing the sequence.
    fourth = api.txn(account["id"], -400)
    name, event = listener.next()
    assert (name, event["data"], event["seq"]) == (
        "transaction.created",
        fourth,
        replayed[2][1]["seq"] + 2,  # after its dashboard.changed
    )
    listener.close()


def test_sync_on_demand_replays_and_acknowledges(api: Api, instances: list[str]) -> None:
    account = api.account()
    with listening(instances[0], str(api.token)) as listener:
        made = [api.txn(account["id"], -n) for n in (1, 2)]
        live = listener.take(4)
        assert created(live) == made
        # Each write: dashboard.changed, transaction.created, account.balance (5 after `since`
        # counting the second write's dashboard.changed; the listener skips those).
        since = live[0][1]["seq"] - 1
        ack = listener.client.call("sync", {"since": since}, timeout=10)
        assert ack == {"reset": False, "latest_seq": since + 5, "replayed": 5}
        again = listener.until_sync()
        assert [data.get("seq") for _, data in again[:-1]] == [
            since + 1,
            since + 2,
            since + 4,
            since + 5,
        ]
        assert created(again) == made
        bad = listener.client.call("sync", {"since": "yesterday"}, timeout=10)
        assert bad == {"reset": True, "reason": "invalid_since", "latest_seq": since + 5}


def test_sync_is_rate_limited_per_socket(api: Api, instances: list[str]) -> None:
    # The stack's limit: Settings.sync_rate's default, 10 a minute per socket.
    with listening(instances[0], str(api.token)) as first:
        answers = [first.client.call("sync", {"since": 0}, timeout=10) for _ in range(11)]
        assert all("latest_seq" in a for a in answers[:10]), answers
        refused = answers[10]
        assert refused["error"] == "rate_limited" and 1 <= refused["retry_after"] <= 60
        # Nothing replayed for the refused one: ten catch-ups ended, not eleven.
        time.sleep(0.5)
        ends = []
        while not first.events.empty():
            ends.append(first.events.get_nowait()[0])
        assert sum(e in ("sync.done", "sync.reset") for e in ends) == 10, ends
        # Another socket of the same user has its own allowance.
        with listening(instances[0], str(api.token)) as second:
            assert "latest_seq" in second.client.call("sync", {"since": 0}, timeout=10)


def test_past_the_window_the_client_is_told_to_refetch(
    api: Api, instances: list[str], stack: Stack
) -> None:
    me = api.get("/api/auth/me").json()["id"]
    small = EventLog(redis.Redis.from_url(stack.env["REDIS_URL"]), max_events=3)
    seqs = [small.append(me, "transaction.created", {"n": n}) for n in range(5)]
    for url in instances:
        inside = Listener(url, str(api.token), since=seqs[1])
        assert [data.get("data") for _, data in inside.connect()] == [
            {"n": 2},
            {"n": 3},
            {"n": 4},
            None,
        ]
        inside.close()
        outside = Listener(url, str(api.token), since=seqs[0])
        reset = {"reason": "window_exceeded", "latest_seq": seqs[-1]}
        assert outside.connect() == [("sync.reset", reset)]
        outside.close()


def test_a_client_never_receives_another_users_events(
    api: Api, other: Api, instances: list[str]
) -> None:
    mine, theirs = api.account(), other.account()
    other_id = other.get("/api/auth/me").json()["id"]
    with listening(instances[0], str(api.token)) as me:
        # No handler joins rooms: asking is ignored.
        me.client.emit("join", {"room": f"user:{other_id}"})
        me.client.emit("enter_room", f"user:{other_id}")
        other.txn(theirs["id"], -999, description="not yours")
        other.patch(f"/api/accounts/{theirs['id']}", {"name": "Theirs"})
        assert me.silent(1.0)
        api.txn(mine["id"], -1)
        assert me.next()[1]["data"]["account_id"] == mine["id"]


def test_bad_revoked_and_missing_tokens_are_refused(api: Api, instances: list[str]) -> None:
    issued = api.post("/api/auth/tokens", {"name": "phone"}).json()
    with listening(instances[0], issued["token"]):
        pass
    assert api.delete(f"/api/auth/tokens/{issued['id']}").status_code == 204
    secret_flipped = issued["token"][:-1] + ("A" if issued["token"][-1] != "A" else "B")
    still_valid = api.post("/api/auth/tokens", {"name": "laptop"}).json()["token"]
    cases = {
        "revoked": (issued["token"], "invalid or revoked token"),
        "forged": (
            still_valid[:-1] + ("A" if still_valid[-1] != "A" else "B"),
            "invalid or revoked token",
        ),
        "revoked and forged": (secret_flipped, "invalid or revoked token"),
        "garbage": ("not-a-token", "invalid token"),
        "missing": ("", "missing token"),
    }
    for url in instances:
        for name, (bad, reason) in cases.items():
            listener = Listener(url, bad)
            with pytest.raises(socketio.exceptions.ConnectionError):
                listener.connect()
            assert listener.refused == {"message": reason}, name
            assert not listener.client.connected


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"], ["websocket"]])
def test_through_the_gateway(
    api: Api, base_url: str, instances: list[str], transports: list[str]
) -> None:
    account = api.account()
    with listening(base_url, str(api.token), transports=transports) as listener:
        txn = api.txn(account["id"], 4_200)
        assert created(listener.take(2)) == [txn]


@pytest.fixture
def pair(stack: Stack) -> Iterator[list[RealtimeInstance]]:
    """Two instances of our own, one per worker, so one can be killed."""
    log_dir = stack.log_dir / f"pair-{uuid.uuid4().hex[:6]}"
    ports = free_ports(2)
    started = [
        RealtimeInstance(index, port, log_dir, stack.env, worker, unset_env=STACK_ENV_KEYS)
        for index, (port, worker) in enumerate(zip(ports, ("eventlet", "gevent"), strict=True))
    ]
    try:
        for instance in started:
            instance.start()
        for instance in started:
            instance.wait_ready(30)
        yield started
    finally:
        for instance in started:
            instance.stop()


def test_eventlet_and_gevent_instances_serve_together_and_survive_a_kill(
    api: Api, pair: list[RealtimeInstance]
) -> None:
    under_eventlet, under_gevent = pair
    account = api.account()
    urls = itertools.cycle([under_eventlet.url, under_gevent.url])
    # Reconnects to the next instance asking for what it missed, like a browser behind the
    # load balancer when its instance goes away.
    roaming = Listener(lambda: next(urls), str(api.token), reconnection=True)
    roaming.connect()
    with listening(under_gevent.url, str(api.token)) as steady:
        txn = api.txn(account["id"], -10)
        assert created(roaming.take(2)) == created(steady.take(2)) == [txn]

        assert under_eventlet.pid is not None
        os.killpg(under_eventlet.pid, signal.SIGKILL)
        during = api.txn(account["id"], -20, description="while one instance is down")
        assert created(steady.take(2)) == [during]
        # The roaming client comes back on the gevent instance and gets `during` exactly once,
        # replayed or live depending on whether it reconnected before the write. Either way
        # its account.balance follows it: wait for that too, or it would be left queued (when
        # the reconnect came first, sync.done arrives before both) and be taken for `after`'s.
        deadline = time.monotonic() + 20
        events: list[Event] = []
        while not caught_up(events):
            assert time.monotonic() < deadline, events
            with contextlib.suppress(AssertionError):
                events.append(roaming.next(timeout=0.5))
        assert created(events) == [during]
        after = api.txn(account["id"], -30, description="after")
        assert created(roaming.take(2)) == [after]
        assert roaming.silent(0.3) and steady.take(2) and steady.silent(0.1)
    roaming.close()
