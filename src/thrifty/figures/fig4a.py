"""Fig 4a: energy with synaptic caching against the consolidation threshold.

M0 (consolidation events) and M1 (consolidated Σ|s| plus the cost of holding transient
weight) against the threshold θ (τ = 1000 samples, c = 0.001), with plain backprop as the
dotted line. In the M1 panel a thin line shows the transient part alone. The paper:
caching saves a lot, most at high thresholds, until learning fails (thresholds whose
runs did not reach the criterion are not drawn; the figure names them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    MEASURE_LABELS,
    MEASURES,
    FigureData,
    budget_of_failures,
    caching_spec,
    criterion_text,
    failure_text,
    paired_saving,
    param_of,
    prepare,
    select,
    summarise,
    sweep_series,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"sizes": (20,), "thresholds": (1e-3, 1e-2), "budget": None, "quick_seeds": None},
    "quick": {
        "sizes": (100,),
        "thresholds": (1e-4, 1e-3, 3e-3, 1e-2),
        "budget": 1.0,
        "quick_seeds": 1,
    },
    "full": {
        "sizes": (100, 1000),
        "thresholds": (3e-5, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2),
        "budget": None,
        "quick_seeds": None,
    },
}
"""Sizes, thresholds, budget (epochs) and seeds per scale. Caching works on full weight
matrices and is the slowest model, hence one size and one seed at ``quick``."""


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Caching (per synapse) over the threshold grid, and plain backprop, per size."""
    del df
    grid = pick(scale, GRIDS)
    extra = {"budget_epochs": grid["budget"]} if grid["budget"] else {}
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        for n in grid["sizes"]:
            out.append(base(scale, dataset, n_hidden=n, seed=s))
            for th in grid["thresholds"]:
                out.append(
                    base(scale, dataset, n_hidden=n, seed=s, synapses=caching_spec(th), **extra)
                )
    return out


def _threshold(row: pd.Series) -> float | None:
    return param_of(row["synapses"], "caching", "threshold")


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Medians of M0, M1 and the transient part of M1 against θ, per network size.

    Only per-synapse caching with τ = 1000 and c = 0.001 everywhere (no subnet, no
    restricted consolidation) enters.

    Returns
    -------
    FigureData
        Panels ``"m0"``, ``"m1"``, ``"m1_transient"``: one series per N. ``values``:
        ``plain`` (per N: Summary per measure), ``failed`` (per N: thresholds whose
        runs mostly did not converge), ``failed_budget`` (per N: the least budget of
        those runs that stopped at it, epochs; inf when all diverged, None when none
        failed), ``best`` (per N and measure: (θ, median)), ``saving`` (per N and
        measure: plain backprop over caching at the best θ, at the seeds both were run
        with, :func:`~thrifty.figures._common.paired_saving`).
    """
    data = FigureData("fig4a", dataset)
    table = prepare(df)
    rows = select(table, dataset=dataset, syn_family="caching(per=synapse)")
    if not rows.empty:
        params = rows["synapses"]
        keep = (
            (params.map(lambda s: param_of(s, "caching", "consolidate_units")) == 0)
            & (params.map(lambda s: param_of(s, "caching", "tau")) == 1000)
            & (params.map(lambda s: param_of(s, "caching", "cost")) == 0.001)
        )
        rows = rows[keep]
    sizes = []
    if not rows.empty:
        counts = rows.groupby("n_hidden")["synapses"].nunique()
        sizes = sorted(int(n) for n in counts[counts >= 2].index)
    data.values.update(plain={}, failed={}, failed_budget={}, best={}, sizes=sizes)
    for m in (*MEASURES, "m1_transient"):
        series = []
        for i, n in enumerate(sizes):
            r = rows[rows["n_hidden"] == n]
            s = sweep_series(
                r,
                _threshold,
                m,
                label=f"caching, N = {n}",
                kind=("caching", "caching-consolidate")[i % 2],
            )
            series.append(s)
            if m in MEASURES:
                data.values["failed"][n] = [
                    float(x) for x, y in zip(s.x, s.y, strict=True) if not np.isfinite(y)
                ]
                thresholds = r["synapses"].map(lambda t: param_of(t, "caching", "threshold"))
                failing = r[thresholds.isin(data.values["failed"][n])]
                data.values["failed_budget"][n] = (
                    budget_of_failures(failing) if not failing.empty else None
                )
                if s.finite.any():
                    j = int(np.nanargmin(np.where(s.finite, s.y, np.nan)))
                    data.values["best"].setdefault(n, {})[m] = (float(s.x[j]), float(s.y[j]))
        data.panels[m] = series
    data.values["saving"] = {}
    for n in sizes:
        plain = select(table, dataset=dataset, n_hidden=n)
        if not plain.empty:
            data.values["plain"][n] = {m: summarise(plain, m) for m in MEASURES}
            at_n = rows[rows["n_hidden"] == n]
            thresholds = at_n["synapses"].map(lambda t: param_of(t, "caching", "threshold"))
            data.values["saving"][n] = {
                m: paired_saving(plain, at_n[thresholds == theta], m)
                for m, (theta, _) in data.values["best"].get(n, {}).items()
            }
    for n, failed in data.values["failed"].items():
        budget = data.values["failed_budget"].get(n)
        if failed and budget is not None:
            thetas = ", ".join(f"{t:g}" for t in failed)
            data.notes.append(f"N = {n}: θ = {thetas} {failure_text(budget)}")
    if not sizes:
        data.notes.append("no caching runs in the records")
    return data


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """M0 and M1 against θ (log-log); plain backprop dotted; transient part thin."""
    axes = style.axes_for(ax, 2)
    with style.rc_context():
        for axis, m in zip(axes, MEASURES, strict=True):
            for s in data.panels.get(m, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            if m == "m1":
                for s in data.panels.get("m1_transient", []):
                    x, y = s.drawn()
                    axis.plot(
                        x,
                        y,
                        linewidth=0.8,
                        color=style.color(s.kind),
                        alpha=0.7,
                        label=f"transient part, {s.label.split(', ')[-1]}",
                    )
            for n, plain in data.values.get("plain", {}).items():
                if np.isfinite(plain[m].median):
                    axis.axhline(
                        plain[m].median,
                        color="black",
                        linestyle=":",
                        linewidth=1.0,
                        label=f"plain backprop, N = {n}",
                    )
            style.style_axes(
                axis,
                xlabel="consolidation threshold θ (weight units)",
                ylabel=MEASURE_LABELS[m],
                title=f"Fig 4a: synaptic caching, {criterion_text(data.dataset)}"
                if m == "m0"
                else None,
                xlog=True,
                ylog=True,
            )
        style.legend(axes[1], loc="best", fontsize=6.5)
        style.footnote(axes, data.notes, created=ax is None)
    return axes
