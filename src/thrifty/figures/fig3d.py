"""Fig 3d: capacity: final test accuracy against the plastic fraction (N = 100).

A small network trained for a fixed number of epochs without early stopping (criterion
1.0, never met): its test accuracy at the end against the fraction of plastic
input→hidden synapses, for a fixed random synapse mask, the largest updates per layer
and per neuron. Fraction 1 is plain backprop. The paper (30 epochs): the fixed mask
loses accuracy as the fraction shrinks, the competitive selections much less.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    FigureData,
    param_of,
    prepare,
    select,
    summarise,
    sweep_series,
    synapse_mask_rule,
    top_k_rule,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"n": 20, "epochs": 1.0, "fractions": (0.1, 0.3), "quick_seeds": None},
    "quick": {"n": 100, "epochs": 1.0, "fractions": (0.03, 0.1, 0.3), "quick_seeds": 1},
    "full": {
        "n": 100,
        "epochs": 30.0,
        "fractions": (0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
        "quick_seeds": None,
    },
}
"""Network size, training epochs, fractions and seeds per scale (the paper: 30 epochs)."""

CRITERION = 1.0
"""Never met: every run trains for its whole budget."""

KINDS = {
    "synapse-mask": (
        "synapse-mask",
        "synapse-mask",
        "hidden",
        lambda p: synapse_mask_rule(p, 1.0),
        "fixed random mask",
    ),
    "top-k-layer": (
        "top-k(per=layer)",
        "top-k",
        "fraction",
        lambda p: top_k_rule(p, "layer"),
        "largest updates per layer",
    ),
    "top-k-neuron": (
        "top-k(per=neuron)",
        "top-k",
        "fraction",
        lambda p: top_k_rule(p, "neuron"),
        "largest updates per neuron",
    ),
}
"""Series kind → (family, rule name, fraction parameter, rule string of p, legend)."""


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Each rule at each fraction, and plain backprop, trained for the scale's epochs."""
    del df
    grid = pick(scale, GRIDS)
    common = {"n_hidden": grid["n"], "criterion": CRITERION, "budget_epochs": grid["epochs"]}
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        out.append(base(scale, dataset, seed=s, **common))
        for _, _, _, rule, _ in KINDS.values():
            for p in grid["fractions"]:
                out.append(base(scale, dataset, seed=s, rules=(rule(p),), **common))
    return out


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Median final test accuracy against the fraction, per rule (plain at fraction 1).

    Returns
    -------
    FigureData
        Panel ``"accuracy"``; ``values``: ``n_hidden``, ``epochs`` (budget of the runs),
        ``plain`` (Summary of plain backprop's test accuracy).
    """
    data = FigureData("fig3d", dataset)
    table = prepare(df)
    rows = select(table, dataset=dataset, family=None, criterion=CRITERION)
    if rows.empty:
        data.notes.append("no capacity runs (criterion 1.0) in the records")
        data.panels["accuracy"] = []
        return data
    n = int(rows["n_hidden"].mode().iloc[0])
    rows = rows[rows["n_hidden"] == n]
    data.values["n_hidden"] = n
    data.values["epochs"] = sorted(set(rows["budget_epochs"].dropna()))
    plain = rows[rows["family"] == ""]
    data.values["plain"] = (
        summarise(plain, "test_accuracy", failures="keep") if not plain.empty else None
    )
    series = []
    for kind, (family, name, pname, _, label) in KINDS.items():
        r = pd.concat([rows[rows["family"] == family], plain])
        s = sweep_series(
            r,
            lambda row, name=name, pname=pname: param_of(row["rules"], name, pname) or 1.0,
            "test_accuracy",
            label=label,
            kind=kind,
            failures="keep",
        )
        series.append(s)
    data.panels["accuracy"] = series
    if len(data.values["epochs"]) > 1:
        data.notes.append(f"runs with different budgets: {data.values['epochs']} epochs")
    return data


def plot(data: FigureData, ax: Any = None) -> Any:
    """Test accuracy (%) against the plastic fraction, log x."""
    (axis,) = style.axes_for(ax, 1)
    with style.rc_context():
        for s in data.panels.get("accuracy", []):
            style.errorbar(axis, s.x, 100 * s.y, 100 * s.lo, 100 * s.hi, kind=s.kind, label=s.label)
        epochs = data.values.get("epochs") or []
        ep = ", ".join(f"{e:g}" for e in epochs)
        ep += " epoch" if epochs == [1.0] else " epochs"
        style.style_axes(
            axis,
            xlabel="plastic fraction p",
            ylabel="final test accuracy (%)",
            title=f"Fig 3d: N = {data.values.get('n_hidden')}, {ep} ({data.dataset})",
            xlog=True,
        )
        style.legend(axis, loc="lower right")
        style.footnote(axis, data.notes, created=ax is None)
    return axis
