"""Fig 6: the savings survive each variant of the model.

At one network size, the energy saving of each rule relative to plain backprop in the
same variant (``M(plain) / M(rule)``, medians over seeds) for: the standard model;
raw inputs (pixels in [0, 1], no mean subtraction, no noise: many inputs are exactly
zero); ReLU instead of leaky ReLU; softmax output with cross-entropy; potentiation-only
cost (only Δw > 0 charged: the same runs as the standard model, other meters). Bars on a
log axis; 1 means no saving. The fractions are fixed (not optimised per variant).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    MEASURES,
    FigureData,
    paired_saving,
    prepare,
    select,
    subnet_rule,
    summarise,
    top_k_rule,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"n": 40, "units": 10, "fraction": 0.1, "quick_seeds": None},
    "quick": {"n": 300, "units": 100, "fraction": 0.1, "quick_seeds": 1},
    "full": {"n": 1000, "units": 100, "fraction": 0.1, "quick_seeds": None},
}
"""Network size, subnet size, top-k fraction and seeds per scale."""

VARIANTS: dict[str, dict[str, str]] = {
    "standard": {},
    "raw inputs": {"inputs": "raw"},
    "ReLU": {"activation": "relu"},
    "softmax + cross-entropy": {"loss": "cross_entropy"},
    "potentiation only": {},
}
"""Variant → config fields that differ from the standard model."""

POTENTIATION = "potentiation only"


def rules_of(units: int, fraction: float) -> dict[str, tuple[str, ...]]:
    """Series kind → rules: top-k per layer, subnet, and top-k within the subnet."""
    return {
        "top-k-layer": (top_k_rule(fraction, "layer"),),
        "subnet": (subnet_rule(units),),
        "subnet-top-k": (subnet_rule(units), top_k_rule(fraction, "layer")),
    }


LABELS = {
    "top-k-layer": "largest updates per layer",
    "subnet": "subnet",
    "subnet-top-k": "largest updates in subnet",
}


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Plain backprop and the three rules in each variant at one size."""
    del df
    grid = pick(scale, GRIDS)
    out = []
    for s in seeds(scale, quick=grid["quick_seeds"]):
        for name, fields in VARIANTS.items():
            if name == POTENTIATION:
                continue
            out.append(base(scale, dataset, n_hidden=grid["n"], seed=s, **fields))
            for rules in rules_of(grid["units"], grid["fraction"]).values():
                out.append(base(scale, dataset, n_hidden=grid["n"], seed=s, rules=rules, **fields))
    return out


def compute(df: pd.DataFrame, dataset: str = "mnist", *, n_hidden: int | None = None) -> FigureData:
    """Savings factor of each rule in each variant, per measure.

    The rules are recognised by family; per family the most common rule string among the
    variant runs at ``n_hidden`` is used (default: the size with the most variant runs).

    Returns
    -------
    FigureData
        No series; ``values``: ``n_hidden``, ``savings[measure][variant][kind]`` (float,
        nan when missing), ``energy[measure][variant][kind]`` (Summary, kind ``plain``
        included), ``rules`` (kind → rule string), ``variants``.
    """
    data = FigureData("fig6", dataset)
    table = prepare(df)
    families = {
        "top-k-layer": "top-k(per=layer)",
        "subnet": "subnet",
        "subnet-top-k": "subnet + top-k(per=layer)",
        "plain": "",
    }
    variant_rows = select(
        table, dataset=dataset, activation=None, loss=None, inputs=None, family=None
    )
    if not variant_rows.empty:
        nonstandard = variant_rows[
            (variant_rows["activation"] != "leaky_relu")
            | (variant_rows["loss"] != "mse")
            | (variant_rows["inputs"] != "centred")
        ]
        if n_hidden is None and not nonstandard.empty:
            n_hidden = int(nonstandard["n_hidden"].mode().iloc[0])
    data.values["n_hidden"] = n_hidden
    data.values["variants"] = list(VARIANTS)
    rules: dict[str, str] = {}
    if n_hidden is not None:
        at_n = variant_rows[variant_rows["n_hidden"] == n_hidden]
        nonstd = at_n[
            (at_n["activation"] != "leaky_relu")
            | (at_n["loss"] != "mse")
            | (at_n["inputs"] != "centred")
        ]
        pool = nonstd if not nonstd.empty else at_n
        for kind, fam in families.items():
            r = pool[pool["family"] == fam]
            if not r.empty:
                rules[kind] = str(r["rules"].mode().iloc[0])
    data.values["rules"] = rules
    savings: dict[str, dict[str, dict[str, float]]] = {}
    energy: dict[str, dict[str, dict[str, Any]]] = {}
    for m in MEASURES:
        savings[m], energy[m] = {}, {}
        for variant, fields in VARIANTS.items():
            column = f"{m}_potentiation" if variant == POTENTIATION else m
            sel = (
                select(
                    table,
                    dataset=dataset,
                    family=None,
                    n_hidden=n_hidden,
                    activation=fields.get("activation", "leaky_relu"),
                    loss=fields.get("loss", "mse"),
                    inputs=fields.get("inputs", "centred"),
                )
                if n_hidden is not None
                else table.iloc[0:0]
            )
            sums = {}
            runs = {kind: sel[sel["rules"] == text] for kind, text in rules.items()}
            for kind, r in runs.items():
                sums[kind] = summarise(r, column) if not r.empty else None
            energy[m][variant] = sums
            plain = runs.get("plain", sel.iloc[0:0])
            savings[m][variant] = {
                kind: paired_saving(plain, runs[kind], column) if kind in runs else math.nan
                for kind in LABELS
            }
    data.values["savings"] = savings
    data.values["energy"] = energy
    if n_hidden is None:
        data.notes.append("no variant runs in the records")
    return data


def keys_of(data: FigureData) -> list[str]:
    """Every record key behind the savings."""
    out: dict[str, None] = {}
    for per_variant in data.values.get("energy", {}).values():
        for sums in per_variant.values():
            for s in sums.values():
                if s is not None:
                    out.update(dict.fromkeys(s.keys))
    return list(out)


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """Grouped bars of the savings factor per variant, one panel per measure (log y)."""
    axes = style.axes_for(ax, 2, size=(3.8, 3.0))
    variants = data.values.get("variants", list(VARIANTS))
    kinds = list(LABELS)
    width = 0.8 / len(kinds)
    with style.rc_context():
        for axis, m in zip(axes, MEASURES, strict=True):
            sav = data.values.get("savings", {}).get(m, {})
            for j, kind in enumerate(kinds):
                ys = np.array([sav.get(v, {}).get(kind, math.nan) for v in variants], float)
                xs = np.arange(len(variants)) + (j - (len(kinds) - 1) / 2) * width
                axis.bar(
                    xs[np.isfinite(ys)],
                    ys[np.isfinite(ys)],
                    width=width,
                    color=style.color(kind),
                    label=LABELS[kind],
                )
            axis.axhline(1.0, color="black", linewidth=0.8)
            axis.set_xticks(np.arange(len(variants)))
            axis.set_xticklabels(variants, rotation=30, ha="right")
            title = None
            if m == "m0":
                title = f"Fig 6: savings at N = {data.values.get('n_hidden')} ({data.dataset})"
            style.style_axes(
                axis, ylabel=f"{m.upper()} saving (plain / rule)", title=title, ylog=True
            )
        style.legend(axes[1], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6.5)
        style.footnote(axes[1], data.notes, created=ax is None)
    return axes
