"""σ: the scale of the initial weights, for a small plastic subnet in a large network.

Beyond the paper. thrifty starts every weight from N(0, σ²) with σ = 0.01, not the 0.03
of the authors' code, for this reason: in a large network with a small plastic subnet,
the fixed units feed random output through their initial weights, and the subnet must
learn to cancel it, so a larger σ costs more; at σ = 0.01 the subnet costs about what a
network of its own size costs alone, as the paper reports. Three panels (M0, M1,
samples to criterion) against σ: the subnet of S units within N, and a network of S
units alone, medians over seeds; σ = 0.01 dotted.

On MNIST, ``python3 -m thrifty train --hidden 10000 --rule subnet:units=100 --sigma S``
(seed 0) took 30 000 samples at σ = 0.01 (M0 2.39·10⁹, M1 52 054), 109 000 at σ = 0.03
(M0 8.67·10⁹, M1 394 669: 3.6× and 7.6×) and 36 000 at σ = 0.003 (M0 2.86·10⁹, M1
58 035); a 100-unit network alone takes 34 000 (M0 2.70·10⁹).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    MEASURE_LABELS,
    MEASURES,
    FigureData,
    at_common_seeds,
    by_x,
    criterion_text,
    param_of,
    prepare,
    select,
    subnet_rule,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"n": 40, "units": 10, "sigmas": (0.01, 0.03), "quick_seeds": None},
    "quick": {"n": 10_000, "units": 100, "sigmas": (0.01, 0.03), "quick_seeds": 1},
    "full": {
        "n": 10_000,
        "units": 100,
        "sigmas": (0.003, 0.01, 0.02, 0.03),
        "quick_seeds": None,
    },
}
"""Network size, subnet size, values of σ and seeds per scale. On MNIST the subnet at
σ = 0.03 took 109 000 samples at N = 10 000 (196 s on a 2-core CPU shared with another
job), hence two values of σ and one seed at ``quick``."""

DEFAULT_SIGMA = float(RunConfig().resolved().sigma or 0.01)
"""thrifty's σ (0.01), which a config that leaves σ out has."""

PANELS = (*MEASURES, "samples")
"""The panels: M0, M1 and samples to criterion."""


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Per σ: the subnet within the large network, and a network of the subnet's size."""
    del df
    grid = pick(scale, GRIDS)
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        for sigma in grid["sigmas"]:
            rules = (subnet_rule(grid["units"]),)
            out.append(base(scale, dataset, n_hidden=grid["n"], rules=rules, sigma=sigma, seed=s))
            out.append(base(scale, dataset, n_hidden=grid["units"], sigma=sigma, seed=s))
    return out


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Medians of M0, M1 and samples against σ, for a subnet and a network of its size.

    The subnet is the (N, S) with the most values of σ (at least two; the largest N of
    equals); the network alone has S units and plain backprop. Both are taken at the
    seeds both were run with (:func:`~thrifty.figures._common.at_common_seeds`).

    Returns
    -------
    FigureData
        Panels ``"m0"``, ``"m1"``, ``"samples"``: series ``subnet`` and ``alone`` (in
        that order) against σ. ``values``: ``n_hidden``, ``units`` (None without such
        runs), ``sigmas``.
    """
    data = FigureData("sigma", dataset)
    table = prepare(df)
    # the standard protocol's σ where a config left it out
    sigmas = table["sigma"] if "sigma" in table.columns else pd.Series(np.nan, index=table.index)
    table["sigma"] = sigmas.fillna(DEFAULT_SIGMA)
    data.values.update(n_hidden=None, units=None, sigmas=[])
    rows = select(table, dataset=dataset, family="subnet", sigma=None) if len(table) else table
    if len(rows):
        units = rows["rules"].map(lambda r: param_of(r, "subnet", "units"))
        rows = rows.assign(_units=units)
        spread = rows.groupby(["n_hidden", "_units"])["sigma"].nunique()
        spread = spread[spread >= 2]
        rows = rows.iloc[0:0] if spread.empty else rows
    if not len(rows):
        data.notes.append("no subnet runs at two or more values of σ in the records")
        for panel in PANELS:
            data.panels[panel] = []
        return data
    n, units = max(spread.index, key=lambda nu: (spread[nu], nu[0]))
    n, units = int(n), int(units)
    sub = rows[(rows["n_hidden"] == n) & (rows["_units"] == units)]
    alone = select(table, dataset=dataset, sigma=None, n_hidden=units)
    alone = alone[alone["sigma"].isin(set(sub["sigma"]))]
    # the network alone is also a point of Fig 1b, with that figure's seeds
    alone, sub = at_common_seeds(alone, sub)
    data.values.update(n_hidden=n, units=units, sigmas=sorted({float(s) for s in sub["sigma"]}))
    labels = {"subnet": f"subnet of {units} in N = {n}", "alone": f"network of {units} alone"}
    for panel in PANELS:
        data.panels[panel] = [
            by_x(sub, "sigma", panel, label=labels["subnet"], kind="subnet"),
            by_x(alone, "sigma", panel, label=labels["alone"], kind="plain"),
        ]
    for s in data.panels["m0"]:
        missed = [f"{x:g}" for x, y in zip(s.x, s.y, strict=True) if not math.isfinite(y)]
        if missed:
            data.notes.append(f"{s.label}: σ = {', '.join(missed)} did not reach the criterion")
    return data


SERIES = ("subnet", "alone")
"""The names of each panel's series, in order."""


def ratio(data: FigureData, panel: str, name: str, sigma: float, over: tuple[str, float]) -> float:
    """Median of series ``name`` at ``sigma`` over that of ``over = (name, σ)`` in
    ``panel``; inf when only the first did not reach the criterion, nan when a point is
    missing or the second did not reach it."""
    series = dict(zip(SERIES, data.panels.get(panel, []), strict=False))
    if name not in series or over[0] not in series:
        return math.nan
    a, b = series[name].at(sigma), series[over[0]].at(over[1])
    return a / b if math.isfinite(b) and b > 0 else math.nan


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """M0, M1 and samples against σ (log-log), the default σ dotted; returns the axes."""
    axes = style.axes_for(ax, 3, size=(3.0, 2.6))
    ylabels = {**MEASURE_LABELS, "samples": "samples to criterion"}
    with style.rc_context():
        for axis, panel in zip(axes, PANELS, strict=True):
            for s in data.panels.get(panel, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            axis.axvline(
                DEFAULT_SIGMA,
                color="black",
                linestyle=":",
                linewidth=0.8,
                label=f"thrifty's σ = {DEFAULT_SIGMA:g}" if panel == PANELS[-1] else None,
            )
            title = None
            if panel == "m0":
                title = f"σ of the initial weights, {criterion_text(data.dataset)}"
            style.style_axes(
                axis,
                xlabel="σ of the initial weights",
                ylabel=ylabels[panel],
                title=title,
                xlog=True,
                ylog=True,
            )
        style.legend(axes[-1], loc="best", fontsize=6.5)
        style.footnote(axes, data.notes, created=ax is None)
    return axes
