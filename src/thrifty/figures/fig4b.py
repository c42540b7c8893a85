"""Fig 4b: energy against network size with synaptic caching, alone and in a subnet.

M0 and M1 against N (log-log) for plain backprop (black), caching everywhere (red),
caching restricted to a plastic subnet, both components (purple), and the paper's
negative control: transient plasticity everywhere with consolidation only in the subnet
(grey). One threshold θ for all. The paper: with caching alone, M0 (which then counts
only consolidations) is virtually independent of N, while M1 still grows about as plain
backprop's does; within the subnet it no longer grows; coordinating only consolidation
does not save energy.
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
    caching_spec,
    criterion_text,
    param_of,
    prepare,
    select,
    subnet_rule,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {
        "sizes": (20, 40),
        "threshold": 1e-3,
        "units": 10,
        "budget": None,
        "quick_seeds": None,
    },
    "quick": {"sizes": (100, 300), "threshold": 1e-3, "units": 50, "budget": 1.5, "quick_seeds": 1},
    "full": {
        "sizes": (100, 300, 1000, 3000),
        "threshold": 1e-3,
        "units": 100,
        "budget": None,
        "quick_seeds": None,
    },
}
"""Sizes, threshold θ, subnet size, budget (epochs) and seeds per scale."""

KINDS = ("caching", "caching-subnet", "caching-consolidate")
LABELS = {
    "caching": "caching",
    "caching-subnet": "caching in subnet",
    "caching-consolidate": "consolidation only in subnet",
}


def _variants(n: int, threshold: float, units: int) -> dict[str, dict[str, Any]]:
    out = {"caching": {"synapses": caching_spec(threshold)}}
    if units < n:
        out["caching-subnet"] = {
            "synapses": caching_spec(threshold),
            "rules": (subnet_rule(units),),
        }
        out["caching-consolidate"] = {"synapses": caching_spec(threshold, consolidate_units=units)}
    return out


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Plain backprop and the three caching variants at each size."""
    del df
    grid = pick(scale, GRIDS)
    extra = {"budget_epochs": grid["budget"]} if grid["budget"] else {}
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        for n in grid["sizes"]:
            out.append(base(scale, dataset, n_hidden=n, seed=s))
            for fields in _variants(n, grid["threshold"], grid["units"]).values():
                out.append(base(scale, dataset, n_hidden=n, seed=s, **fields, **extra))
    return out


def _kind(row: pd.Series) -> str | None:
    syn = row["synapses"]
    if param_of(syn, "caching", "threshold") is None or row["syn_family"] != "caching(per=synapse)":
        return None
    if row["family"] == "subnet":
        return "caching-subnet"
    if row["family"] == "":
        consolidate = param_of(syn, "caching", "consolidate_units") or 0
        return "caching-consolidate" if consolidate > 0 else "caching"
    return None


def compute(
    df: pd.DataFrame, dataset: str = "mnist", *, threshold: float | None = None
) -> FigureData:
    """Medians per N for each caching variant at one threshold.

    ``threshold`` defaults to the one with the most runs of the subnet variant (else of
    any variant).

    Returns
    -------
    FigureData
        Panels ``"m0"``, ``"m1"``; ``values``: ``threshold``, ``units`` (subnet size).
    """
    data = FigureData("fig4b", dataset)
    table = prepare(df)
    rows = select(table, dataset=dataset, family=lambda f: f in ("", "subnet"), syn_family=None)
    rows = rows[rows["syn_family"] == "caching(per=synapse)"] if not rows.empty else rows
    if not rows.empty:
        rows = rows.assign(
            _kind=[_kind(r) for _, r in rows.iterrows()],
            _theta=rows["synapses"].map(lambda s: param_of(s, "caching", "threshold")),
            _tau=rows["synapses"].map(lambda s: param_of(s, "caching", "tau")),
            _cost=rows["synapses"].map(lambda s: param_of(s, "caching", "cost")),
        )
        rows = rows[rows["_kind"].notna() & (rows["_tau"] == 1000) & (rows["_cost"] == 0.001)]
    if threshold is None and not rows.empty:
        pool = rows[rows["_kind"] == "caching-subnet"]
        pool = pool if not pool.empty else rows
        threshold = float(pool["_theta"].mode().iloc[0])
    data.values["threshold"] = threshold
    if threshold is not None:
        rows = rows[np.isclose(rows["_theta"], threshold)]
    units = None
    if not rows.empty:
        sub = rows[rows["_kind"] == "caching-subnet"]
        if not sub.empty:
            units = param_of(sub["rules"].iloc[0], "subnet", "units")
    data.values["units"] = units
    sizes = sorted(set(rows["n_hidden"])) if not rows.empty else []
    plain = select(table, dataset=dataset)
    plain = plain[plain["n_hidden"].isin(sizes)] if not plain.empty else plain
    for m in MEASURES:
        series = [by_x(plain, "n_hidden", m, label="plain backprop", kind="plain")]
        for kind in KINDS:
            r = rows[rows["_kind"] == kind] if not rows.empty else rows
            label = LABELS[kind] + (f" ({units:g} units)" if units and kind != "caching" else "")
            series.append(by_x(r, "n_hidden", m, label=label, kind=kind))
        data.panels[m] = series
    if not sizes:
        data.notes.append("no caching runs in the records")
    return data


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """M0 and M1 against N for each variant, log-log."""
    axes = style.axes_for(ax, 2)
    theta = data.values.get("threshold")
    with style.rc_context():
        for axis, m in zip(axes, MEASURES, strict=True):
            series = data.panels.get(m, [])
            for i, s in enumerate(series):
                x = s.x * style.spread(i, len(series))  # equal energies stay visible
                style.errorbar(axis, x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            title = None
            if m == "m0":
                title = (
                    f"Fig 4b: caching θ = {theta:g}, {criterion_text(data.dataset)}"
                    if theta
                    else "Fig 4b"
                )
            style.style_axes(
                axis,
                xlabel="hidden units N",
                ylabel=MEASURE_LABELS[m],
                title=title,
                xlog=True,
                ylog=True,
            )
        style.legend(axes[1], loc="best", fontsize=6.5)
        style.footnote(axes[0], data.notes, created=ax is None)
    return axes
