"""Fig 1b: energy of plain backprop against network size, with power-law fits.

M0 (synaptic updates) and M1 (Σ|Δw|) of plain backprop at η = 0.01 against the number
of hidden units N, each normalised to its smallest median so that the minimum is 1, as
in the paper. Dashed lines: power laws ``a·N^b`` fitted in log-log coordinates to the
single runs (all seeds) of the large networks; dotted grey: slope one. The paper finds
M0 sub-linear (larger networks learn a little faster) and M1 ∝ about √N.

The same runs give ``N_min``, the smallest network that reaches the criterion (used by
the counting argument, Fig 2a/2b), Fig 1c and the V1 extrapolation of Fig 5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty import theory
from thrifty.config import RunConfig
from thrifty.figures import style
from thrifty.figures._common import (
    MEASURES,
    FigureData,
    Series,
    by_x,
    criterion_text,
    prepare,
    select,
)
from thrifty.figures.scales import base, grid, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"sizes": (5, 10, 20, 40), "single_seed": (), "seeds": None},
    "quick": {
        "sizes": (10, 20, 30, 50, 100, 300, 1000, 3000),
        "single_seed": (10_000,),
        "seeds": 3,
        "fashion-mnist": {"single_seed": (), "seeds": 2},
    },
    "full": {
        "sizes": (
            10,
            15,
            20,
            25,
            30,
            40,
            50,
            70,
            100,
            200,
            300,
            500,
            1000,
            2000,
            3000,
            5000,
            10_000,
            20_000,
            50_000,
            100_000,
        ),
        "single_seed": (),
        "seeds": None,
    },
}
"""Network sizes per scale; ``single_seed`` sizes run one seed only (expensive); at
``quick``, two seeds and no N = 10 000 on Fashion-MNIST."""

FIT_FROM = 100
"""Fits use networks with N ≥ this (or from the energy minimum when few are that large)."""


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """Plain backprop at η = 0.01 for every size of the scale's grid and every seed."""
    del df
    g = grid(GRIDS, scale, dataset)
    out = [
        base(scale, dataset, n_hidden=n, seed=s)
        for n in g["sizes"]
        for s in seeds(scale, quick=g["seeds"])
    ]
    out += [base(scale, dataset, n_hidden=n, seed=0) for n in g["single_seed"]]
    return out


def plain_runs(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Plain backprop runs of the standard protocol on ``dataset`` (a prepared table)."""
    return select(df, dataset=dataset)


def estimate_n_min(df: pd.DataFrame, dataset: str = "mnist") -> float | None:
    """``N_min``: the smallest N at which at least half the plain-backprop seeds converged.

    ``df`` is the raw records table (or a prepared one). None when no size qualifies.
    """
    rows = plain_runs(df if "family" in df.columns else prepare(df), dataset)
    if rows.empty:
        return None
    return theory.smallest_converging(rows["n_hidden"].to_numpy(), rows["ok"].to_numpy())


def fit_law(rows: pd.DataFrame, column: str, norm: float, start: float) -> theory.PowerLaw | None:
    """Power law of ``column / norm`` against N over the converged runs of ``rows``
    (:func:`plain_runs`) with N ≥ ``start``; None with fewer than two sizes."""
    sel = rows[rows["ok"] & (rows["n_hidden"] >= start)]
    if sel["n_hidden"].nunique() < 2:
        return None
    return theory.fit_power_law(sel["n_hidden"], sel[column] / norm)


def compute(
    df: pd.DataFrame, dataset: str = "mnist", *, fit_from: float | None = None
) -> FigureData:
    """Medians per N of M0 and M1 (normalised to their minimum) and their power laws.

    Parameters
    ----------
    df : DataFrame
        Records table (:func:`thrifty.experiments.load`).
    dataset : str
    fit_from : float, optional
        Smallest N of the fits. Default: :data:`FIT_FROM` when at least three sizes are
        that large, else the size with the least energy.

    Returns
    -------
    FigureData
        Panel ``"energy"``: the normalised M0 and M1 series. ``values``: ``n_min``,
        ``minimum`` (raw smallest median per measure), ``argmin`` (its N),
        ``minimum_keys``, ``fits`` (:class:`~thrifty.theory.PowerLaw` per measure, or
        None), ``fit_from`` (per measure), ``raw`` (unnormalised series).
    """
    data = FigureData("fig1b", dataset)
    rows = plain_runs(prepare(df), dataset)
    data.values["n_min"] = (
        theory.smallest_converging(rows["n_hidden"].to_numpy(), rows["ok"].to_numpy())
        if not rows.empty
        else None
    )
    data.values.update(minimum={}, argmin={}, minimum_keys={}, fits={}, fit_from={}, raw={})
    series: list[Series] = []
    for m in MEASURES:
        raw = by_x(rows, "n_hidden", m, label=m.upper(), kind=m)
        data.values["raw"][m] = raw
        finite = raw.finite
        if not finite.any():
            data.values["fits"][m] = None
            series.append(raw)
            continue
        i = int(np.argmin(np.where(finite, raw.y, np.inf)))
        norm = float(raw.y[i])
        data.values["minimum"][m] = norm
        data.values["argmin"][m] = float(raw.x[i])
        data.values["minimum_keys"][m] = raw.keys[i]
        start = fit_from
        if start is None:
            large = raw.x[finite & (raw.x >= FIT_FROM)]
            start = FIT_FROM if large.size >= 3 else float(raw.x[i])
        data.values["fit_from"][m] = start
        data.values["fits"][m] = fit_law(rows, m, norm, start)
        series.append(raw.scaled(1 / norm))
    data.panels["energy"] = series
    if rows.empty:
        data.notes.append(f"no plain-backprop runs on {dataset}")
    elif data.values["n_min"] is None:
        data.notes.append("no network size reached the criterion: N_min unknown")
    return data


def fit_label(m: str, law: theory.PowerLaw | None) -> str:
    """Legend text of a fit, e.g. ``M1 fit ∝ N^0.52 [0.45, 0.60]``."""
    if law is None:
        return f"{m.upper()}: too few sizes to fit"
    return f"{m.upper()} fit ∝ N^{law.describe()}"


def plot(data: FigureData, ax: Any = None) -> Any:
    """Normalised M0 and M1 against N on log-log axes; fits dashed; slope one dotted."""
    (axis,) = style.axes_for(ax, 1)
    with style.rc_context():
        for s in data.panels.get("energy", []):
            m = s.kind
            style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=m, label=m.upper())
            law = data.values["fits"].get(m)
            if law is not None:
                xs = np.geomspace(law.x_range[0], law.x_range[1], 50)
                style.theory_line(axis, xs, law(xs), kind=m, label=fit_label(m, law))
        drawn = [s for s in data.panels.get("energy", []) if s.finite.any()]
        if drawn:
            xs = np.concatenate([s.drawn()[0] for s in drawn])
            x0, x1 = float(xs.min()), float(xs.max())
            ref = np.geomspace(max(x0, FIT_FROM / 3), x1, 20)
            axis.plot(ref, ref / ref[0], ":", color="#999999", linewidth=1.0, label="slope 1")
        n_min = data.values.get("n_min")
        if n_min:
            axis.axvline(
                n_min, color="#bbbbbb", linewidth=0.8, linestyle="-.", label=f"N_min ≈ {n_min:g}"
            )
        style.style_axes(
            axis,
            xlabel="hidden units N",
            ylabel="energy / its minimum",
            title=f"Fig 1b: plain backprop, {criterion_text(data.dataset)}",
            xlog=True,
            ylog=True,
        )
        style.legend(axis, loc="upper left")
        style.footnote(axis, data.notes, created=ax is None)
    return axis


def headline(data: FigureData) -> dict[str, Any]:
    """The smallest median M0 and M1 of plain backprop over N, with N and keys."""
    out: dict[str, Any] = {}
    for m in MEASURES:
        if m in data.values["minimum"]:
            out[m] = {
                "value": data.values["minimum"][m],
                "n_hidden": data.values["argmin"][m],
                "keys": data.values["minimum_keys"][m],
            }
    return out


def exponent_text(law: theory.PowerLaw | None) -> str:
    """``0.52 [0.45, 0.60]`` or ``n/a``."""
    return law.describe() if law is not None else "n/a"
