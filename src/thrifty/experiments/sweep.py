"""Sweeps: run many configs into a :class:`~thrifty.experiments.store.ResultStore`, resumably.

:func:`run_sweep` de-duplicates the configs (equal resolved configs have equal keys), skips
every config whose record says it finished, submits the rest to an executor (this process,
a local process pool or a Dask cluster, see :mod:`thrifty.experiments.executors`) and
writes each record, on the driver, as soon as its run ends. Killing the sweep at any point
loses only the runs in progress; running it again resumes.

The function that executes on the workers is :func:`run_one`: it loads the data set once
per process and shares the prepared device arrays between the runs of that process.

Example
-------
>>> from thrifty.config import RunConfig
>>> configs = [RunConfig(dataset="synthetic", n_hidden=20, seed=s) for s in range(3)]
>>> result = run_sweep(configs, "results", workers=2)  # doctest: +SKIP
>>> print(result)  # doctest: +SKIP
3 runs: 3 done (converged 3), 0 skipped, 0 failed; records in results
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from thrifty.compile_cache import enable_compilation_cache
from thrifty.config import ConfigError, RunConfig
from thrifty.experiments import executors
from thrifty.experiments.store import (
    FINAL_STATUSES,
    RecordError,
    ResultStore,
    failed_record,
    validate_record,
)

__all__ = [
    "Progress",
    "SweepResult",
    "batch_key",
    "clear_cache",
    "dataset_for",
    "default_batch",
    "run_batch",
    "run_one",
    "run_sweep",
]

Progress = Callable[[dict[str, Any], int, int], None]
"""``progress(record, finished, total)``: called on the driver after each record is written."""


# ----------------------------------------------------------------------------- worker side


class _LRU:
    """A small least-recently-used cache (per process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = make()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


# Data sets (host arrays) and prepared device arrays of this process. Two of each: a
# sweep over one data set and protocol never reloads; memory stays bounded.
_DATASETS = _LRU(2)
_ARRAYS = _LRU(2)


def clear_cache() -> None:
    """Forget the data sets and device arrays cached by :func:`run_one` in this process."""
    _DATASETS.items.clear()
    _ARRAYS.items.clear()


def _data_key(config: RunConfig, data_dir: str | None) -> tuple[Any, ...]:
    from thrifty import train

    config = config.resolved()
    if config.dataset == "synthetic":
        return ("synthetic", config.criterion, config.inputs)
    return (config.dataset, repr(train.preprocessing_for(config)), data_dir)


def dataset_for(config: RunConfig, *, data_dir: str | None = None) -> Any:
    """The :class:`thrifty.data.Dataset` of ``config``, loaded once per process.

    Configs that share data set and preprocessing (protocol, input variant) share it.
    """
    from thrifty import train

    return _DATASETS.get(
        _data_key(config, data_dir), lambda: train.load_dataset(config, data_dir=data_dir)
    )


def _arrays_for(config: RunConfig, dataset: Any, data_dir: str | None) -> Any:
    import jax

    from thrifty import train

    config = config.resolved()
    key = (
        _data_key(config, data_dir),
        config.dtype,
        config.check_set,
        config.n_train,
        bool(jax.config.read("jax_enable_x64")),
    )
    return _ARRAYS.get(key, lambda: train.prepare_arrays(config, dataset))


def _in_dask_worker() -> bool:
    """Whether this code runs in a task of a Dask worker."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def _prepare_process(x64: bool | None) -> None:
    """Set up the process that runs a task of a sweep.

    Sets JAX's 64-bit mode to ``x64`` (None: leaves it), and in a Dask worker turns on
    the disk cache of compiled programs (:mod:`thrifty.compile_cache`; it takes effect
    when the worker has not compiled anything yet, as at its first task). Local worker
    processes turn it on when they start, and a driver running tasks itself is left
    as it is.
    """
    import jax

    if x64 is not None and bool(jax.config.read("jax_enable_x64")) != x64:
        jax.config.update("jax_enable_x64", x64)
    if _in_dask_worker():
        enable_compilation_cache()


def run_one(
    config: Mapping[str, Any], data_dir: str | None = None, *, x64: bool | None = None
) -> dict[str, Any]:
    """Run one config and return its record: the function a sweep's workers execute.

    Parameters
    ----------
    config : mapping
        ``RunConfig.to_dict()`` (plain data, cheap to send to another process or host).
    data_dir : str, optional
        Directory of the IDX files on the worker (see :func:`thrifty.data.load`).
    x64 : bool, optional
        Set JAX's 64-bit mode to this before running (the driver's mode, so that a run
        gives the same numbers wherever it executes); ``None`` leaves it as it is.

    Returns
    -------
    dict
        The record of :func:`thrifty.train.run`.

    Notes
    -----
    The data set is loaded once per process (keyed by data set and preprocessing) and its
    device arrays are prepared once per data set, dtype, check set and ``n_train``, then
    shared by every run of the process. Seeds come from the config only.
    """
    from thrifty import train

    _prepare_process(x64)
    cfg = RunConfig.from_dict(dict(config)).resolved()
    dataset = dataset_for(cfg, data_dir=data_dir)
    arrays = _arrays_for(cfg, dataset, data_dir)
    return train.run(cfg, dataset, arrays=arrays)


def run_batch(
    configs: list[Mapping[str, Any]], data_dir: str | None = None, *, x64: bool | None = None
) -> list[dict[str, Any]]:
    """Run configs that differ only in numbers as one batch (:func:`thrifty.train.run_many`).

    The configs must share data and structure (see :func:`batch_key`); records are
    those of separate runs, in the order given.
    """
    from thrifty import train

    _prepare_process(x64)
    cfgs = [RunConfig.from_dict(dict(c)).resolved() for c in configs]
    dataset = dataset_for(cfgs[0], data_dir=data_dir)
    arrays = _arrays_for(cfgs[0], dataset, data_dir)
    return train.run_many(cfgs, dataset, arrays=arrays)


def batch_key(config: RunConfig) -> tuple[Any, ...]:
    """Configs with equal batch keys share data and compiled structure: they differ only
    in numbers (seed, learning rate, σ, fractions, thresholds, criterion, budget), and
    their rule and synapse strings write out the same parameters."""
    from thrifty.rules import registry
    from thrifty.synapses import synapse_structure
    from thrifty.train import numbers_layout

    c = config.resolved()
    return (
        c.dataset,
        c.protocol,
        c.inputs,
        c.dtype,
        c.n_train,
        c.check_set,
        c.check_interval,
        c.n_hidden,
        c.activation,
        c.loss,
        c.alphas,
        c.simpson,
        registry.spec_structure(c.rules),
        synapse_structure(c.synapses),
        numbers_layout(c),
    )


def default_batch() -> int:
    """Runs per task when ``batch`` is not given: 1 on a CPU, 32 on an accelerator.

    On a CPU a batch runs at about the speed of its runs one after another (see
    ``bench/bench_many.py``); on an accelerator many small runs at once fill the device.
    """
    import jax

    return 1 if jax.default_backend() == "cpu" else 32


def _tasks(todo: list[str], unique: dict[str, RunConfig], batch: int) -> list[tuple[str, ...]]:
    """Group run keys into tasks of at most ``batch`` runs that share a batch key."""
    if batch <= 1:
        return [(k,) for k in todo]
    groups: dict[tuple[Any, ...], list[str]] = {}
    for key in todo:
        groups.setdefault(batch_key(unique[key]), []).append(key)
    tasks = []
    for keys in groups.values():
        tasks += [tuple(keys[i : i + batch]) for i in range(0, len(keys), batch)]
    return tasks


# ----------------------------------------------------------------------------- driver side


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did.

    Attributes
    ----------
    root : pathlib.Path
        The store.
    total : int
        Distinct configs (after de-duplication).
    done : int
        Runs that finished in this sweep (converged, budget or diverged).
    skipped : int
        Configs whose finished record was already stored.
    failed : int
        Runs recorded as failed in this sweep (they run again on the next sweep).
    duplicates : int
        Configs left out because an equal config came earlier.
    retried : int
        Resubmissions of runs whose worker process died.
    statuses : dict
        Count of each status among the runs of this sweep.
    keys : tuple of str
        Keys of the distinct configs, in the order given.
    failed_keys : tuple of str
        Keys of the runs that failed in this sweep.
    """

    root: Path
    total: int
    done: int
    skipped: int
    failed: int
    duplicates: int = 0
    retried: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    failed_keys: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every config now has a finished record."""
        return self.failed == 0 and self.done + self.skipped == self.total

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()) if k != "failed")
        done = f"{self.done} done" + (f" ({parts})" if parts else "")
        extra = f", {self.duplicates} duplicate(s) ignored" if self.duplicates else ""
        extra += f", {self.retried} resubmitted after a worker died" if self.retried else ""
        return (
            f"{self.total} runs: {done}, {self.skipped} skipped, {self.failed} failed"
            f"{extra}; records in {self.root}"
        )


class _Reporter:
    """Progress of a sweep: a callable, a tqdm bar on a terminal, or plain lines."""

    def __init__(
        self, progress: Progress | bool | None, stream: TextIO, total: int, header: str
    ) -> None:
        self.callback = progress if callable(progress) else None
        self.silent = progress is False
        self.stream = stream
        self.total = total
        self.bar: Any = None
        if self.callback is not None or self.silent:
            return
        if _isatty(stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="sweep", unit="run", file=stream, dynamic_ncols=True)
            self.bar.write(header, file=stream)
        else:
            print(header, file=stream, flush=True)

    def update(self, record: dict[str, Any], finished: int) -> None:
        if self.callback is not None:
            self.callback(record, finished, self.total)
        elif self.bar is not None:
            self.bar.set_postfix_str(f"last {record['status']}", refresh=False)
            self.bar.update(1)
        elif not self.silent:
            print(_line(record, finished, self.total), file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.callback is not None or self.silent:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _line(record: dict[str, Any], finished: int, total: int) -> str:
    width = len(str(total))
    head = f"[{finished:>{width}}/{total}] {record['key']} {record['status']:<9}"
    if record["status"] == "failed":
        return f"{head} {record.get('error', '')}".rstrip()
    energy = record["energy"]["total"]
    wall = record.get("wall_time_s")
    return (
        f"{head} samples {record['samples']:>9}  M0 {energy['m0']:.4g}  M1 {energy['m1']:.4g}"
        + (f"  {wall:.1f} s" if wall is not None else "")
    )


def _as_config(item: Any, index: int) -> RunConfig:
    if isinstance(item, RunConfig):
        return item
    if isinstance(item, Mapping):
        try:
            return RunConfig.from_dict(dict(item))
        except ConfigError as exc:
            raise ConfigError(f"config {index}: {exc}") from None
    raise ConfigError(f"config {index} must be a RunConfig or a mapping, got {type(item).__name__}")


def run_sweep(
    configs: Iterable[RunConfig | Mapping[str, Any]],
    root: str | os.PathLike[str] | ResultStore,
    *,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    data_dir: str | None = None,
    progress: Progress | bool | None = None,
    retries: int = 2,
    stream: TextIO | None = None,
    batch: int | None = None,
) -> SweepResult:
    """Run every config that has no finished record yet; write each record when it ends.

    Parameters
    ----------
    configs : iterable of RunConfig or mapping
        Equal configs (same :meth:`~thrifty.config.RunConfig.key`) run once.
    root : str, os.PathLike or ResultStore
        The results store.
    workers : int
        Local worker processes (spawned, never forked); 1 runs in this process. Ignored
        with ``client`` or ``scheduler``.
    client : distributed.Client or executor, optional
        Run on this Dask client, or on any object with the ``concurrent.futures``
        ``submit`` interface. Not closed here.
    scheduler : str, optional
        Dask scheduler address, ``"tcp://HOST:PORT"``: a client is opened for the sweep.
    data_dir : str, optional
        Directory of the IDX files *on the workers*.
    progress : callable, bool or None
        ``progress(record, finished, total)`` after each record is written; ``False``
        for silence; ``None``: a tqdm bar when ``stream`` is a terminal, else one plain
        line per finished run.
    retries : int
        How many times a run whose local worker process died is submitted again before
        it is recorded as failed. (On Dask the scheduler does this, see
        :class:`~thrifty.experiments.executors.DaskExecutor`.)
    stream : text stream, optional
        Where progress goes (default ``sys.stderr``).
    batch : int, optional
        Up to this many runs that differ only in numbers go to a worker as one task and
        run as one compiled batch (:func:`thrifty.train.run_many`); default
        :func:`default_batch`. Records are those of separate runs.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError, thrifty.rules.registry.RuleError
        A config is invalid: its fields, for every config; :func:`check_run` (rules
        and budget), before anything runs, for every config without a finished record
        (a finished run is not checked again, so a finished sweep of rules of your own
        needs no import of them).
    StoreError
        A record could not be written; the sweep stops (runs in progress are cancelled).
        Also before any run when ``<root>/records`` exists and is not a directory.
    thrifty.experiments.executors.SchedulerError
        The Dask scheduler cannot be reached, or the connection to it was lost during
        the sweep (the runs still pending are not recorded; the next sweep runs them).

    Notes
    -----
    Records of finished runs (converged, budget, diverged) are final: a later sweep skips
    them. A run that raised, or whose worker died ``retries + 1`` times, gets a record with
    ``status="failed"`` and the error text, and a later sweep runs it again. A stored
    record that cannot be read is reported with a warning and run again.
    """
    import jax

    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    if batch is None:
        batch = default_batch()
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    if not isinstance(root, ResultStore) and not os.fspath(root):
        raise ValueError("root must name the store's directory, got ''")
    store = root if isinstance(root, ResultStore) else ResultStore(root)
    store.check()
    stream = stream if stream is not None else sys.stderr

    unique, position, n_given = _distinct(configs)
    todo, skipped = _to_run(unique, store)
    if todo:  # a finished sweep in a store that cannot be written still reports
        store.check(writable=True)
    _check_runs(todo, unique, position)
    _warn_of_shared_keys(unique.values())

    x64 = bool(jax.config.read("jax_enable_x64"))
    statuses: collections.Counter[str] = collections.Counter()
    failed_keys: list[str] = []
    retried = 0
    with executors.open_executor(
        workers=workers, client=client, scheduler=scheduler, x64=x64
    ) as ex:
        header = (
            f"sweep: {len(unique)} runs, {skipped} stored already, {len(todo)} to run "
            f"on {ex.description}; records in {store.dir}"
        )
        reporter = _Reporter(progress, stream, len(todo), header)
        attempts: collections.Counter[tuple[str, ...]] = collections.Counter()
        pending: dict[cf.Future[Any], tuple[tuple[str, ...], Any]] = {}
        queue = collections.deque(_tasks(todo, unique, batch))

        def submit(task: tuple[str, ...]) -> None:
            attempts[task] += 1
            try:
                if len(task) == 1:
                    raw = ex.submit(run_one, unique[task[0]].to_dict(), data_dir, x64=x64)
                else:
                    dicts = [unique[k].to_dict() for k in task]
                    raw = ex.submit(run_batch, dicts, data_dir, x64=x64)
            except cf.BrokenExecutor as exc:
                # A user-given pool that broke: nothing more can run on it.
                broken: cf.Future[Any] = cf.Future()
                broken.set_exception(exc)
                raw = broken
            pending[executors.as_concurrent_future(raw)] = (task, raw)

        limit = ex.max_in_flight
        try:
            while queue or pending:
                while queue and (limit is None or len(pending) < limit):
                    submit(queue.popleft())
                finished, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
                lost: BaseException | None = None
                for future in finished:
                    task, _raw = pending.pop(future)
                    exc = future.exception()
                    if exc is not None and executors.lost_scheduler(ex.executor, exc):
                        lost = exc  # the runs that did finish are written first
                        continue
                    if (
                        exc is not None
                        and executors.is_worker_loss(exc)
                        and attempts[task] <= retries
                    ):
                        retried += 1
                        reporter.note(
                            f"{', '.join(task)}: worker process died ({type(exc).__name__}); "
                            f"submitting again (attempt {attempts[task] + 1})"
                        )
                        queue.appendleft(task)
                        continue
                    if exc is not None:
                        records = [
                            failed_record(unique[k], exc, attempts=attempts[task]) for k in task
                        ]
                    else:
                        result = future.result()
                        results = [result] if len(task) == 1 else list(result)
                        if len(results) != len(task):
                            results = [None] * len(task)
                        records = [
                            _checked(r, unique[k], attempts[task])
                            for k, r in zip(task, results, strict=True)
                        ]
                    for key, record in zip(task, records, strict=True):
                        if record["status"] == "failed" and store.is_final(key):
                            # Another sweep on the same store finished this run meanwhile.
                            skipped += 1
                            continue
                        store.write(record)
                        statuses[record["status"]] += 1
                        if record["status"] == "failed":
                            failed_keys.append(key)
                        reporter.update(record, sum(statuses.values()))
                if lost is not None:
                    status = getattr(getattr(ex.executor, "client", None), "status", "?")
                    raise executors.SchedulerError(
                        f"lost the connection to the Dask scheduler ({type(lost).__name__}; "
                        f"client {status}); the records written so far are kept: start the "
                        "scheduler and its workers again, then the same sweep, to resume"
                    ) from lost
        except BaseException:
            for _future, (_key, raw) in pending.items():
                _cancel(raw)
            raise
        finally:
            reporter.close()

    result = SweepResult(
        root=store.root,
        total=len(unique),
        done=sum(v for k, v in statuses.items() if k != "failed"),
        skipped=skipped,
        failed=statuses.get("failed", 0),
        duplicates=n_given - len(unique),
        retried=retried,
        statuses=dict(statuses),
        keys=tuple(unique),
        failed_keys=tuple(failed_keys),
    )
    return result


def _distinct(
    configs: Iterable[RunConfig | Mapping[str, Any]],
) -> tuple[dict[str, RunConfig], dict[str, int], int]:
    """The first config of each key, its position among ``configs``, and how many
    were given."""
    unique: dict[str, RunConfig] = {}
    position: dict[str, int] = {}
    n_given = 0
    for i, item in enumerate(configs):
        n_given += 1
        cfg = _as_config(item, i)
        if cfg.key() not in unique:
            unique[cfg.key()] = cfg
            position[cfg.key()] = i
    return unique, position, n_given


def _check_runs(
    keys: Iterable[str], unique: dict[str, RunConfig], position: dict[str, int]
) -> None:
    """:func:`check_run` of the configs of ``keys``; an error names the config's position."""
    from thrifty.rules.registry import RuleError

    for key in keys:
        try:
            check_run(unique[key])
        except (ConfigError, RuleError) as exc:
            raise type(exc)(f"config {position[key]} ({key}): {exc}") from None


def _warn_of_shared_keys(configs: Iterable[RunConfig]) -> None:
    """Warn of configs that differ only in seeds whose JAX keys are equal
    (:func:`thrifty.train.seeds_sharing_a_key`)."""
    from thrifty.train import seeds_sharing_a_key

    configs = list(configs)
    shared = seeds_sharing_a_key(c.seed for c in configs)
    if not shared:
        return
    seeds_of: dict[str, set[int]] = {}
    for c in configs:
        seeds_of.setdefault(c.setting_key(), set()).add(c.seed)
    for a, b in shared:
        if any({a, b} <= seeds for seeds in seeds_of.values()):
            warnings.warn(
                f"seeds {a} and {b} share their JAX key: runs of one config with these "
                "seeds start from the same weights and draw the same masks (only the "
                "sample order differs)",
                stacklevel=3,
            )


def check_run(config: RunConfig) -> None:
    """Everything :func:`run_sweep` checks of one config before anything runs:
    :func:`thrifty.train.check_config`, and for synthetic data the budget against the
    data the run will get (made here, once per process, and kept for the runs).

    Raises ConfigError or RuleError.
    """
    from thrifty import train

    train.check_config(config)
    if train.expected_n_train(config) is None:  # synthetic: its size once made
        made = config.resolved()
        arrays = _arrays_for(made, dataset_for(made), None)
        train.budget_samples(made, int(arrays["x_train"].shape[0]))


def _to_run(unique: dict[str, RunConfig], store: ResultStore) -> tuple[list[str], int]:
    """Keys without a finished record, and how many have one; clears stale temporaries."""
    for stale in store.remove_stale_temporaries():
        warnings.warn(f"removed a temporary file left by a killed writer: {stale}", stacklevel=3)
    todo: list[str] = []
    skipped = 0
    for key in unique:
        status = None
        if store.has(key):
            try:
                status = store.read(key)["status"]
            except RecordError as exc:
                warnings.warn(f"{exc}; running it again", stacklevel=3)
        if status in FINAL_STATUSES:
            skipped += 1
        else:
            todo.append(key)
    return todo, skipped


def _checked(record: Any, config: RunConfig, attempts: int) -> dict[str, Any]:
    """The record a worker returned, or a failed record saying what is wrong with it."""
    key = config.key()
    try:
        validate_record(record)
        if record["key"] != key:
            raise RecordError(Path(f"{key}.json"), f"the worker returned {record['key']!r}")
    except RecordError as exc:
        return failed_record(config, exc, attempts=attempts)
    return record


def _cancel(future: Any) -> None:
    with contextlib.suppress(Exception):
        future.cancel()
