"""Fig 5: extrapolation of the energy of unrestricted learning to macaque V1.

The power laws of Fig 1b (energy of plain backprop against N, normalised to its minimum)
extended to a network with as many synapses as macaque V1 (about 1.5·10^8 neurons with
300 synapses each, 4.5·10^10 synapses). x: synapses of the network, ``794·N`` (see
:func:`thrifty.theory.hidden_units_for` for the mapping); y: energy relative to plain
backprop's least energy over the sizes measured (the smallest of its medians over N, as
Fig 1b normalises, which may lie above N_min), which is what a network restricted to a
well-sized plastic subnet spends at any size. The restricted runs of other figures,
which may spend less, are not the measure. The shaded band is the 95% confidence band
of the fitted law. The paper quotes about 700× for M1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thrifty import theory
from thrifty.config import RunConfig
from thrifty.figures import fig1b, style
from thrifty.figures._common import MEASURES, FigureData, prepare


def configs(scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None) -> list[RunConfig]:
    """The runs of Fig 1b."""
    return fig1b.configs(scale, dataset, df)


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """The fitted laws of Fig 1b evaluated at V1's size.

    Returns
    -------
    FigureData
        Panel ``"energy"`` (Fig 1b's normalised series); ``values``: ``fits`` (per
        measure), ``extrapolation`` (per measure: :class:`~thrifty.theory.Extrapolation`
        or None), ``v1_synapses``, ``v1_n_hidden``, ``fit_from`` (per measure, the
        smallest N of the fit), ``largest`` (per measure, when the
        fit started below the three largest converged sizes: (their smallest N, the
        Extrapolation of a fit to them alone)).
    """
    base = fig1b.compute(df, dataset)
    data = FigureData("fig5", dataset, panels=dict(base.panels), notes=list(base.notes))
    data.values["fits"] = base.values["fits"]
    data.values["v1_synapses"] = theory.V1_SYNAPSES
    data.values["v1_n_hidden"] = float(theory.hidden_units_for(theory.V1_SYNAPSES))
    data.values["extrapolation"] = {}
    for m in MEASURES:
        law = base.values["fits"].get(m)
        # The series are normalised to their minimum, so the minimum is 1.
        data.values["extrapolation"][m] = theory.extrapolate(law, 1.0) if law is not None else None
    # How much the estimate depends on the sizes fitted: the same from the three
    # largest converged sizes only (the curves steepen with N at small scales).
    data.values["largest"] = {}
    data.values["fit_from"] = dict(base.values["fit_from"])
    rows = None
    for m in MEASURES:
        raw = base.values["raw"].get(m)
        sizes = sorted(raw.x[raw.finite].tolist()) if raw is not None else []
        start = base.values["fit_from"].get(m)
        if len(sizes) >= 4 and start is not None and sizes[-3] > start:
            rows = fig1b.plain_runs(prepare(df), dataset) if rows is None else rows
            law = fig1b.fit_law(rows, m, base.values["minimum"][m], sizes[-3])
            if law is not None:
                data.values["largest"][m] = (sizes[-3], theory.extrapolate(law, 1.0))
    if not any(data.values["extrapolation"].values()):
        data.notes.append("no power-law fit: too few network sizes converged")
    return data


def plot(data: FigureData, ax: Any = None) -> Any:
    """Normalised energy against synapses, measured points and extended fits, V1 marked."""
    (axis,) = style.axes_for(ax, 1, size=(4.2, 3.0))
    v1 = data.values["v1_synapses"]
    with style.rc_context():
        for s in data.panels.get("energy", []):
            m = s.kind
            syn = theory.synapses_of(s.x)
            style.errorbar(axis, syn, s.y, s.lo, s.hi, kind=m, label=f"{m.upper()} measured")
            law = data.values["fits"].get(m)
            ext = data.values["extrapolation"].get(m)
            if law is None or ext is None:
                continue
            n = np.geomspace(law.x_range[0], data.values["v1_n_hidden"] * 1.5, 100)
            style.theory_line(
                axis,
                theory.synapses_of(n),
                law(n),
                kind=m,
                label=f"{m.upper()} ∝ N^{law.exponent:.2f}",
            )
            lo, hi = law.interval(n)
            if np.all(np.isfinite(lo)):
                axis.fill_between(
                    theory.synapses_of(n), lo, hi, color=style.color(m), alpha=0.12, linewidth=0
                )
            axis.plot([v1], [ext.ratio], marker="*", markersize=9, color=style.color(m))
            ci = ext.ratio_ci
            ci_text = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if np.all(np.isfinite(ci)) else ""
            axis.annotate(
                f"{m.upper()}: {ext.ratio:.3g}×{ci_text}",
                (v1, ext.ratio),
                xytext=(-8, 6 if m == "m0" else -12),
                textcoords="offset points",
                ha="right",
                fontsize=7,
                color=style.color(m),
            )
        axis.axvline(v1, color="#999999", linestyle="-.", linewidth=0.8)
        axis.annotate(
            "macaque V1\n4.5·10¹⁰ synapses",
            (v1, 1),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color="#666666",
        )
        style.style_axes(
            axis,
            xlabel="synapses (794·N)",
            ylabel="energy / plain backprop's least median",
            title=f"Fig 5: extrapolation to V1 ({data.dataset})",
            xlog=True,
            ylog=True,
        )
        style.legend(axis, loc="upper left", fontsize=6.5)
        style.footnote(axis, data.notes, created=ax is None)
    return axis
