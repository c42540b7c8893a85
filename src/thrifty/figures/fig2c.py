"""Fig 2c: the optimal number of plastic neurons against network size.

For the neuron mask (blue) and, beside it, the subnet (purple): the number of plastic
hidden units that minimised M0 (filled) and M1 (open) at each N, from the runs of
Fig 2a. The grey diagonal is "all units plastic" (plain backprop was the best choice).
The paper: for one measure the optimum is about 50–100 units whatever N; the other
prefers fewer units; the optimal subnet is about 60 and 100 units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import fig2a, style
from thrifty.figures._common import MEASURES, FigureData


def configs(
    scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None, seeds: int | None = None
) -> list[RunConfig]:
    """The runs of Fig 2a (with the same ``seeds``, so both plan the same masks)."""
    return fig2a.configs(scale, dataset, df, seeds)


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """The optimal plastic units per N, kind and measure (from :func:`fig2a.compute`).

    Returns
    -------
    FigureData
        ``values["optimal_units"][kind][measure] = (N array, units array)``, kinds
        ``neuron-mask`` and ``subnet``; ``values["keys"]``: the keys behind Fig 2a.
    """
    base = fig2a.compute(df, dataset)
    data = FigureData("fig2c", dataset, notes=list(base.notes))
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for kind, per_measure in base.values["optimal_units"].items():
        out[kind] = {}
        for m, chosen in per_measure.items():
            pairs = sorted((n, u) for n, u in chosen.items() if u is not None)
            out[kind][m] = (
                np.array([p[0] for p in pairs], float),
                np.array([p[1] for p in pairs], float),
            )
    data.values["optimal_units"] = out
    data.values["candidates"] = base.values.get("candidates", {})
    data.notes += _lower_edge_notes(out, data.values["candidates"])
    data.values["keys"] = base.keys()
    data.panels = {k: v for k, v in base.panels.items() if k in MEASURES}
    return data


def _lower_edge_notes(
    optimal: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    candidates: dict[str, dict[float, list[float]]],
) -> list[str]:
    """A note on optima at the smallest plastic size run at their N (of two or more
    plastic sizes): the true optimum may lie below, so the point is an upper bound."""
    names = {"neuron-mask": "neuron mask", "subnet": "subnet"}
    series_of: dict[str, list[str]] = {}
    for kind, per_measure in optimal.items():
        for m, (ns, units) in per_measure.items():
            at_edge = []
            for n, u in zip(ns, units, strict=True):
                sizes = [c for c in candidates.get(kind, {}).get(float(n), []) if c != n]
                if len(sizes) >= 2 and u == min(sizes):
                    at_edge.append(f"{n:g}")
            if at_edge:
                series_of.setdefault(", ".join(at_edge), []).append(f"{names[kind]} {m.upper()}")
    return [
        f"the smallest size run, an upper bound of the optimum: {', '.join(series)} at N = {sizes}"
        for sizes, series in series_of.items()
    ]


def plot(data: FigureData, ax: Any = None) -> Any:
    """Optimal plastic units against N, log-log; returns the axes."""
    (axis,) = style.axes_for(ax, 1)
    names = {"neuron-mask": "neuron mask", "subnet": "subnet"}
    with style.rc_context():
        xs_all: list[float] = []
        # each series a little apart in x, so that equal ones stay visible
        shifts = iter(style.spread(i, 4, width=0.1) for i in range(4))
        for kind, per_measure in data.values.get("optimal_units", {}).items():
            for m in MEASURES:
                if m not in per_measure:
                    continue
                n, u = per_measure[m]
                if not n.size:
                    continue
                xs_all += list(n)
                filled = m == "m0"
                axis.plot(
                    n * next(shifts, 1.0),
                    u,
                    linestyle="-" if filled else "--",
                    marker=style.marker(kind),
                    color=style.color(kind),
                    markerfacecolor=style.color(kind) if filled else "white",
                    label=f"{names[kind]}, best for {m.upper()}",
                )
        if xs_all:
            lo, hi = min(xs_all), max(xs_all)
            axis.plot([lo, hi], [lo, hi], ":", color="#999999", label="all units plastic")
        else:
            style.note(axis, "; ".join(data.notes) or "no runs", loc="center")
        style.style_axes(
            axis,
            xlabel="hidden units N",
            ylabel="optimal plastic units",
            title=f"Fig 2c: optimal plastic units ({data.dataset})",
            xlog=True,
            ylog=True,
        )
        sizes = sorted(
            {
                u
                for per_n in data.values.get("candidates", {}).values()
                for v in per_n.values()
                for u in v
            }
        )
        if 0 < len(sizes) <= 8:  # the sizes that can be optimal, readable on the axis
            from matplotlib.ticker import NullFormatter

            axis.set_yticks(sizes, [style.tick_text(u) for u in sizes])
            axis.yaxis.set_minor_formatter(NullFormatter())
        style.legend(axis, loc="upper left", fontsize=6.5)
        style.footnote(axis, data.notes, created=ax is None)
    return axis
