"""Fig 3a: energy against the plastic fraction at one network size (N = 1000).

M0 and M1 against the fraction p for four competitive rules: the largest updates per
neuron and per layer (top-k), and the selection of the hidden units with the largest
activity or the largest back-propagated error. Plain backprop is the dotted horizontal
line. The paper: selecting neurons by activity or by error saves energy, but less than
selecting the largest updates per layer.
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
    criterion_text,
    missed_points,
    neuron_select_rule,
    param_of,
    prepare,
    select,
    summarise,
    sweep_series,
    top_k_rule,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"n": 40, "fractions": (0.1, 0.3), "budget": None, "quick_seeds": None},
    # N = 300 at quick (the paper: 1000): the largest-update rules are the slowest per sample.
    "quick": {"n": 300, "fractions": (0.01, 0.03, 0.1, 0.3), "budget": 2.0, "quick_seeds": 1},
    "full": {
        "n": 1000,
        "fractions": (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
        "budget": None,
        "quick_seeds": None,
    },
}
"""Network size, fractions, budget (epochs) and seeds per scale."""

RULES = {
    "top-k-neuron": (
        "top-k(per=neuron)",
        "top-k",
        lambda p: top_k_rule(p, "neuron"),
        "largest updates per neuron",
    ),
    "top-k-layer": (
        "top-k(per=layer)",
        "top-k",
        lambda p: top_k_rule(p, "layer"),
        "largest updates per layer",
    ),
    "select-activity": (
        "neuron-select(by=activity)",
        "neuron-select",
        lambda p: neuron_select_rule(p, "activity"),
        "units with largest activity",
    ),
    "select-error": (
        "neuron-select(by=error)",
        "neuron-select",
        lambda p: neuron_select_rule(p, "error"),
        "units with largest error",
    ),
}
"""Series kind → (family in the records, rule name, rule string of p, legend)."""


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """The four rules over the fraction grid at one N, plus plain backprop there."""
    del df
    grid = pick(scale, GRIDS)
    extra = {"budget_epochs": grid["budget"]} if grid["budget"] else {}
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        out.append(base(scale, dataset, n_hidden=grid["n"], seed=s))
        for kind, (_, _, rule, _) in RULES.items():
            # Largest updates per layer also tally where the updates land (the inverse
            # Simpson index of Fig 3b): the same runs as Fig 3b's at the same N.
            simpson = {"simpson": True} if kind == "top-k-layer" else {}
            for p in grid["fractions"]:
                out.append(
                    base(
                        scale,
                        dataset,
                        n_hidden=grid["n"],
                        seed=s,
                        rules=(rule(p),),
                        **extra,
                        **simpson,
                    )
                )
    return out


def compute(df: pd.DataFrame, dataset: str = "mnist", *, n_hidden: int | None = None) -> FigureData:
    """Medians of M0 and M1 against p for each rule at ``n_hidden``.

    ``n_hidden`` defaults to the size with the most distinct rule settings (the one
    where all four rules were swept), among equals the one closest to 1000.

    Returns
    -------
    FigureData
        Panels ``"m0"``, ``"m1"``; ``values``: ``n_hidden``, ``plain`` (Summary per
        measure), ``best`` (per kind and measure: (p, median)).
    """
    data = FigureData("fig3a", dataset)
    table = prepare(df)
    families = {v[0] for v in RULES.values()}
    rows = select(table, dataset=dataset, family=lambda f: f in families)
    if n_hidden is None and not rows.empty:
        # The size with the most distinct rule settings (all four rules swept there);
        # among equals the one closest to the paper's 1000.
        counts = rows.groupby("n_hidden")["rules"].nunique()
        n_hidden = int(max(counts.index, key=lambda n: (counts[n], -abs(math.log(n / 1000)))))
    data.values["n_hidden"] = n_hidden
    plain = select(table, dataset=dataset, n_hidden=n_hidden) if n_hidden else table.iloc[0:0]
    data.values["plain"] = {m: summarise(plain, m) for m in MEASURES} if not plain.empty else {}
    data.values["best"] = {}
    for m in MEASURES:
        series = []
        for kind, (family, name, _, label) in RULES.items():
            r = rows[(rows["family"] == family) & (rows["n_hidden"] == n_hidden)]
            s = sweep_series(
                r,
                lambda row, name=name: param_of(row["rules"], name, "fraction"),
                m,
                label=label,
                kind=kind,
            )
            series.append(s)
            if s.finite.any():
                i = int(np.nanargmin(np.where(s.finite, s.y, np.nan)))
                data.values["best"].setdefault(kind, {})[m] = (float(s.x[i]), float(s.y[i]))
        data.panels[m] = series
    for s in data.panels.get("m0", []):
        note = missed_points(s, rows, "p")
        if note:
            data.notes.append(note)
    if n_hidden is None:
        data.notes.append("no runs of the competitive rules")
    return data


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """M0 and M1 against the plastic fraction; plain backprop dotted."""
    axes = style.axes_for(ax, 2)
    with style.rc_context():
        for axis, m in zip(axes, MEASURES, strict=True):
            for s in data.panels.get(m, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            plain = data.values.get("plain", {}).get(m)
            if plain is not None and np.isfinite(plain.median):
                axis.axhline(
                    plain.median,
                    color="black",
                    linestyle=":",
                    linewidth=1.0,
                    label="plain backprop",
                )
            style.style_axes(
                axis,
                xlabel="plastic fraction p",
                ylabel=MEASURE_LABELS[m],
                title=(
                    f"Fig 3a: N = {data.values.get('n_hidden')}, {criterion_text(data.dataset)}"
                    if m == "m0"
                    else None
                ),
                xlog=True,
                ylog=True,
            )
        style.legend(axes[1], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5)
        style.footnote(axes[0], data.notes, created=ax is None)
    return axes
