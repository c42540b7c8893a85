"""The paper's figures, one module per figure, each computed from the records table.

Every module ``thrifty.figures.figXY`` has

- ``configs(scale, dataset="mnist", df=None) -> list[RunConfig]``: the runs it needs at
  a scale (``"tiny"``, ``"quick"``, ``"full"``). Figures share runs: identical configs
  have identical keys and run once. Given the records so far (``df``), a module may add
  runs that depend on measured values (Fig 2a's synapse masks need ``N_min``); such a
  module also takes ``seeds`` (the seeds set for every point, or None), to know which
  runs it waits for.
- ``compute(df, dataset="mnist") -> FigureData``: medians over seeds with their spread,
  parameters optimised per N where the paper optimises them; only from the DataFrame of
  :func:`thrifty.experiments.load`, never by training.
- ``plot(data, ax=None)``: draws and returns its axes (one Axes, or an array for
  multi-panel figures); new axes on an Agg-canvas figure when ``ax`` is None.

Example
-------
>>> from thrifty.figures import FIGURES, draw  # doctest: +SKIP
>>> data, paths = draw("fig1b", df, "mnist", out_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from thrifty.figures.scales import FIGURES, SCALES, plan

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.config import RunConfig
    from thrifty.figures._common import FigureData

__all__ = ["FIGURES", "SCALES", "all_configs", "draw", "module", "plan"]


def module(name: str) -> ModuleType:
    """The module of a figure, e.g. ``module("fig2a")``; a ValueError names the figures."""
    if name not in FIGURES:
        raise ValueError(f"figure must be one of {', '.join(FIGURES)}; got {name!r}")
    return importlib.import_module(f"thrifty.figures.{name}")


def all_configs(
    scale: str,
    datasets: tuple[str, ...] | list[str] = ("mnist",),
    figures: tuple[str, ...] | list[str] | None = None,
    df: pd.DataFrame | None = None,
    seeds: int | None = None,
) -> list[RunConfig]:
    """The runs of every planned (figure, data set), without duplicates.

    Parameters
    ----------
    scale : {"tiny", "quick", "full"}
    datasets : sequence of str
    figures : sequence of str, optional
        A subset of :data:`FIGURES` (default: all that :func:`plan` lists).
    df : DataFrame, optional
        Records so far, for runs that depend on measured values.
    seeds : int, optional
        Seeds of every point: ``0 … seeds − 1`` (:func:`thrifty.figures._common.with_seeds`);
        default: each figure's own at the scale (see :data:`thrifty.figures.scales.SEEDS`).
    """
    from thrifty.figures._common import unique_configs, with_seeds

    if seeds is not None and df is not None and "seed" in df.columns:
        df = df[df["seed"] < seeds]  # records of other seeds take no part
    out = []
    for dataset in datasets:
        for name in plan(scale, dataset):
            if figures is None or name in figures:
                configs = module(name).configs
                given = {"seeds": seeds} if seeds is not None and _takes_seeds(configs) else {}
                out += configs(scale, dataset, df, **given)
    return unique_configs(out) if seeds is None else with_seeds(out, seeds)


def _takes_seeds(configs: Any) -> bool:
    """Whether a module's ``configs`` takes the ``seeds`` keyword."""
    return "seeds" in inspect.signature(configs).parameters


def draw(
    name: str, df: pd.DataFrame, dataset: str, out_dir: Path | str, **kwargs: Any
) -> tuple[FigureData, list[Path]]:
    """Compute and plot one figure and save it as ``<out_dir>/<name>_<dataset>.png`` and ``.pdf``.

    Returns
    -------
    (FigureData, list of Path)
        The computed data and the files written.
    """
    from thrifty.figures import style

    mod = module(name)
    data = mod.compute(df, dataset, **kwargs)
    axes = mod.plot(data)
    fig = style.figure_of(axes)
    paths = style.save(fig, Path(out_dir) / f"{name}_{dataset}")
    return data, paths
