"""A child process in its own session, logged to a file, stopped by killing its process group.

Each launcher in :mod:`devstack.services` is one of these plus a readiness probe. Starting every
child with ``start_new_session=True`` gives it its own process group, so a terminal's Ctrl-C
reaches only the stack command (which then stops children in order) and stopping a service
also reaches grandchildren we never see directly (gcloud's java, gunicorn's workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


class ServiceError(RuntimeError):
    """A service exited or did not become ready; the message carries its log tail."""


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class ManagedProcess:
    """Base class: subclasses set ``name`` and implement :meth:`command` and :meth:`is_ready`."""

    name: str = "process"

    def __init__(
        self,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        unset_env: Iterable[str] = (),
    ) -> None:
        self.log_dir = log_dir
        self.extra_env: dict[str, str] = dict(env or {})
        # Variables not to inherit from our own environment (e.g. an outer stack's emulator
        # hosts, which must not leak into a stack that did not start that emulator).
        self.unset_env = frozenset(unset_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- to override -------------------------------------------------------------------------
    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work done before spawning (e.g. building a virtualenv); runs in the start thread."""

    def cwd(self) -> Path | None:
        return None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.prepare()
        self.spawn()

    def spawn(self) -> None:
        """Launch the process (after :meth:`prepare`); returns at once, see :meth:`wait_ready`."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            list(self.command()),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **{k: v for k, v in os.environ.items() if k not in self.unset_env},
                **self.extra_env,
            },
            cwd=self.cwd(),
            start_new_session=True,
        )

    def _failure(self, reason: str) -> ServiceError:
        return ServiceError(
            f"{self.name} {reason}; last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll :meth:`is_ready` until it holds; raise with the log tail if the process dies."""
        proc = self.proc
        if proc is None:
            raise RuntimeError(f"{self.name} not started")
        deadline = time.monotonic() + timeout
        last_probe_error = ""
        while True:
            code = proc.poll()
            if code is not None:
                raise self._failure(f"exited with code {code} during startup")
            try:
                if self.is_ready():
                    return
            except Exception as error:  # noqa: BLE001 - a failing probe only means "not yet"
                last_probe_error = f" (last probe: {error!r})"
            if time.monotonic() > deadline:
                raise self._failure(f"was not ready after {timeout:.0f} s{last_probe_error}")
            time.sleep(POLL_INTERVAL)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _group_alive(self, pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            # A member we may no longer signal: treat it as not ours.
            return False
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after ``timeout``.

        Idempotent. The group id is our child's pid (it is the session leader), and Linux never
        reuses a pid while it still names a live group, so signalling it only reaches processes
        descended from the one we started.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return
        pgid = proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        # The leader may exit before its children (gcloud's java, gunicorn workers).
        while self._group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        if self._group_alive(pgid) or proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
