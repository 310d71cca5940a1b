"""The lock-free check of the feeds' subscription (adapters/feeds.py): whether its socket has
anything to read, asked without waiting, whichever poll the platform allows."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator

import pytest

from valorize.adapters import feeds

POLLS = [feeds._poll_letting_go_of_the_gil]
if (keeping := feeds._poll_keeping_the_gil()) is not None:
    POLLS.append(keeping)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    mine, theirs = socket.socketpair()
    yield mine, theirs
    mine.close()
    theirs.close()


@pytest.fixture(params=POLLS, ids=lambda poll: poll.__name__)
def readable(request: pytest.FixtureRequest) -> Callable[[int], bool]:
    poll: Callable[[int], bool] = request.param
    return poll


def test_an_idle_socket_has_nothing(
    pair: tuple[socket.socket, socket.socket], readable: Callable[[int], bool]
) -> None:
    assert not readable(pair[0].fileno())


def test_data_waiting_is_seen(
    pair: tuple[socket.socket, socket.socket], readable: Callable[[int], bool]
) -> None:
    pair[1].sendall(b"announcement")
    assert readable(pair[0].fileno())


def test_a_closed_peer_is_seen(
    pair: tuple[socket.socket, socket.socket], readable: Callable[[int], bool]
) -> None:
    pair[1].close()
    assert readable(pair[0].fileno())


def test_a_closed_socket_counts_as_something(readable: Callable[[int], bool]) -> None:
    mine, theirs = socket.socketpair()
    fd = mine.fileno()
    mine.close()
    theirs.close()
    # POLLNVAL: the check sends the reader to the lock, which finds the subscription broken.
    assert readable(fd)


@pytest.mark.skipif(sys.platform != "linux", reason="Cloud Run's platform")
def test_on_linux_the_check_keeps_the_gil() -> None:
    assert keeping is not None
    assert feeds._readable is not feeds._poll_letting_go_of_the_gil
