"""The fault suite's realtime scenario (load/chaos.py `realtime`, issue 12): one of the two
realtime_server instances SIGKILLed while its clients are connected and every user is writing.

Each of `clients` users has one Socket.IO client (python-socketio, WebSocket, the reconnection
delays of socket.io-client: 1 s doubling to 5 s), half on each instance; every reconnect goes
to the other instance, as the load balancer sends a browser whose instance went away, and asks
for what it missed (`since`: the last seq it saw), as tests/e2e/test_realtime.py's failover
test does. Each user creates a transaction every `WRITE_EVERY` s through the gateway before,
during and after the kill. Afterwards every client must have received each of its user's
events exactly once: no seq missing between its first and its last, none twice, and a
`transaction.created` for every acknowledged create. Recovery: the kill to each moved client's
catch-up (`sync.done` on the other instance)."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import socketio

from devstack.stack import Stack
from load.chaos_workers import User, kill, restart

STEADY = 5.0
AFTER = 15.0
WRITE_EVERY = 0.3
CATCH_UP = 30.0


@dataclass
class Watcher:
    """One user's socket: every event with a seq it received, and when it reconnected."""

    user: User
    home: int
    urls: list[str]
    account_id: str = ""
    last_seq: int | None = None
    seqs: collections.Counter[int] = field(default_factory=collections.Counter)
    created: collections.Counter[str] = field(default_factory=collections.Counter)
    connects: int = 0
    resets: int = 0
    synced_at: list[float] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # socket.io-client's reconnection delays (1 s, doubling to 5 s), as a browser's.
    client: socketio.Client = field(
        default_factory=lambda: socketio.Client(
            reconnection=True, reconnection_delay=1, reconnection_delay_max=5
        )
    )

    def url(self) -> str:
        # The first connection on its home instance, every reconnect on the other one.
        url = self.urls[(self.home + self.connects) % len(self.urls)]
        self.connects += 1
        return url

    def auth(self) -> dict[str, Any]:
        return {"token": self.user.token, "since": self.last_seq}

    def on_event(self, event: str, data: Any) -> None:
        with self.lock:
            if event in ("sync.done", "sync.reset"):
                self.last_seq = data["latest_seq"]
                self.resets += event == "sync.reset"
                self.synced_at.append(time.monotonic())
                return
            seq = data.get("seq") if isinstance(data, dict) else None
            if isinstance(seq, int):
                self.seqs[seq] += 1
                self.last_seq = max(seq, self.last_seq or 0)
            if event == "transaction.created":
                self.created[data["data"]["id"]] += 1

    def connect(self) -> None:
        self.client.on("*", self.on_event)
        in_order(self.client)
        self.client.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)

    def write(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = {
                "account_id": self.account_id,
                "amount": -n,
                "date": "2025-03-10",
                "description": f"realtime chaos {n}",
            }
            key = uuid.uuid4().hex
            while not stop.is_set():
                answer = self.user.call(
                    "POST", "/api/transactions", body, headers={"Idempotency-Key": key}
                )
                if answer.status_code == 201:
                    self.written.append(answer.json()["id"])
                    break
                time.sleep(0.2)
            time.sleep(WRITE_EVERY)

    def caught_up(self) -> bool:
        with self.lock:
            return all(self.created[t] for t in self.written)

    def figures(self) -> dict[str, int]:
        with self.lock:
            seen = sorted(self.seqs)
            gaps = (seen[-1] - seen[0] + 1 - len(seen)) if seen else 0
            return {
                "events": sum(self.seqs.values()),
                "seq_missing": gaps,
                "seq_twice": sum(n - 1 for n in self.seqs.values()),
                "created_missing": sum(1 for t in self.written if not self.created[t]),
                "created_twice": sum(n - 1 for n in self.created.values()),
                "resets": self.resets,
            }


def in_order(client: socketio.Client) -> None:
    """Handle each received message before the next, and before a reconnect reads `since`,
    as a browser's socket.io-client does on its one thread. python-engineio's client hands
    every message to a thread of its own (`_trigger_event(..., run_async=True)`), so an event
    received just before the kill could still be unhandled when the reconnect sent its
    `since`: the other instance then replayed it and the client counted it twice (one run of
    this scenario saw exactly that, seq seen twice, none missing)."""
    eio = client.eio
    trigger = eio._trigger_event

    def synchronous(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return trigger(event, *args, **kwargs)

    eio._trigger_event = synchronous


def realtime(stack: Stack, clients: int) -> dict[str, Any]:
    assert stack.urls.base_url
    urls = stack.urls.realtime_instances
    watchers = []
    for index in range(clients):
        user = User.register(stack.urls.base_url)
        watcher = Watcher(user, index % len(urls), urls)
        watcher.account_id = user.ok(
            "POST", "/api/accounts", {"name": "Live", "type": "checking", "currency": "BRL"}
        )["id"]
        watcher.connect()
        watchers.append(watcher)
    stop = threading.Event()
    writers = [threading.Thread(target=w.write, args=(stop,)) for w in watchers]
    for t in writers:
        t.start()
    time.sleep(STEADY)
    victim = stack.process("realtime-0")
    moved = [w for w in watchers if w.home == 0]
    kill(victim)
    killed_at = time.monotonic()
    time.sleep(AFTER)
    stop.set()
    for t in writers:
        t.join()
    deadline = time.monotonic() + CATCH_UP
    while not all(w.caught_up() for w in watchers) and time.monotonic() < deadline:
        time.sleep(0.2)
    restart_seconds = restart(victim)
    catch_ups = [
        next((at - killed_at for at in w.synced_at if at > killed_at), None) for w in moved
    ]
    figures = [w.figures() for w in watchers]
    for w in watchers:
        w.client.disconnect()
    total = {k: sum(f[k] for f in figures) for k in figures[0]}
    recovered = None if None in catch_ups else round(max(c for c in catch_ups if c is not None), 2)
    return {
        "scenario": "realtime",
        "clients": clients,
        "clients_moved": len(moved),
        "clients_reconnected": sum(1 for c in catch_ups if c is not None),
        "transactions_written": sum(len(w.written) for w in watchers),
        **total,
        "lost": total["seq_missing"] + total["created_missing"],
        "duplicated": total["seq_twice"] + total["created_twice"],
        "recovered_after": recovered,
        "catch_up_seconds": sorted(round(c, 2) for c in catch_ups if c is not None),
        "restart_seconds": restart_seconds,
    }
