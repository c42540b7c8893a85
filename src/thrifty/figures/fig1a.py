"""Fig 1a: learning time, M0 and M1 of plain backprop against the learning rate.

Three panels against η (log axes): samples to criterion, M0, M1; one line per network
size (N = 100, 1000, 10 000 in the paper). The paper: M0 (∝ learning time) has an
optimal learning rate, about the same for every N; M1 is smallest at small learning rates
where it no longer depends on η. Learning rates whose runs mostly failed to reach the
criterion are not drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    MEASURE_LABELS,
    FigureData,
    by_x,
    criterion_text,
    epochs_text,
    prepare,
    select,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"sizes": {10: (0.003, 0.01, 0.03, 0.1)}, "fail_from": 1.0, "quick_seeds": None},
    "quick": {
        # Two seeds (η = 0.01 has three from Fig 1b); N = 10 000 is left to the full scale.
        "sizes": dict.fromkeys((100, 1000), (0.003, 0.01, 0.03, 0.05, 0.1, 0.3)),
        "fail_from": 0.1,
        "quick_seeds": {100: 2, 1000: 2},
    },
    "full": {
        "sizes": dict.fromkeys(
            (100, 1000, 10_000), (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
        ),
        "fail_from": 1.0,
        "quick_seeds": None,
    },
}
"""Learning rates per network size and scale."""

SIZE_KINDS = ("m0", "subnet", "neuron-mask", "synapse-mask", "top-k-neuron")
"""Colours of the lines of the successive sizes."""


def budget_for(scale: str, lr: float) -> float | None:
    """Budget in epochs for a learning rate (None: the default).

    ``quick``: 1 epoch from η = 0.1 (these runs do not reach the criterion and would
    spend the whole budget). ``full``: ``5·0.01/η`` epochs below η = 0.01 (at most 100), so
    that slow learning rates can still converge.
    """
    if scale == "quick" and lr >= pick(scale, GRIDS)["fail_from"]:
        return 1.0
    if scale == "full" and lr < 0.01:
        return float(min(100.0, 5.0 * 0.01 / lr))
    return None


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Plain backprop over a grid of learning rates for a few network sizes."""
    del df
    grid = pick(scale, GRIDS)
    out = []
    for n, lrs in grid["sizes"].items():
        quick = (grid["quick_seeds"] or {}).get(n)
        for lr in lrs:
            n_seeds = seeds(scale, quick=quick)
            extra: dict[str, Any] = {}
            budget = budget_for(scale, lr)
            if budget is not None:
                extra["budget_epochs"] = budget
            out += [base(scale, dataset, n_hidden=n, lr=lr, seed=s, **extra) for s in n_seeds]
    return out


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Per network size, medians of samples, M0 and M1 against η.

    Returns
    -------
    FigureData
        Panels ``"samples"``, ``"m0"``, ``"m1"`` with one series per N (sizes with at
        least three learning rates). ``values["best_lr"][measure][N]``: the η with the
        smallest median.
    """
    data = FigureData("fig1a", dataset)
    rows = select(prepare(df), dataset=dataset, lr=None)
    sizes = []
    if not rows.empty:
        counts = rows.groupby("n_hidden")["lr"].nunique()
        sizes = sorted(int(n) for n in counts[counts >= 3].index)
    data.values["best_lr"] = {}
    data.values["sizes"] = sizes
    for name in ("samples", "m0", "m1"):
        series = []
        best: dict[int, float | None] = {}
        for i, n in enumerate(sizes):
            s = by_x(
                rows[rows["n_hidden"] == n],
                "lr",
                name,
                label=f"N = {n}",
                kind=SIZE_KINDS[i % len(SIZE_KINDS)],
            )
            series.append(s)
            best[n] = (
                float(s.x[np.nanargmin(np.where(s.finite, s.y, np.nan))])
                if s.finite.any()
                else None
            )
        data.panels[name] = series
        data.values["best_lr"][name] = best
    for n, s in zip(sizes, data.panels.get("m0", []), strict=False):
        failed = []
        for x in (x for x, y in zip(s.x, s.y, strict=True) if not np.isfinite(y)):
            r = rows[(rows["n_hidden"] == n) & np.isclose(rows["lr"], x)]
            if (r["status"] == "diverged").any():
                failed.append(f"η = {x:g} diverged")
            else:
                budget = r["budget_epochs"].min()
                within = f" within {epochs_text(budget)}" if np.isfinite(budget) else ""
                failed.append(f"η = {x:g} did not reach the criterion{within}")
        if failed:
            data.notes.append(f"N = {n}: " + "; ".join(failed))
    if not sizes:
        data.notes.append("no learning-rate sweep in the records")
    return data


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """Samples, M0 and M1 against η, one line per N; returns the three axes."""
    axes = style.axes_for(ax, 3, ncols=1, size=(3.4, 2.0))
    titles = {
        "samples": f"Fig 1a: plain backprop, {criterion_text(data.dataset)}",
        "m0": None,
        "m1": None,
    }
    with style.rc_context():
        for axis, name in zip(axes, ("samples", "m0", "m1"), strict=True):
            for s in data.panels.get(name, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            style.style_axes(
                axis,
                xlabel="learning rate η" if name == "m1" else None,
                ylabel=MEASURE_LABELS[name],
                title=titles[name],
                xlog=True,
                ylog=True,
            )
        style.legend(axes[0], loc="upper right")
        style.footnote(axes[0], data.notes, created=ax is None)
    return axes
