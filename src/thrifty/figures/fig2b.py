"""Fig 2b: the theoretically optimal random synapse mask against network size.

From the counting argument (:mod:`thrifty.theory`) with the measured ``N_min`` (Fig 1b): left, the
optimal plastic fractions ``p1`` (input→hidden) and ``p2`` (hidden→output); right, the
number of plastic synapses in each layer and in total, beside all synapses ``794·N``.
Dotted verticals: the regime boundaries ``N_min`` and ``78.4·N_min``. No runs of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty import theory
from thrifty.config import RunConfig
from thrifty.figures import fig1b, style
from thrifty.figures._common import FigureData, prepare


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """The runs of Fig 1b (for ``N_min``)."""
    return fig1b.configs(scale, dataset, df)


def compute(
    df: pd.DataFrame, dataset: str = "mnist", *, n_range: tuple[float, float] = (10, 1e5)
) -> FigureData:
    """The optimal fractions and plastic-synapse counts over ``n_range`` for the measured N_min.

    Returns
    -------
    FigureData
        No series; ``values``: ``n_min``, ``n`` (grid), ``p1``, ``p2``, ``hidden``,
        ``output``, ``total`` (plastic synapses), ``all`` (794·N), ``boundaries``.
    """
    data = FigureData("fig2b", dataset)
    table = prepare(df)
    n_min = fig1b.estimate_n_min(table, dataset) if not table.empty else None
    data.values["n_min"] = n_min
    if n_min is None:
        data.notes.append("N_min unknown (no plain-backprop size reached the criterion)")
        return data
    n = np.geomspace(n_range[0], n_range[1], 200)
    p1, p2 = theory.optimal_fractions(n, n_min)
    hidden, output = theory.plastic_synapses_by_layer(n, n_min)
    ratio = theory.N_INPUTS / theory.N_OUTPUTS
    data.values.update(
        n=n,
        p1=p1,
        p2=p2,
        hidden=hidden,
        output=output,
        total=hidden + output,
        all=theory.synapses_of(n),
        boundaries=(n_min, ratio * n_min),
    )
    return data


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """Fractions (left) and plastic synapses (right) against N; theory dashed."""
    axes = style.axes_for(ax, 2)
    v = data.values
    with style.rc_context():
        if "n" not in v:
            for axis in axes:
                style.note(axis, "; ".join(data.notes) or "nothing to draw", loc="center")
            style.style_axes(axes[0], title="Fig 2b: counting argument")
            return axes
        left, right = axes
        style.theory_line(left, v["n"], v["p1"], kind="synapse-mask", label="p1 (input→hidden)")
        style.theory_line(left, v["n"], v["p2"], kind="neuron-mask", label="p2 (hidden→output)")
        style.theory_line(right, v["n"], v["total"], kind="synapse-mask", label="plastic, total")
        right.plot(
            v["n"], v["hidden"], ":", color=style.color("synapse-mask"), label="input→hidden"
        )
        right.plot(
            v["n"], v["output"], ":", color=style.color("neuron-mask"), label="hidden→output"
        )
        right.plot(
            v["n"],
            v["all"],
            "-",
            color=style.color("plain"),
            linewidth=1.0,
            label="all synapses (794·N)",
        )
        names = ("N = N_min", "N = 78.4·N_min")
        for axis in axes:
            for b, name in zip(v["boundaries"], names, strict=True):
                label = name if axis is right else None
                axis.axvline(b, color="#bbbbbb", linestyle="-.", linewidth=0.8, label=label)
        style.style_axes(
            left,
            xlabel="hidden units N",
            ylabel="plastic fraction",
            title=f"Fig 2b: optimal masks, N_min = {v['n_min']:g} ({data.dataset})",
            xlog=True,
            ylog=True,
        )
        style.style_axes(
            right, xlabel="hidden units N", ylabel="plastic synapses", xlog=True, ylog=True
        )
        style.legend(left, loc="lower left")
        style.legend(right, loc="upper left")
    return axes
