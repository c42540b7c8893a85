"""Where the runs of a sweep execute: this process, a local process pool, or a Dask cluster.

The sweep needs only the :mod:`concurrent.futures` interface: ``submit(fn, *args,
**kwargs)`` returning a future with ``result()`` and ``add_done_callback()``. So any
executor works; this module provides the usual ones and the glue:

- :class:`InlineExecutor`: runs each task in this process, one at a time (``workers=1``);
- :class:`LocalPool`: a :class:`~concurrent.futures.ProcessPoolExecutor` with the *spawn*
  start method (JAX must never be forked) that replaces itself when a worker process
  dies, so the runs it lost can be submitted again;
- :class:`DaskExecutor`: a ``dask.distributed.Client`` (given, or made from a scheduler
  address such as ``"tcp://10.0.0.1:8786"``).

Example
-------
>>> with open_executor(workers=4) as ex:  # doctest: +SKIP
...     future = ex.submit(pow, 2, 10)
...     future.result()
1024
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from thrifty.compile_cache import enable_compilation_cache

__all__ = [
    "DaskExecutor",
    "ExecutorLike",
    "InlineExecutor",
    "LocalPool",
    "OpenExecutor",
    "SchedulerError",
    "as_concurrent_future",
    "is_worker_loss",
    "open_executor",
]


class SchedulerError(ConnectionError):
    """A Dask scheduler was asked for and cannot be used (Dask missing, a malformed
    address, or no scheduler answering); names the address."""


class ExecutorLike(Protocol):
    """Anything with the ``submit`` method of :class:`concurrent.futures.Executor`."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...


class InlineExecutor:
    """Runs every task in this process when it is submitted; the future is already done.

    Exceptions (not ``KeyboardInterrupt`` or ``SystemExit``) go into the future.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` now; return a finished future."""
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to release."""


def core_groups(workers: int, cores: set[int] | None = None) -> list[set[int]] | None:
    """Disjoint sets of CPU cores, one per worker process; None: do not pin.

    ``cores`` defaults to the cores this process may run on. Workers are pinned only
    when there are at least as many cores as workers (each gets ``len(cores) //
    workers`` of them) and the environment variable ``THRIFTY_PIN_WORKERS`` is not
    ``0``. A pinned worker's XLA threads stay on its cores: measured with two workers
    on a 2-core CPU, plain backprop ran 1.4× (N = 300), 1.15× (N = 1000) and 1.06×
    (N = 3000) faster than with both workers' threads spread over both cores.
    """
    if workers < 2 or os.environ.get("THRIFTY_PIN_WORKERS", "1") == "0":
        return None
    if cores is None:
        if not hasattr(os, "sched_getaffinity"):
            return None
        cores = set(os.sched_getaffinity(0))
    ordered = sorted(cores)
    per = len(ordered) // workers
    if per < 1:
        return None
    return [set(ordered[i * per : (i + 1) * per]) for i in range(workers)]


def worker_init(
    x64: bool, parent_pid: int, gpu_share: bool, cores: Any = None, workers: int = 1
) -> None:
    """Initialise a worker process of :class:`LocalPool`.

    Sets JAX's 64-bit mode as in the driver, lets several processes share one GPU (no
    preallocation of most of its memory by each), tells the accuracy checks how many
    ``workers`` share the machine's memory (``THRIFTY_LOCAL_WORKERS``, unless set; see
    :func:`thrifty.train.hidden_cache_limit`), pins the process to a set of cores
    taken from the queue ``cores`` (see :func:`core_groups`; before JAX starts its
    threads), turns on the disk cache of compiled programs (after pinning, as the
    cache is kept per number of cores; see :mod:`thrifty.compile_cache`), and starts
    a watchdog thread that ends the worker once its driver is gone (a driver killed
    with SIGKILL leaves no orphans computing runs nobody will record).
    """
    if cores is not None:
        with contextlib.suppress(Exception):
            os.sched_setaffinity(0, cores.get(timeout=1.0))
    if gpu_share:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("THRIFTY_LOCAL_WORKERS", str(workers))
    if x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enable_compilation_cache()
    for warning in caught:  # in the command's words, not Python's
        print(f"thrifty: warning: worker {os.getpid()}: {warning.message}", file=sys.stderr)

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(70)
            time.sleep(0.5)

    threading.Thread(target=watch, name="thrifty-parent-watchdog", daemon=True).start()


class LocalPool:
    """A spawn-based process pool that starts afresh after a worker process died.

    When a worker dies (killed, out of memory), :class:`ProcessPoolExecutor` fails every
    pending future with :class:`~concurrent.futures.process.BrokenProcessPool` and refuses
    new tasks. This wrapper then shuts the broken pool down and starts a new one on the
    next :meth:`submit`, so the sweep can submit the lost runs again.

    Parameters
    ----------
    workers : int
        Number of worker processes, >= 1.
    x64 : bool
        JAX 64-bit mode of the workers (the driver's, so results do not depend on where
        a run executes).
    """

    def __init__(self, workers: int, *, x64: bool = False) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.x64 = x64
        self.restarts = 0
        self._pool: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        groups = core_groups(self.workers)
        cores = None
        if groups is not None:
            cores = context.Queue()
            for group in groups:
                cores.put(group)
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=worker_init,
            initargs=(self.x64, os.getpid(), self.workers > 1, cores, self.workers),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Submit to the pool, replacing it first if a worker died."""
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool()
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except cf.BrokenExecutor:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self.restarts += 1
                self._pool = self._new_pool()
                return self._pool.submit(fn, *args, **kwargs)

    def pids(self) -> list[int]:
        """Process ids of the current pool's workers (for monitoring)."""
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return sorted(int(p) for p in procs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the pool down (see :meth:`concurrent.futures.Executor.shutdown`)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
                self._pool = None

    def terminate(self) -> None:
        """Stop at once: cancel what waits and end the worker processes (runs are lost)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.join(5)


class DaskExecutor:
    """Submit to a ``dask.distributed`` cluster through a client.

    Every task gets a unique key (``pure=False``): two sweeps never share a task. A worker
    that dies while running a task is handled by the scheduler, which runs the task on
    another worker, up to ``distributed.scheduler.allowed-failures`` times (default 3);
    after that the future raises ``KilledWorker`` and the sweep records the run as failed.

    Parameters
    ----------
    client : distributed.Client
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``client.submit(fn, *args, pure=False, **kwargs)``."""
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing: the client's owner closes it."""


def is_dask_client(obj: Any) -> bool:
    """Whether ``obj`` is a ``distributed.Client`` (without importing Dask)."""
    return any(
        c.__module__.startswith("distributed") and c.__name__ == "Client" for c in type(obj).__mro__
    )


CONNECT_S = 30.0
"""How long a sweep waits for a Dask scheduler to answer (seconds)."""


def _connect(client_type: Any, scheduler: str, timeout_s: float) -> Any:
    """A Dask client on ``scheduler``, or :class:`SchedulerError` after
    :func:`connect_limit_s` seconds at most. Dask's own timeout does not cover a
    listener that accepts the connection and never answers (the dashboard's port, say),
    so the client is made in a thread that is given up at the limit; a client it still
    makes afterwards is closed at once."""
    made: dict[str, Any] = {}
    lock = threading.Lock()

    def connect() -> None:
        try:
            client = client_type(scheduler, timeout=f"{timeout_s:g}s")
        except BaseException as exc:  # handed to the caller
            made["error"] = exc
            return
        with lock:
            if not made.get("given up"):
                made["client"] = client
                return
        with contextlib.suppress(Exception):
            client.close()

    thread = threading.Thread(target=connect, name="thrifty-dask-connect", daemon=True)
    thread.start()
    thread.join(connect_limit_s(timeout_s))
    with lock:
        if "client" not in made and "error" not in made:
            made["given up"] = True
            raise SchedulerError(
                f"cannot use the Dask scheduler {scheduler!r}: nothing answered as a "
                f"scheduler within {connect_limit_s(timeout_s):g} s (is it the scheduler's "
                "address, not its dashboard's?)"
            )
    exc = made.get("error")
    if isinstance(exc, ValueError | OSError):
        raise SchedulerError(f"cannot use the Dask scheduler {scheduler!r}: {exc}") from exc
    if exc is not None:
        raise exc
    return made["client"]


def connect_limit_s(timeout_s: float) -> float:
    """How long :func:`_connect` waits at most: Dask's own timeout and a grace."""
    return timeout_s + min(timeout_s, 5.0)


def _workers_text(client: Any) -> str:
    """`` (N workers)`` for a sweep's header, with a hint when there are none yet."""
    try:
        info = client.scheduler_info()
        # some versions list only a few workers here but count them all
        n = int(info.get("n_workers", len(info.get("workers", {}))))
    except Exception:  # an older or a stand-in client: say nothing
        return ""
    if n == 0:
        return " (no workers yet: the runs wait until one connects)"
    return f" ({n} worker{'s' if n != 1 else ''})"


def lost_scheduler(executor: Any, exc: BaseException) -> bool:
    """Whether a future failed because its Dask client lost the scheduler (Dask then
    cancels every future, giving the reason), not because its run raised. Without a
    reason (older Dask), a cancellation while the client no longer runs counts."""
    client = getattr(executor, "client", None)
    if client is None or "Cancelled" not in type(exc).__name__:
        return False
    reason = getattr(exc, "reason", None)
    if reason is not None:
        return reason == "scheduler-connection-lost"
    return getattr(client, "status", "running") != "running"


def is_worker_loss(exc: BaseException) -> bool:
    """Whether a future failed because its worker process died, not because the run raised.

    True for :class:`concurrent.futures.BrokenExecutor` (a process pool whose worker died).
    Dask's ``KilledWorker`` is *not* a loss to retry: the scheduler already retried the
    task on other workers before raising it.
    """
    return isinstance(exc, cf.BrokenExecutor)


def as_concurrent_future(future: Any) -> cf.Future[Any]:
    """A :class:`concurrent.futures.Future` that follows ``future`` (any future type).

    ``future`` needs ``add_done_callback(fn)`` and ``result()`` (Dask futures have both),
    so :func:`concurrent.futures.wait` can wait on futures of every executor.
    """
    if isinstance(future, cf.Future):
        return future
    out: cf.Future[Any] = cf.Future()
    out.set_running_or_notify_cancel()

    def copy(done: Any) -> None:
        try:
            result = done.result()
        except BaseException as exc:  # the run's error, or its cancellation
            out.set_exception(exc)
        else:
            out.set_result(result)

    future.add_done_callback(copy)
    return out


@dataclass
class OpenExecutor:
    """An executor with what the sweep needs to know about it.

    Attributes
    ----------
    executor : ExecutorLike
    description : str
        For progress output, e.g. ``"2 local processes"``.
    max_in_flight : int or None
        How many runs to submit ahead; ``None``: all at once (the cluster queues them).
    """

    executor: ExecutorLike
    description: str
    max_in_flight: int | None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Submit to the executor."""
        return self.executor.submit(fn, *args, **kwargs)


@contextlib.contextmanager
def open_executor(
    *,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    x64: bool = False,
) -> Iterator[OpenExecutor]:
    """The executor a sweep runs on, released on exit.

    Parameters
    ----------
    workers : int
        Local worker processes when neither ``client`` nor ``scheduler`` is given; 1 runs
        in this process.
    client : distributed.Client or concurrent.futures.Executor-like, optional
        Used as it is, never closed here.
    scheduler : str, optional
        Address of a Dask scheduler, ``"tcp://HOST:PORT"``; a client is opened on it and
        closed on exit. Needs ``dask[distributed]``.
    x64 : bool
        JAX 64-bit mode for local worker processes.

    Raises
    ------
    ValueError
        ``workers`` < 1, or both ``client`` and ``scheduler`` given.
    SchedulerError
        ``scheduler`` given, and Dask is not installed or no scheduler answers there.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if client is not None and scheduler is not None:
        raise ValueError("give either client or scheduler, not both")
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise SchedulerError(
                "scheduler= needs Dask: pip install 'thrifty[dask]' (dask[distributed])"
            ) from exc
        own = _connect(Client, scheduler, CONNECT_S)
        try:
            yield OpenExecutor(
                DaskExecutor(own), f"Dask scheduler {scheduler}{_workers_text(own)}", None
            )
        finally:
            own.close()
        return
    if client is not None:
        if is_dask_client(client):
            yield OpenExecutor(
                DaskExecutor(client),
                f"Dask {client.scheduler.address}{_workers_text(client)}",
                None,
            )
        else:
            if not callable(getattr(client, "submit", None)):
                raise TypeError(
                    f"client must be a dask Client or have a submit() method, got {client!r}"
                )
            yield OpenExecutor(client, type(client).__name__, None)
        return
    if workers == 1:
        yield OpenExecutor(InlineExecutor(), "this process", 1)
        return
    pool = LocalPool(workers, x64=x64)
    try:
        yield OpenExecutor(pool, f"{workers} local processes", 2 * workers)
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.shutdown(wait=True)
