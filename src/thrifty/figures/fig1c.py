"""Fig 1c: learning time and update size of plain backprop against network size.

Top: samples to criterion against N (the paper: large networks learn somewhat faster).
Bottom: mean size of one synaptic update, ``M1 / M0`` (the paper: smaller in large
networks). Both from the plain-backprop runs of Fig 1b; dashed: power-law fits over the
networks of the Fig 1b fit range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty import theory
from thrifty.config import RunConfig
from thrifty.figures import fig1b, style
from thrifty.figures._common import FigureData, by_x, criterion_text, prepare


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """The runs of Fig 1b."""
    return fig1b.configs(scale, dataset, df)


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Median samples to criterion and mean |Δw| per update against N, with fits.

    Returns
    -------
    FigureData
        Panels ``"samples"`` and ``"update"``; ``values["fits"]`` maps both to a
        :class:`~thrifty.theory.PowerLaw` (or None).
    """
    data = FigureData("fig1c", dataset)
    rows = fig1b.plain_runs(prepare(df), dataset)
    if not rows.empty:
        rows = rows.assign(update=rows["m1"] / rows["m0"].where(rows["m0"] > 0))
    data.panels["samples"] = [by_x(rows, "n_hidden", "samples", label="samples", kind="samples")]
    data.panels["update"] = [by_x(rows, "n_hidden", "update", label="mean |Δw|", kind="m1")]
    data.values["fits"] = {}
    for name in ("samples", "update"):
        sel = rows[rows["ok"] & (rows["n_hidden"] >= fig1b.FIT_FROM)] if not rows.empty else rows
        if sel.empty or sel["n_hidden"].nunique() < 3:
            sel = rows[rows["ok"]] if not rows.empty else rows
        fit = None
        if not sel.empty and sel["n_hidden"].nunique() >= 2:
            fit = theory.fit_power_law(sel["n_hidden"], sel[name])
        data.values["fits"][name] = fit
    if rows.empty:
        data.notes.append(f"no plain-backprop runs on {dataset}")
    return data


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """Two panels (samples, mean |Δw|) against N, log-log; returns both axes."""
    axes = style.axes_for(ax, 2, ncols=1, size=(3.4, 2.2))
    labels = {
        "samples": ("samples to criterion", "Fig 1c: learning time"),
        "update": ("mean |Δw| per update", "update size (weight units)"),
    }
    with style.rc_context():
        for axis, name in zip(axes, ("samples", "update"), strict=True):
            for s in data.panels.get(name, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label="median over seeds")
            law = data.values.get("fits", {}).get(name)
            if law is not None:
                xs = np.geomspace(law.x_range[0], law.x_range[1], 50)
                style.theory_line(axis, xs, law(xs), kind="theory", label=f"∝ N^{law.describe()}")
            ylabel, title = labels[name]
            style.style_axes(
                axis,
                xlabel="hidden units N",
                ylabel=ylabel,
                title=title + (f", {criterion_text(data.dataset)}" if name == "samples" else ""),
                xlog=True,
                ylog=True,
            )
            style.legend(axis, loc="upper right")
        style.footnote(axes[0], data.notes, created=ax is None)
    return axes
