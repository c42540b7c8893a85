"""Fig 3b: energy against network size for the largest-update rules, optimised per N.

M0 and M1 against N (log-log) for plain backprop (black), the largest updates per layer
(cyan) and per neuron (orange), and the largest updates within a subnet (purple), the
fraction p chosen per N and per measure among the runs (plain backprop, p = 1, is a
candidate too). The paper: large M0 savings, small M1 savings; within the subnet the
energy no longer grows with N.

The paper also reports the inverse Simpson index D of where the updates land, at the
start and end of training: far above the p·size synapses a fixed mask would use. The
top-k-per-layer runs tally it (``simpson=True``); a third panel shows ``D / synapses``
in the first and last window of training against p, beside ``p`` (a fixed mask) and 1
(every synapse). Without those columns the figure says that it is missing.
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
    by_x,
    criterion_text,
    optimised,
    param_of,
    prepare,
    select,
    subnet_rule,
    sweep_series,
    top_k_rule,
)
from thrifty.figures.scales import base, seeds
from thrifty.figures.scales import grid as grid_of

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {
        "sizes": (20, 40),
        "fractions": (0.1, 0.3),
        "fractions_at": {},
        "units": 10,
        "budget": None,
        "quick_seeds": None,
    },
    "quick": {
        "sizes": (100, 300, 1000),
        "fractions": (0.03, 0.1, 0.3),
        "fractions_at": {1000: (0.03, 0.1)},
        "units": 100,
        "budget": 2.0,
        "quick_seeds": 1,
        "fashion-mnist": {"sizes": (100, 300)},
    },
    "full": {
        "sizes": (100, 300, 1000, 3000, 10_000),
        "fractions": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
        "fractions_at": {},
        "units": 100,
        "budget": None,
        "quick_seeds": None,
    },
}
"""Sizes, fractions (``fractions_at``: fewer at some sizes), subnet size, budget (epochs)
and seeds per scale."""


KINDS = {
    "top-k-layer": ("top-k(per=layer)", "largest updates per layer"),
    "top-k-neuron": ("top-k(per=neuron)", "largest updates per neuron"),
    "subnet-top-k": ("subnet + top-k(per=layer)", "largest updates in subnet"),
}
"""Series kind → (family in the records, legend)."""

SIMPSON = ("simpson_start", "simpson_end")
"""Columns of the inverse Simpson index, if the records have them."""


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Top-k per layer and per neuron, and top-k within a subnet, over N and p."""
    del df
    grid = grid_of(GRIDS, scale, dataset)
    extra = {"budget_epochs": grid["budget"]} if grid["budget"] else {}
    units = grid["units"]
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        for n in grid["sizes"]:
            out.append(base(scale, dataset, n_hidden=n, seed=s))
            if units < n:
                out.append(base(scale, dataset, n_hidden=n, seed=s, rules=(subnet_rule(units),)))
            for p in grid["fractions_at"].get(n, grid["fractions"]):
                for per in ("layer", "neuron"):
                    # top-k per layer also records where its updates land (Simpson index)
                    simpson = {"simpson": True} if per == "layer" else {}
                    rules = (top_k_rule(p, per),)
                    out.append(
                        base(scale, dataset, n_hidden=n, seed=s, rules=rules, **extra, **simpson)
                    )
                if units < n:
                    rules = (subnet_rule(units), top_k_rule(p, "layer"))
                    out.append(base(scale, dataset, n_hidden=n, seed=s, rules=rules, **extra))
    return out


def _fraction(row: pd.Series) -> float | None:
    p = param_of(row["rules"], "top-k", "fraction")
    return 1.0 if p is None else p


def compute(df: pd.DataFrame, dataset: str = "mnist", *, units: int | None = None) -> FigureData:
    """Per N, the best fraction of each rule for each measure.

    Parameters
    ----------
    units : int, optional
        Subnet size of the "within the subnet" series (default: the most common one).

    Returns
    -------
    FigureData
        Panels ``"m0"``, ``"m1"`` (and ``"simpson"`` when the records hold the index);
        ``values["best_fraction"][kind][measure] = {N: p}``; ``values["units"]``;
        ``values["simpson"]`` (N, fractions, ``D / (p·synapses)`` at start and end).
    """
    data = FigureData("fig3b", dataset)
    table = prepare(df)
    plain = select(table, dataset=dataset)
    combo = select(table, dataset=dataset, family=KINDS["subnet-top-k"][0])
    if units is None and not combo.empty:
        units = int(combo["rules"].map(lambda r: param_of(r, "subnet", "units")).mode().iloc[0])
    data.values["units"] = units
    rows = {
        kind: select(table, dataset=dataset, family=family) for kind, (family, _) in KINDS.items()
    }
    if units is not None:
        rows["subnet-top-k"] = combo[
            combo["rules"].map(lambda r: param_of(r, "subnet", "units")) == units
        ]
        alone = select(table, dataset=dataset, family="subnet")
        alone = alone[alone["rules"].map(lambda r: param_of(r, "subnet", "units")) == units]
    else:
        alone = table.iloc[0:0]
    sizes = sorted(set().union(*(set(r["n_hidden"]) for r in rows.values())))
    if sizes:
        plain = plain[plain["n_hidden"].isin(sizes)]
    data.values["best_fraction"] = {}
    for m in MEASURES:
        series = [by_x(plain, "n_hidden", m, label="plain backprop", kind="plain")]
        for kind, (_, label) in KINDS.items():
            extra = alone if kind == "subnet-top-k" else plain
            if kind == "subnet-top-k" and units is not None:
                label = f"{label} ({units} units)"
            s = optimised(
                rows[kind], m, _fraction, label=label, kind=kind, extra=extra, extra_param=_fraction
            )
            series.append(s)
            data.values["best_fraction"].setdefault(kind, {})[m] = {
                float(x): p for x, p in zip(s.x, s.params, strict=True)
            }
        data.panels[m] = series
    _simpson(data, rows["top-k-layer"])
    return data


def _simpson(data: FigureData, topk: pd.DataFrame) -> None:
    """The inverse Simpson index D of the top-k-per-layer runs, relative to the layer.

    At the size with the most fractions tallied (the largest among equals): the median
    over seeds of ``D / synapses`` in the first and the last window of training, against
    the fraction p. A fixed mask would give ``D / synapses = p``; updates spread over the
    whole layer give 1.
    """
    have = all(c in topk.columns for c in SIMPSON) and not topk.empty
    if have:
        topk = topk[topk["simpson_start"].notna() & topk["simpson_end"].notna()]
        have = not topk.empty
    if not have:
        data.notes.append("inverse Simpson index not drawn: the records do not hold it")
        return
    size = (
        topk["n_synapses_hidden"].astype(float)
        if "n_synapses_hidden" in topk.columns and topk["n_synapses_hidden"].notna().all()
        else topk["n_hidden"].astype(float) * 785
    )
    topk = topk.assign(
        _start=topk["simpson_start"].astype(float) / size,
        _end=topk["simpson_end"].astype(float) / size,
    )
    counts = (
        topk.assign(_p=[_fraction(r) for _, r in topk.iterrows()])
        .groupby("n_hidden")["_p"]
        .nunique()
    )
    n = int(max(counts.index, key=lambda k: (counts[k], k)))
    at_n = topk[topk["n_hidden"] == n]
    data.panels["simpson"] = [
        sweep_series(
            at_n, _fraction, "_start", label="first window", kind="window-first", failures="keep"
        ),
        sweep_series(
            at_n, _fraction, "_end", label="last window", kind="window-last", failures="keep"
        ),
    ]
    start, end = data.panels["simpson"]
    data.values["simpson"] = {
        "n_hidden": n,
        "fraction": start.x,
        "start_over_p": start.y / start.x,
        "end_over_p": end.y / end.x,
        "keys": start.all_keys(),
    }


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """M0 and M1 against N for each rule at its best fraction (and the Simpson index if any)."""
    n_panels = 3 if "simpson" in data.panels else 2
    axes = style.axes_for(ax, n_panels)
    with style.rc_context():
        for axis, m in zip(axes, MEASURES, strict=False):
            for s in data.panels.get(m, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            style.style_axes(
                axis,
                xlabel="hidden units N",
                ylabel=MEASURE_LABELS[m],
                title=(
                    f"Fig 3b: largest updates, fraction optimised per N, "
                    f"{criterion_text(data.dataset)}"
                    if m == "m0"
                    else None
                ),
                xlog=True,
                ylog=True,
            )
        style.legend(axes[0], loc="best", fontsize=6.5)
        if n_panels == 3:
            for s in data.panels["simpson"]:
                style.errorbar(axes[2], s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            ps = np.geomspace(
                min(s.x.min() for s in data.panels["simpson"]) / 1.3,
                max(s.x.max() for s in data.panels["simpson"]) * 1.3,
                20,
            )
            axes[2].plot(ps, ps, ":", color="#999999", label="fixed mask (D = p·size)")
            axes[2].axhline(1.0, color="#999999", linewidth=0.8, label="all synapses")
            style.style_axes(
                axes[2],
                xlabel="plastic fraction p",
                ylabel="inverse Simpson index D / synapses",
                title=f"where top-k updates land, N = {data.values['simpson']['n_hidden']}",
                xlog=True,
                ylog=True,
            )
            style.legend(axes[2], loc="lower right", fontsize=6.5)
        style.footnote(axes[1], data.notes, created=ax is None)
    return axes
