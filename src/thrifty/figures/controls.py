"""Controls: restrictions that the paper reports as saving no energy (no figure of its own).

At one network size, each control beside plain backprop: a new random neuron mask on
every sample, one fixed neuron mask per output class, and the extreme learning machine
(input layer frozen, only hidden→output plastic). Bars of the savings
``M(plain) / M(control)`` for M0 and M1 (log axis; 1 means no saving) and of the
learning time relative to plain backprop. The paper (section on random masks): with a
new mask on every sample "learning simply slowed down and masking did not save
energy"; a mask per output class "did not save energy"; the extreme learning machine
"did not save more energy than the methods presented here" and needed a precise tuning
of the input weights' variance. A control that does not reach the criterion has no
saving (its energy counts as infinite) and no bar; the figure names it.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    MEASURES,
    FigureData,
    Summary,
    budget_of_failures,
    failure_text,
    fmt,
    paired_saving,
    prepare,
    select,
    summarise,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"n": 40, "fraction": 0.5, "budget": None, "quick_seeds": None},
    "quick": {"n": 1000, "fraction": 0.3, "budget": 2.0, "quick_seeds": 1},
    "full": {"n": 1000, "fraction": 0.3, "budget": None, "quick_seeds": None},
}
"""Network size, plastic fraction of the two masks, budget (epochs; None: the default)
and seeds, per scale."""

LABELS = {
    "random-neuron-mask": "new random neurons every sample",
    "class-neuron-mask": "one neuron mask per class",
    "frozen-input": "extreme learning machine",
}
"""Control (rule name) → label."""

COLORS = {
    "random-neuron-mask": "#7f7f7f",
    "class-neuron-mask": "#bcbd22",
    "frozen-input": "#8c564b",
}


def rules_of(fraction: float) -> dict[str, tuple[str, ...]]:
    """Control → its rules."""
    return {
        "random-neuron-mask": (f"random-neuron-mask:fraction={fmt(fraction)}",),
        "class-neuron-mask": (f"class-neuron-mask:fraction={fmt(fraction)}",),
        "frozen-input": ("frozen-input",),
    }


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Plain backprop (default budget, shared with Fig 1b) and each control, at one size."""
    del df
    grid = pick(scale, GRIDS)
    extra = {"budget_epochs": grid["budget"]} if grid["budget"] else {}
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        out.append(base(scale, dataset, n_hidden=grid["n"], seed=s))
        for rules in rules_of(grid["fraction"]).values():
            out.append(base(scale, dataset, n_hidden=grid["n"], seed=s, rules=rules, **extra))
    return out


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Savings and learning time of each control against plain backprop at one size.

    The size is the one with the most control runs; per control, the most common rule
    string there.

    Returns
    -------
    FigureData
        No series; ``values``: ``n_hidden``, ``rules`` (control → rule string),
        ``energy[measure][kind]`` (Summary, ``plain`` included; measures M0, M1 and
        ``samples``), ``savings[measure][control]`` (plain / control, nan when either
        did not converge), ``slowdown[control]`` (samples of the control / of plain),
        ``failed`` (control → the least budget of its runs that stopped at it, epochs,
        inf when they all diverged, for controls that did not reach the criterion),
        ``best_method[measure]``: (rule string, Summary) of the least median energy of
        any other rule at this size (plain synapses).
    """
    data = FigureData("controls", dataset)
    table = prepare(df)
    rows = select(table, dataset=dataset, family=lambda f: f in LABELS) if len(table) else table
    n = int(rows["n_hidden"].mode().iloc[0]) if len(rows) else None
    data.values.update(
        n_hidden=n, rules={}, energy={}, savings={}, slowdown={}, failed={}, best_method={}
    )
    if n is None:
        data.notes.append("no control runs in the records")
        return data
    at_n = rows[rows["n_hidden"] == n]
    rules = {f: str(g["rules"].mode().iloc[0]) for f, g in at_n.groupby("family")}
    data.values["rules"] = rules
    runs = {kind: at_n[at_n["rules"] == text] for kind, text in rules.items()}
    plain = select(table, dataset=dataset, n_hidden=n)
    measures = (*MEASURES, "samples")
    energy: dict[str, dict[str, Summary]] = {m: {} for m in measures}
    for m in measures:
        if len(plain):
            energy[m]["plain"] = summarise(plain, m)
        for kind, r in runs.items():
            energy[m][kind] = summarise(r, m)
    data.values["energy"] = energy
    base_e = energy["m0"].get("plain")
    if base_e is None:
        data.notes.append(f"no plain-backprop run at N = {n}")
    for m in measures:
        data.values["savings"][m] = {kind: paired_saving(plain, r, m) for kind, r in runs.items()}
    for kind, r in runs.items():
        data.values["slowdown"][kind] = paired_saving(r, plain, "samples")
        if not math.isfinite(energy["m0"][kind].median):
            data.values["failed"][kind] = budget_of_failures(r)
    # the least energy of the paper's own restrictions at this size, for comparison
    methods = select(table, dataset=dataset, family=lambda f: f != "" and f not in LABELS)
    methods = methods[methods["n_hidden"] == n] if len(methods) else methods
    best: dict[str, tuple[str, Summary]] = {}
    for m in MEASURES:
        sums = {text: summarise(g, m) for text, g in methods.groupby("rules")}
        finite = {t: v for t, v in sums.items() if math.isfinite(v.median)}
        if finite:
            text = min(finite, key=lambda t: finite[t].median)
            best[m] = (text, finite[text])
    data.values["best_method"] = best
    for kind, budget in data.values["failed"].items():
        data.notes.append(f"{LABELS[kind]}: {failure_text(budget)}")
    return data


def keys_of(data: FigureData) -> list[str]:
    """Every record key behind the figure."""
    out: dict[str, None] = {}
    for per_kind in data.values.get("energy", {}).values():
        for s in per_kind.values():
            out.update(dict.fromkeys(s.keys))
    return list(out)


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """Bars of the M0 and M1 savings (log y) and of the learning time, per control."""
    axes = style.axes_for(ax, 3, size=(3.0, 3.0))
    kinds = [k for k in LABELS if k in data.values.get("rules", {})] or list(LABELS)
    xs = np.arange(len(kinds))
    panels = [
        (data.values.get("savings", {}).get(m, {}), f"{m.upper()} saving (plain / control)")
        for m in MEASURES
    ]
    panels.append((data.values.get("slowdown", {}), "samples (control / plain)"))
    with style.rc_context():
        for i, (axis, (values, label)) in enumerate(zip(axes, panels, strict=True)):
            ys = np.array([values.get(k, math.nan) for k in kinds], float)
            shown = np.isfinite(ys)
            axis.bar(  # from 1 (no saving) up or down to the value
                xs[shown],
                ys[shown] - 1.0,
                bottom=1.0,
                width=0.6,
                color=[COLORS[k] for k, s in zip(kinds, shown, strict=True) if s],
            )
            for x, y, kind in zip(xs, ys, kinds, strict=True):
                failed = kind in data.values.get("failed", {})
                if math.isfinite(y) or failed:
                    text = f"{y:.3g}×" if math.isfinite(y) else "no\ncriterion"
                    axis.annotate(
                        text,
                        (x, y if math.isfinite(y) else 1.0),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
            axis.axhline(1.0, color="black", linewidth=0.8)
            axis.set_xticks(xs)
            axis.set_xticklabels([textwrap.fill(LABELS[k], 13) for k in kinds], fontsize=7)
            title = None
            if i == 0:
                title = f"Controls at N = {data.values.get('n_hidden')} ({data.dataset})"
            style.style_axes(axis, ylabel=label, title=title, ylog=True)
            # room above the tallest bar (and below the lowest) for its label
            finite = ys[shown]
            top = max(float(finite.max()) if finite.size else 1.0, 1.0)
            bottom = min(float(finite.min()) if finite.size else 1.0, 1.0)
            axis.set_ylim(bottom / 1.15, top * 1.45)
        style.footnote(axes, data.notes, created=ax is None)
    return axes
