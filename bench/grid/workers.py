"""A few spawned worker processes, each with its own pipe, that run calls and can be killed at once.

Why not ``multiprocessing.Pool``: its workers share one task queue guarded by a lock, and
``Pool.terminate()`` takes that lock and joins its handler threads, so a Ctrl-C that lands while a
worker holds the lock (or is being replaced) can hang the parent for good (CI saw ``bench verify``
not exit 30 s after Ctrl-C). Here nothing is shared: the parent writes a call to an idle worker's
own pipe, waits on all pipes at once (``multiprocessing.connection.wait``), and on any exception,
Ctrl-C included, kills every worker (SIGKILL) and reaps it. Workers ignore SIGINT: the terminal
sends it to the whole process group, and stopping them is the parent's job.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator


class WorkerFailed(RuntimeError):
    """A worker died without answering (killed, out of memory, a crash in C code)."""


def _serve(conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            call = conn.recv()
        except EOFError:  # the parent is gone
            return
        if call is None:
            return
        fn, args = call
        try:
            conn.send((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 - every error goes back to the parent
            try:
                conn.send((False, e))
            except Exception:  # the exception itself does not pickle: send its text
                conn.send((False, RuntimeError("".join(traceback.format_exception(e)))))


class KillableWorkers:
    """``with KillableWorkers(n) as w: for key, result in w.map_unordered(fn, items): ...``.

    ``fn`` must be a top-level function (it is pickled); each item is ``(key, args)``. Results come
    as they finish; a worker's exception is re-raised in the parent, which then kills the others."""

    def __init__(self, n: int):
        ctx = multiprocessing.get_context("spawn")
        self._workers = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), daemon=True)
            proc.start()
            child.close()
            self._workers.append((proc, parent))

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc, _ in self._workers]

    def map_unordered(self, fn: Callable, items: Iterable[tuple[Any, tuple]]) -> Iterator[tuple[Any, Any]]:
        todo = list(items)
        busy: dict[Any, Any] = {}  # connection -> key
        idle = [conn for _, conn in self._workers]
        while todo or busy:
            while todo and idle:
                conn = idle.pop()
                key, args = todo.pop(0)
                try:
                    conn.send((fn, args))
                except OSError:  # its end of the pipe is closed: the worker is dead
                    raise WorkerFailed(f"a worker died before running {key!r}") from None
                busy[conn] = key
            for conn in wait(list(busy)):
                key = busy.pop(conn)
                try:
                    ok, value = conn.recv()
                except (EOFError, OSError):  # closed or reset: the worker is dead
                    raise WorkerFailed(f"a worker died while running {key!r}") from None
                if not ok:
                    raise value
                idle.append(conn)
                yield key, value

    def close(self, kill: bool) -> None:
        for proc, conn in self._workers:
            if kill:
                proc.kill()
            else:
                try:
                    conn.send(None)
                except OSError:
                    proc.kill()
        for proc, conn in self._workers:
            proc.join()
            conn.close()

    def __enter__(self) -> "KillableWorkers":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None)
