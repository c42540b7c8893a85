"""Reproduce the paper: fetch the data, run every figure's configs, draw, report.

:func:`reproduce` is what ``thrifty reproduce --scale quick|full`` calls. It is
resumable by construction: runs whose record exists in ``<out>/records`` are skipped,
so an interrupted reproduction continues where it stopped, and a finished one redraws
its figures and report without training, and without loading the data.

Steps
-----
1. Load every data set once (a missing or corrupt file fails here, before any run).
2. Collect the configs of all planned figures (:func:`thrifty.figures.all_configs`),
   most expensive first, and run them with :func:`thrifty.experiments.run_sweep`.
   Some runs depend on measured values (Fig 2a's synapse masks need ``N_min``); the
   configs are collected again from the records and the sweep repeats until nothing is
   new (at most :data:`MAX_ROUNDS` times).
3. Load the records (:func:`thrifty.experiments.load`), keep those of this
   reproduction's configs (of a subset of figures: and of every other figure whose runs
   are all stored), draw every figure into ``figures/`` (PNG and PDF), then write
   ``runs.csv``, ``report.md`` and ``report.html``, each replaced whole. The report's
   notes name unreadable records, failed runs and figures left out for missing runs.

Example
-------
>>> from pathlib import Path
>>> from thrifty.reproduce import reproduce
>>> reproduce("quick", out=Path("reproduction"), workers=2)  # doctest: +SKIP
PosixPath('reproduction/report.md')
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.config import RunConfig
from thrifty.data import atomic_write, stale_temporary
from thrifty.experiments.store import StoreError
from thrifty.figures import FIGURES, all_configs, draw, plan
from thrifty.figures._common import check_seeds
from thrifty.figures.scales import check_scale

MAX_ROUNDS = 3
"""Sweeps at most; the second adds runs that depend on measured values."""

DATASETS = ("mnist", "fashion-mnist")
"""Data sets of a reproduction by default."""


def estimated_cost(config: RunConfig) -> float:
    """A rough relative cost of a run, to start the longest runs first.

    Proportional to the weights touched per sample and the samples a run may take
    (its budget when it is expected to fail, else about 40 000); caching, which works on
    full matrices with several passes, and per-sample top-k selection weigh more.
    """
    n = config.n_hidden
    rules = " ".join(config.rules)
    factor = 1.0
    if config.synapses.startswith("caching"):
        factor *= 8.0
    if "top-k" in rules or "neuron-select" in rules:
        factor *= 3.0
    samples = min(40_000.0, config.budget_epochs * 50_000.0)
    if config.criterion is not None and config.criterion >= 1.0:
        samples = config.budget_epochs * 50_000.0
    return factor * (n + 50) * samples


def _log(message: str) -> None:
    print(f"reproduce: {message}", file=sys.stderr, flush=True)


def fetch_data(
    datasets: Sequence[str], data_dir: str | None = None, *, required: Sequence[str] = ("mnist",)
) -> tuple[str, ...]:
    """Load each data set once so that a missing or corrupt file shows before any run.

    A data set in ``required`` that cannot be had raises :class:`thrifty.data.DataError`;
    any other is left out with a warning (e.g. Fashion-MNIST on a machine without the
    Debian package ``dataset-fashion-mnist`` and without access to its mirrors).
    Returns the data sets that are ready.
    """
    from thrifty import train
    from thrifty.data import DataError

    ready = []
    for dataset in datasets:
        if dataset == "synthetic":
            ready.append(dataset)
            continue
        t0 = time.perf_counter()
        try:
            train.load_dataset(RunConfig(dataset=dataset), data_dir=data_dir, log=_log)
        except DataError as exc:
            if dataset in required:
                raise
            _log(f"{dataset}: left out of this reproduction, its data cannot be had: {exc}")
            continue
        _log(f"{dataset}: data ready ({time.perf_counter() - t0:.1f} s)")
        ready.append(dataset)
    return tuple(ready)


def reproduce(
    scale: str = "quick",
    out: Path | str = Path("reproduction"),
    workers: int = 1,
    scheduler: str | None = None,
    data_dir: str | None = None,
    datasets: Sequence[str] = DATASETS,
    figures: Sequence[str] | None = None,
    seeds: int | None = None,
    *,
    report_only: bool = False,
    client: Any = None,
    progress: Callable[..., None] | bool | None = None,
) -> Path:
    """Run, draw and report the paper's figures at a scale; returns the path of report.md.

    Parameters
    ----------
    scale : {"quick", "full", "tiny"}
        ``quick``: about 11–14 minutes on a 2-core CPU with ``workers=2``; ``full``: the
        paper's scale; ``tiny``: seconds, for tests (use ``datasets=("synthetic",)``).
    out : Path
        Output directory: ``records/``, ``runs.csv``, ``figures/``, ``report.md``,
        ``report.html`` and :data:`SETTINGS` (the scale and seeds).
    workers : int
        Local worker processes of the sweep.
    scheduler : str, optional
        Dask scheduler address (``tcp://HOST:PORT``) to run the sweep on a cluster.
    data_dir : str, optional
        Directory with the IDX files (on the workers, too).
    datasets : sequence of str
        Data sets to reproduce on (default MNIST and Fashion-MNIST).
    figures : sequence of str, optional
        A subset of :data:`thrifty.figures.FIGURES` to train and draw. Every other
        figure of the scale whose runs are all stored in ``out`` is drawn too, from its
        records, so that a figure drawn again in a finished reproduction keeps the rest
        of its report and ``runs.csv``.
    seeds : int, optional
        Seeds of every point, ``0 … seeds − 1``; default: each figure's own at the
        scale (1–3 at ``quick``, 5 at ``full``). ``seeds=3`` at ``quick`` gives every
        point three seeds (459 runs instead of 204); records of other seeds in ``out``
        are kept but take no part in the figures, the report or the runs planned.
    report_only : bool
        Train nothing and load no data: draw, from the records stored in ``out``, every
        figure of ``figures`` (or all) on ``datasets`` whose runs are all stored, and
        name the others in the report (an interim report of a reproduction still
        running elsewhere, say).
    client : optional
        A Dask client or executor to run the sweep on.
    progress : callable, bool or None
        Passed to :func:`thrifty.experiments.run_sweep`.

    Returns
    -------
    Path
        ``<out>/report.md`` (``report.html`` beside it).
    """
    from thrifty import experiments

    check_scale(scale)
    if seeds is not None:
        seeds = check_seeds(seeds)
    datasets = tuple(dict.fromkeys(datasets))
    if figures is not None:
        figures = tuple(dict.fromkeys(figures))
        unknown = sorted(set(figures) - set(FIGURES))
        if unknown:
            raise ValueError(
                f"unknown figure(s) {', '.join(unknown)}; allowed: {', '.join(FIGURES)}"
            )
    asked = tuple(datasets)
    out = Path(out)
    t0 = time.perf_counter()
    if report_only:
        df = _stored_for_report(out)
        _check_like_the_reproduction(out, scale, seeds)
        _check_figures_dir(out / "figures")
        _remove_stale_parts(out)
        return _report(
            scale,
            out,
            asked,
            figures,
            seeds,
            df,
            t0,
            command=_command(scale, out, workers, asked, figures, seeds, report_only=True),
        )
    out.mkdir(parents=True, exist_ok=True)
    _check_figures_dir(out / "figures")
    _remove_stale_parts(out)
    df = _load(out) if (out / "records").is_dir() else None
    nothing_to_run = _all_stored(scale, asked, figures, df, seeds)
    if nothing_to_run:
        _log("every run is stored already: the figures and report are drawn without data")
        datasets = asked
        scheduler = None  # nothing to run: no cluster is needed
    else:
        datasets = fetch_data(asked, data_dir, required=asked[:1])
    _write_settings(out, scale, seeds)
    configs: list[RunConfig] = []
    for round_ in range(1, MAX_ROUNDS + 1):
        configs = all_configs(scale, datasets, figures, df, seeds)
        configs.sort(key=estimated_cost, reverse=True)
        _log(f"round {round_}: {len(configs)} runs planned")
        result = experiments.run_sweep(
            configs,
            out,
            workers=workers,
            client=client,
            scheduler=scheduler,
            data_dir=data_dir,
            progress=progress,
        )
        _log(
            f"round {round_}: {result.done} run, {result.skipped} stored already, "
            f"{result.failed} failed"
        )
        df = _load(out)
        again = {c.key() for c in all_configs(scale, datasets, figures, df, seeds)}
        if again <= {c.key() for c in configs}:
            break
    assert df is not None
    keys = {c.key() for c in all_configs(scale, datasets, figures, df, seeds)}
    subset = figures is not None or set(datasets) != set(DATASETS)
    stored = _stored_figures(scale, datasets, figures, df, seeds) if subset else {}
    incomplete = {}
    if subset:
        # a figure left out is named where something of its own is lost: a run stored
        # that no figure drawn uses, or an earlier drawing
        drawn_keys = keys.union(*stored.values())
        incomplete = {
            pair: counts
            for pair, counts in _incomplete_figures(
                scale, datasets, figures, df, seeds, stored
            ).items()
            if (out / "figures" / f"{pair[0]}_{pair[1]}.png").exists() or counts[2] - drawn_keys
        }
    left_out = [d for d in asked if d not in datasets]
    notes = _notes(scale, _shown(datasets, stored), figures, left_out, seeds, list(stored))
    return _draw_and_report(
        scale,
        out,
        df,
        keys,
        datasets,
        figures,
        stored,
        incomplete,
        notes,
        t0,
        command=_command(scale, out, workers, asked, figures, seeds),
    )


def _report(
    scale: str,
    out: Path,
    asked: Sequence[str],
    figures: Sequence[str] | None,
    seeds: int | None,
    df: Any,
    t0: float,
    *,
    command: str,
) -> Path:
    """:func:`reproduce` with ``report_only``: draw what is stored, train nothing."""

    def wanted(pair: tuple[str, str]) -> bool:
        return pair[1] in asked and (figures is None or pair[0] in figures)

    # every figure whose runs are all stored, as a subset reproduction keeps them
    stored = _stored_figures(scale, (), None, df, seeds)
    if not stored:
        seeds_text = "" if seeds is None else f" with {seeds} seed{'s' * (seeds > 1)}"
        raise StoreError(
            f"no figure of the {scale} scale{seeds_text} has all its runs stored in "
            f"{str(out)!r}: nothing to draw (the report there is kept; are --scale and "
            "--seeds those of the reproduction?)"
        )
    incomplete = {
        p: n
        for p, n in _incomplete_figures(scale, (), None, df, seeds, stored, every=asked).items()
        if wanted(p)
    }
    shown = _shown((), stored)
    notes = ["report only: drawn from the records stored, nothing trained"]
    notes += [f"{d}: no figure has all its runs stored" for d in asked if d not in shown]
    notes += _notes(scale, tuple(dict.fromkeys((*shown, *asked))), None, (), seeds, ())
    return _draw_and_report(
        scale, out, df, set(), (), figures, stored, incomplete, notes, t0, command=command
    )


def _draw_and_report(
    scale: str,
    out: Path,
    df: Any,
    keys: set[str],
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    stored: dict[tuple[str, str], set[str]],
    incomplete: dict[tuple[str, str], tuple[int, int]],
    notes: list[str],
    t0: float,
    *,
    command: str,
) -> Path:
    """Draw the figures asked for (``figures``, or all, on ``datasets``) and those of
    ``stored`` from the records of ``df`` with ``keys`` or those of ``stored``, and write
    ``runs.csv``, ``report.md`` and ``report.html`` with ``notes`` and those on the
    records; returns the path of report.md."""
    from thrifty.report import Drawn, write_report

    for pair_keys in stored.values():
        keys = keys | pair_keys
    skipped = list(df.attrs.get("skipped", []))
    df = df[df["key"].isin(keys)].reset_index(drop=True)

    shown = _shown(datasets, stored)
    drawn: list[Drawn] = []
    for name, dataset in _to_draw(scale, shown, datasets, figures, stored):
        try:
            data, paths = draw(name, df, dataset, out / "figures")
            drawn.append(Drawn(name, dataset, data, paths))
        except OSError as exc:
            # a figure that cannot be written: stop, and keep the earlier report
            raise StoreError(f"cannot write the figure {name} ({dataset}): {exc}") from exc
        except Exception as exc:
            _log(f"{name} ({dataset}) could not be drawn:\n{traceback.format_exc()}")
            drawn.append(Drawn(name, dataset, None, [], f"{type(exc).__name__}: {exc}"))
    wall = time.perf_counter() - t0
    notes = notes + _record_notes(df, skipped, incomplete)
    table = df.drop(columns=[c for c in ("curve",) if c in df.columns])
    try:
        atomic_write(out / "runs.csv", table.to_csv(index=False).encode())
        report = write_report(
            out,
            df,
            drawn,
            scale=scale,
            datasets=shown,
            wall_time_s=wall,
            command=command,
            notes=notes,
        )
    except OSError as exc:
        raise StoreError(f"cannot write the table or report in {str(out)!r}: {exc}") from exc
    _log(f"done in {wall / 60:.1f} min: {report}")
    return report


def _shown(datasets: Sequence[str], stored: dict[tuple[str, str], set[str]]) -> tuple[str, ...]:
    """The data sets of a report: those trained on, then those of stored figures."""
    return tuple(dict.fromkeys((*datasets, *(d for _, d in stored))))


def _to_draw(
    scale: str,
    shown: Sequence[str],
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    stored: dict[tuple[str, str], set[str]],
) -> list[tuple[str, str]]:
    """The (figure, data set) pairs a report draws, in the plan's order: those asked for
    (``figures``, or all, on the data sets trained on, ``datasets``) and those whose
    runs are all stored (``stored``), on the data sets ``shown``."""
    pairs = []
    for dataset in shown:
        for name in plan(scale, dataset):
            asked_for = dataset in datasets and (figures is None or name in figures)
            if asked_for or (name, dataset) in stored:
                pairs.append((name, dataset))
    return pairs


def _check_figures_dir(path: Path) -> None:
    """Refuse a figures directory that cannot be written, before any work (nothing is
    created here).

    Raises
    ------
    thrifty.experiments.store.StoreError
        ``path`` is not a directory, or it (or, where it is not there yet, the
        directory that will hold it) cannot be written.
    """
    if path.exists() and not path.is_dir():
        raise StoreError(f"{str(path)!r} is not a directory; it must hold the figures")
    # the directory itself is made when the first figure is drawn
    where = path if path.is_dir() else path.parent
    if not os.access(where, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write the figures directory {str(path)!r}")


def _incomplete_figures(
    scale: str,
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    df: Any,
    seeds: int | None,
    stored: dict[tuple[str, str], set[str]],
    *,
    every: Sequence[str] = (),
) -> dict[tuple[str, str], tuple[int, int, set[str]]]:
    """The (figure, data set) pairs of the plan on the data sets of ``df`` and
    ``every``, neither asked for (``figures``, or all, on ``datasets``) nor drawn from
    the stored records (``stored``): per pair, the runs stored, the runs planned so far
    (runs planned from measured values, such as Fig 2a's synapse masks, come once those
    are stored) and the keys of those stored."""
    if df is None or df.empty:
        return {}
    finished = set(df["key"])
    out: dict[tuple[str, str], tuple[int, int, set[str]]] = {}
    for dataset in dict.fromkeys([*_present(df), *every]):
        for name in plan(scale, dataset):
            asked_for = dataset in datasets and (figures is None or name in figures)
            if asked_for or (name, dataset) in stored:
                continue
            keys = {c.key() for c in all_configs(scale, (dataset,), (name,), df, seeds)}
            have = keys & finished
            if len(have) < len(keys):
                out[(name, dataset)] = (len(have), len(keys), have)
    return out


def _record_notes(
    df: Any, skipped: Sequence[str], incomplete: dict[tuple[str, str], tuple[int, int, set[str]]]
) -> list[str]:
    """Notes on the records behind a report: files that could not be read, runs that
    failed, and figures left out because some of their runs are not stored."""
    notes = []
    if skipped:
        names = ", ".join(Path(p).name for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        notes.append(
            f"{len(skipped)} record file(s) could not be read and were left out: {names} "
            "(a reproduction of their figures with the data at hand runs them again)"
        )
    if "status" in df.columns:
        failed = df.loc[df["status"] == "failed", "key"].tolist()
        if failed:
            keys = ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")
            notes.append(
                f"{len(failed)} run(s) failed with an error, not a result (the error column of "
                f"runs.csv says why): {keys}; the figures draw each as a run that missed the "
                "criterion, and a reproduction of their figures with the data at hand runs "
                "them again"
            )
    by_dataset: dict[str, list[str]] = {}
    for (name, dataset), (have, planned, _) in incomplete.items():
        by_dataset.setdefault(dataset, []).append(f"{name} ({have} of {planned})")
    for dataset, names in by_dataset.items():
        notes.append(
            f"{dataset}: not drawn, their runs not all stored (runs stored of those planned "
            f"so far): {', '.join(names)}; a reproduction of these figures with the data at "
            "hand trains the rest; their files in figures/, if there, are from an earlier "
            "report"
        )
    return notes


_PART = re.compile(
    r"\.(?:report\.md|report\.html|runs\.csv|[A-Za-z0-9_-]+\.(?:png|pdf))"
    r"\.([A-Za-z0-9-]+_[0-9]{1,10})\.[0-9a-f]{8}\.part"
)
"""Name of a temporary file of a table, report or figure (:func:`atomic_write`); the
group is its writer (:func:`thrifty.data.writer_tag`)."""

STALE_PART_S = 86400.0
"""Age after which such a temporary file of a writer on another host is taken for one
left by a process that died (as for the temporaries of records)."""


def _remove_stale_parts(out: Path) -> None:
    """Remove the temporary files that a reproduction killed while writing its table,
    report or figures left in ``out`` and ``out/figures`` (:data:`_PART`): those of a
    process no longer running on this host, and those older than :data:`STALE_PART_S`
    (:func:`thrifty.data.stale_temporary`)."""
    for directory in (out, out / "figures"):
        for path in directory.glob(".*.part"):
            match = _PART.fullmatch(path.name)
            with contextlib.suppress(OSError):
                if match and path.is_file() and stale_temporary(path, match[1], STALE_PART_S):
                    path.unlink()


SETTINGS = "reproduction.json"
"""File in the output directory with the scale and seeds of the last reproduction
that trained there (written once its data is loaded, before its runs), which
``report_only`` must match."""


def _write_settings(out: Path, scale: str, seeds: int | None) -> None:
    """Record the scale and seeds of a reproduction in ``out`` (:data:`SETTINGS`)."""
    text = json.dumps({"scale": scale, "seeds": seeds}) + "\n"
    try:
        atomic_write(out / SETTINGS, text.encode())
    except OSError as exc:
        raise StoreError(f"cannot write {str(out / SETTINGS)!r}: {exc}") from exc


def _check_like_the_reproduction(out: Path, scale: str, seeds: int | None) -> None:
    """Refuse a report of another scale or other seeds than those of the reproduction
    that trained in ``out`` (:data:`SETTINGS`; nothing is checked without the file)."""
    try:
        settings = json.loads((out / SETTINGS).read_text(encoding="utf-8"))
        done = (settings["scale"], settings["seeds"])
    except (OSError, ValueError, TypeError, KeyError):
        return
    if done != (scale, seeds):
        given = f"--scale {done[0]}" + ("" if done[1] is None else f" --seeds {done[1]}")
        raise StoreError(
            f"the reproduction in {str(out)!r} is of the {done[0]} scale with "
            f"{'its default seeds' if done[1] is None else f'--seeds {done[1]}'}: give "
            f"{given} (another report would replace its figures and report; {SETTINGS} "
            "there says what it ran)"
        )


def _stored_for_report(out: Path) -> Any:
    """The records of ``out`` for a report alone; refuse a directory without any."""
    if not (out / "records").is_dir():
        raise StoreError(f"no records in {str(out)!r}: there is nothing to report")
    df = _load(out)
    if df.empty:
        skipped = len(df.attrs.get("skipped", []))
        what = (
            f"none of the {skipped} record file(s) in {str(out)!r} could be read"
            if skipped
            else f"no records in {str(out)!r}"
        )
        raise StoreError(f"{what}: there is nothing to report")
    return df


def _present(df: Any) -> list[str]:
    """The data sets of the records in ``df``: MNIST and Fashion-MNIST first."""
    present = set(df["dataset"].dropna())
    return [*(d for d in DATASETS if d in present), *sorted(present - set(DATASETS))]


def _stored_figures(
    scale: str,
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    df: Any,
    seeds: int | None,
) -> dict[tuple[str, str], set[str]]:
    """The (figure, data set) pairs of the scale's plan other than those asked for
    (``figures``, or all, on ``datasets``) whose runs all have a finished record in
    ``df`` (failed ones included, which the figures draw as runs that missed the
    criterion), each with the keys of those runs.

    A reproduction of some figures or data sets draws these too, from the stored
    records, so that drawing a few figures again in a finished reproduction keeps the
    rest of its report.
    """
    if df is None or df.empty:
        return {}
    finished = set(df["key"])  # a failed run is drawn as one that missed the criterion
    out: dict[tuple[str, str], set[str]] = {}
    for dataset in _present(df):
        for name in plan(scale, dataset):
            if dataset in datasets and (figures is None or name in figures):
                continue
            keys = {c.key() for c in all_configs(scale, (dataset,), (name,), df, seeds)}
            if keys and keys <= finished:
                out[(name, dataset)] = keys
    return out


def _all_stored(
    scale: str,
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    df: Any,
    seeds: int | None,
) -> bool:
    """Whether every run of the plan on ``datasets`` has a finished record in ``df``
    (so that nothing is left to train and the data is not needed)."""
    from thrifty.experiments.store import FINAL_STATUSES

    if df is None or df.empty:
        return False
    finished = set(df.loc[df["status"].isin(FINAL_STATUSES), "key"])
    planned = {c.key() for c in all_configs(scale, tuple(datasets), figures, df, seeds)}
    return planned <= finished


def _load(out: Path) -> Any:
    from thrifty import experiments

    return experiments.load(out, errors="skip")


def _command(
    scale: str,
    out: Path,
    workers: int,
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    seeds: int | None,
    *,
    report_only: bool = False,
) -> str:
    """The :func:`reproduce` call of a report, with the arguments that differ from
    their defaults besides scale, out and workers."""
    args = [repr(scale), f"out={str(out)!r}", f"workers={workers}"]
    if tuple(datasets) != DATASETS:
        args.append(f"datasets={tuple(datasets)!r}")
    if figures is not None:
        args.append(f"figures={tuple(figures)!r}")
    if seeds is not None:
        args.append(f"seeds={seeds}")
    if report_only:
        args.append("report_only=True")
    return f"reproduce({', '.join(args)})"


def _notes(
    scale: str,
    datasets: Sequence[str],
    figures: Sequence[str] | None,
    left_out: Sequence[str] = (),
    seeds: int | None = None,
    stored: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """What a reader of this scale's report should know about what was left out:
    ``left_out`` are data sets asked for whose data could not be had; ``seeds`` the
    seeds of every point when they were set; ``stored`` the (figure, data set) pairs
    drawn from stored records beside the figures asked for."""
    hints = {"fashion-mnist": "apt-get install dataset-fashion-mnist, or --data-dir"}
    by_dataset: dict[str, list[str]] = {}
    for name, dataset in stored:
        by_dataset.setdefault(dataset, []).append(name)
    notes = []
    for dataset in left_out:
        # a data set whose data is missing may still have figures whose runs are stored
        from_records = by_dataset.pop(dataset, [])
        done = (
            f"drawn only from the records of earlier runs: {', '.join(from_records)}"
            if from_records
            else "left out of this reproduction"
        )
        notes.append(
            f"{dataset}: {done}, its data could not be had "
            f"({hints.get(dataset, 'see --data-dir')}); the same command run again once it "
            "can be runs only what is missing"
        )
    also = "; ".join(f"{d}: {', '.join(names)}" for d, names in by_dataset.items())
    if figures is not None:
        notes.append(f"figures limited to {', '.join(figures)}")
    if also:
        notes.append(f"also drawn, from the records of earlier runs: {also}")
    for dataset in datasets:
        planned = plan(scale, dataset)
        left = [f for f in FIGURES if f not in planned]
        if left:
            notes.append(f"{dataset}: not drawn at the {scale} scale: {', '.join(left)}")
    if seeds is not None and scale != "quick":
        notes.append(f"{scale} scale: {seeds} seed{'s' * (seeds > 1)} per point, set for this run")
    if scale == "quick":
        seeds_text = (
            "1–3 seeds (--seeds 3 gives every point three)"
            if seeds is None
            else f"{seeds} seed{'s' * (seeds > 1)}"
        )
        notes += [
            f"quick scale: few sizes, coarse grids, {seeds_text}; fractions and subnet sizes are "
            "optimised over 2–3 values only (an optimum at the edge of its grid is a bound; "
            "Fig 2a and 2c have only 100 units at N = 3000); a claim resting on 2 sizes or "
            "1 seed is an indication",
            "quick scale: Fig 1a without N = 10 000; Fig 3a at N = 300 (paper: 1000); Fig 3d "
            "after 1 epoch (paper: 30); Fig 4 at N ≤ 300 with a 50-unit subnet; Fig 6 at "
            "N = 300; sweeps whose points may fail (η ≥ 0.1, small fractions, high "
            "thresholds) run with a reduced budget of 1–2 epochs",
        ]
    return notes
