"""Fig 2a: energy against network size for masks and subnets, each optimised per N.

Two panels (M0, M1) against N, log-log:

- plain backprop (black);
- random synapse mask with the fractions of the counting argument for the measured
  ``N_min`` (green, ``synapse-mask-optimal``), and the counting argument
  (:mod:`thrifty.theory`) as a dashed green line, its constant fitted to the measured
  mask energy at the smallest N;
- neuron mask (blue): a fixed random set of plastic hidden units, uncoordinated; the
  number of plastic units optimised per N and per measure;
- subnet (purple): coordinated plastic subnet, its size optimised per N and per measure.

Inset of the M0 panel: samples to criterion of each, at its M0-optimal parameter. The
paper: masks save energy but the energy still grows with N; the subnet makes it
independent of N.

The synapse-mask runs need ``N_min``, measured by the runs of Fig 1b: :func:`configs`
adds them only when given a records table from which ``N_min`` can be estimated (the
reproduction runs the sweep a second time for them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from thrifty import theory
from thrifty.config import RunConfig
from thrifty.figures import fig1b, style
from thrifty.figures._common import (
    MEASURE_LABELS,
    MEASURES,
    FigureData,
    Series,
    by_x,
    criterion_text,
    empty_series,
    neuron_mask_rule,
    optimal_mask_rule,
    optimised,
    param_of,
    prepare,
    select,
    series_from,
    subnet_rule,
    summarise,
    with_seeds,
)
from thrifty.figures.scales import base, pick, seeds

GRIDS: dict[str, dict[str, Any]] = {
    "tiny": {"sizes": (20, 40), "units": (5, 10), "units_at": {}, "one_seed_from": None},
    "quick": {
        "sizes": (100, 300, 1000, 3000),
        "units": (50, 100, 200),
        "units_at": {3000: (100,)},
        "one_seed_from": 3000,
    },
    "full": {
        "sizes": (30, 50, 100, 300, 1000, 3000, 10_000, 30_000),
        "units": (20, 30, 50, 70, 100, 150, 200, 300, 500, 1000),
        "units_at": {},
        "one_seed_from": None,
    },
}
"""Network sizes and plastic-unit counts per scale (``units_at``: fewer counts at some
sizes). At ``quick``, two seeds below ``one_seed_from`` and one from there (one seed on
Fashion-MNIST)."""


FAMILIES = {
    "plain": "",
    "synapse-mask": "synapse-mask-optimal",
    "neuron-mask": "neuron-mask",
    "subnet": "subnet",
}
"""Series kind → rule family in the records."""

LABELS = {
    "plain": "plain backprop",
    "synapse-mask": "synapse mask (counting argument)",
    "neuron-mask": "neuron mask, optimised",
    "subnet": "subnet, optimised",
}


def _seeds(scale: str, dataset: str, n: int) -> range:
    grid = pick(scale, GRIDS)
    if scale != "quick":
        return seeds(scale)
    if dataset != "mnist" or (grid["one_seed_from"] and n >= grid["one_seed_from"]):
        return seeds(scale, quick=1)
    return seeds(scale, quick=2)


def configs(
    scale: str, dataset: str = "mnist", df: pd.DataFrame | None = None, seeds: int | None = None
) -> list[RunConfig]:
    """Plain, neuron-mask and subnet runs over N, Fig 1b's runs (for ``N_min``), and
    synapse masks once ``N_min`` is known.

    Parameters
    ----------
    df : DataFrame, optional
        Records so far. Once every plain-backprop run of Fig 1b is stored, ``N_min``
        is estimated from the plain runs (:func:`thrifty.figures.fig1b.estimate_n_min`)
        and the runs with the optimal random synapse mask for it are added. (From
        part of Fig 1b's runs, e.g. after an interruption, the estimate could be wrong.)
    seeds : int, optional
        The seeds set for every point (:func:`thrifty.figures.all_configs`): Fig 1b's
        runs are then those at seeds ``0 … seeds − 1``. The runs returned keep this
        module's own seeds; ``all_configs`` sets them.
    """
    grid = pick(scale, GRIDS)
    n_min_runs = fig1b.configs(scale, dataset)
    if seeds is not None:
        n_min_runs = with_seeds(n_min_runs, seeds)
    n_min = None
    planned = {c.key() for c in n_min_runs}
    if df is not None and not df.empty and planned <= set(df["key"]):
        # from these runs alone: other records in the directory (another scale, other
        # seeds) are not part of this plan and would move N_min
        n_min = fig1b.estimate_n_min(df[df["key"].isin(planned)], dataset)
    out = list(n_min_runs)
    for n in grid["sizes"]:
        for s in _seeds(scale, dataset, n):
            out.append(base(scale, dataset, n_hidden=n, seed=s))
            for u in grid["units_at"].get(n, grid["units"]):
                if u < n:
                    out.append(base(scale, dataset, n_hidden=n, seed=s, rules=(subnet_rule(u),)))
                    out.append(
                        base(scale, dataset, n_hidden=n, seed=s, rules=(neuron_mask_rule(u / n),))
                    )
            if n_min is not None and n > n_min:
                rule = optimal_mask_rule(n_min)
                out.append(base(scale, dataset, n_hidden=n, seed=s, rules=(rule,)))
    return out


def plastic_units(row: pd.Series) -> float | None:
    """Plastic hidden units of a neuron-mask or subnet run (all N for plain backprop)."""
    units = param_of(row["rules"], "subnet", "units")
    if units is not None:
        return units
    fraction = param_of(row["rules"], "neuron-mask", "fraction")
    if fraction is not None:
        return float(math.floor(fraction * row["n_hidden"] + 0.5))
    return float(row["n_hidden"]) if row["family"] == "" else None


def _mask_rows(rows: pd.DataFrame, n_min: float | None) -> tuple[pd.DataFrame, float | None]:
    """Synapse-mask runs for the ``N_min`` closest to the measured one."""
    if rows.empty:
        return rows, None
    values = rows["rules"].map(lambda r: param_of(r, "synapse-mask-optimal", "n_min"))
    choices = sorted(set(values.dropna()))
    if not choices:
        return rows.iloc[0:0], None
    target = n_min if n_min is not None else choices[0]
    chosen = min(choices, key=lambda v: abs(math.log(v / target)))
    return rows[values == chosen], chosen


def compute(df: pd.DataFrame, dataset: str = "mnist") -> FigureData:
    """Series per measure for the four kinds, the counting-argument curve and the optima.

    Returns
    -------
    FigureData
        Panels ``"m0"``, ``"m1"`` (series of kinds plain, synapse-mask, neuron-mask,
        subnet) and ``"samples"`` (inset). ``values``: ``n_min`` (measured),
        ``mask_n_min`` (that of the mask runs used), ``theory`` (per measure: x, y,
        ``n_ref``), ``optimal_units`` (per kind and measure: {N: units}),
        ``candidates`` (per kind: {N: the plastic units run there, all N included when
        plain backprop was}).
    """
    data = FigureData("fig2a", dataset)
    table = prepare(df)
    n_min = fig1b.estimate_n_min(table, dataset) if not table.empty else None
    data.values["n_min"] = n_min
    plain = select(table, dataset=dataset)
    neuron = select(table, dataset=dataset, family="neuron-mask")
    subnet = select(table, dataset=dataset, family="subnet")
    unpaired: list[str] = []
    if not neuron.empty and not subnet.empty:
        # Fig 2a runs both at each of its sizes; a subnet run for another figure (the
        # σ figure's, at N = 10 000) is not one of its points
        paired = set(neuron["n_hidden"]) & set(subnet["n_hidden"])
        for kind, rows, other in (
            ("neuron mask", neuron, "subnet"),
            ("subnet", subnet, "neuron mask"),
        ):
            alone = sorted(set(rows["n_hidden"]) - paired)
            if alone:
                sizes_text = ", ".join(f"{n:g}" for n in alone)
                unpaired.append(f"{kind} runs at N = {sizes_text} left out: no {other} there")
        neuron = neuron[neuron["n_hidden"].isin(paired)]
        subnet = subnet[subnet["n_hidden"].isin(paired)]
    masks, mask_n_min = _mask_rows(
        select(table, dataset=dataset, family="synapse-mask-optimal"), n_min
    )
    data.values["mask_n_min"] = mask_n_min
    sizes = sorted(set(neuron["n_hidden"]) | set(subnet["n_hidden"]) | set(masks["n_hidden"]))
    if sizes:
        plain = plain[plain["n_hidden"].between(min(sizes), max(sizes))]
    data.values["theory"] = {}
    data.values["optimal_units"] = {"neuron-mask": {}, "subnet": {}}
    data.values["candidates"] = {
        kind: _candidates(rows, plain)
        for kind, rows in (("neuron-mask", neuron), ("subnet", subnet))
    }
    data.notes += _edge_notes(data.values["candidates"])
    chosen: dict[str, Series] = {}
    for m in MEASURES:
        series = [by_x(plain, "n_hidden", m, label=LABELS["plain"], kind="plain")]
        mask = by_x(masks, "n_hidden", m, label=LABELS["synapse-mask"], kind="synapse-mask")
        series.append(mask)
        for kind, rows in (("neuron-mask", neuron), ("subnet", subnet)):
            s = optimised(
                rows,
                m,
                plastic_units,
                label=LABELS[kind],
                kind=kind,
                extra=plain,
                extra_param=plastic_units,
            )
            series.append(s)
            data.values["optimal_units"][kind][m] = {
                float(x): p for x, p in zip(s.x, s.params, strict=True)
            }
            if m == "m0":
                chosen[kind] = s
        data.panels[m] = series
        data.values["theory"][m] = _theory(mask, mask_n_min)
    data.panels["samples"] = _samples(plain, masks, neuron, subnet, chosen)
    data.notes.extend(unpaired)
    if mask_n_min is None:
        data.notes.append(
            "no synapse-mask runs yet (they need N_min from Fig 1b)"
            if n_min is not None
            else "N_min unknown: no synapse-mask runs"
        )
    return data


def _candidates(rows: pd.DataFrame, plain: pd.DataFrame) -> dict[float, list[float]]:
    """Per N of ``rows``, the plastic units run there: those of ``rows``, and all N when
    plain backprop was run at N (a candidate of the optimisation too)."""
    out: dict[float, list[float]] = {}
    for n, group in rows.groupby("n_hidden"):
        units = {u for u in (plastic_units(r) for _, r in group.iterrows()) if u is not None}
        if (plain["n_hidden"] == n).any():
            units.add(float(n))
        out[float(n)] = sorted(units)
    return out


def _edge_notes(candidates: dict[str, dict[float, list[float]]]) -> list[str]:
    """Notes on the sizes where one plastic size of a rule besides all N was run (as
    the quick scale does at its smallest and largest N): the best there is the better
    of two choices, not an optimum over sizes."""
    names = {"neuron-mask": "neuron mask", "subnet": "subnet"}
    kinds_of: dict[str, list[str]] = {}
    for kind, per_n in candidates.items():
        few = [
            f"{n:g} ({', '.join(f'{u:g}' for u in units if u != n)})"
            for n, units in per_n.items()
            if len([u for u in units if u != n]) == 1
        ]
        if few:
            kinds_of.setdefault(" and ".join(few), []).append(names[kind])
    return [
        f"{' and '.join(kinds)}: one plastic size besides all units run at N = {sizes}; "
        "the best there is the better of two, not an optimum over sizes"
        for sizes, kinds in kinds_of.items()
    ]


def _theory(mask: Series, n_min: float | None) -> dict[str, Any] | None:
    """The counting-argument energy, its constant fitted at the smallest measured N."""
    if n_min is None or not mask.finite.any():
        return None
    x, y = mask.drawn()
    n_ref, e_ref = float(x[0]), float(y[0])
    xs = np.geomspace(min(x.min(), n_min), x.max(), 80)
    ys = theory.mask_energy(xs, n_min, n_ref=n_ref, energy_ref=e_ref)
    return {"x": xs, "y": ys, "n_ref": n_ref, "energy_ref": e_ref, "n_min": n_min}


def _samples(
    plain: pd.DataFrame,
    masks: pd.DataFrame,
    neuron: pd.DataFrame,
    subnet: pd.DataFrame,
    chosen: dict[str, Series],
) -> list[Series]:
    """Samples to criterion per kind; neuron mask and subnet at their M0-optimal size."""
    out = [
        by_x(plain, "n_hidden", "samples", label=LABELS["plain"], kind="plain"),
        by_x(masks, "n_hidden", "samples", label=LABELS["synapse-mask"], kind="synapse-mask"),
    ]
    for kind, rows in (("neuron-mask", neuron), ("subnet", subnet)):
        s = chosen.get(kind)
        if s is None:
            out.append(empty_series(LABELS[kind], kind))
            continue
        both = pd.concat([rows, plain])
        if both.empty:
            out.append(empty_series(LABELS[kind], kind))
            continue
        both = both.assign(_units=[plastic_units(r) for _, r in both.iterrows()])
        items = []
        for n, units in zip(s.x, s.params, strict=True):
            if units is None:
                continue
            g = both[(both["n_hidden"] == n) & (both["_units"] == units)]
            if not g.empty:
                items.append((float(n), summarise(g, "samples"), units))
        out.append(series_from(items, label=LABELS[kind], kind=kind))
    return out


def plot(data: FigureData, ax: Any = None) -> np.ndarray:
    """M0 and M1 against N (log-log) with the counting-argument curve dashed, then samples.

    Three panels: M0, M1 and (the paper's inset) samples to criterion.
    """
    axes = style.axes_for(ax, 3, size=(3.3, 3.0))
    with style.rc_context():
        for axis, m in zip(axes, MEASURES, strict=False):
            for s in data.panels.get(m, []):
                style.errorbar(axis, s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
            th = data.values.get("theory", {}).get(m)
            if th is not None:
                style.theory_line(
                    axis,
                    th["x"],
                    th["y"],
                    kind="synapse-mask",
                    label=f"counting argument, N_min = {th['n_min']:g}",
                )
            style.style_axes(
                axis,
                xlabel="hidden units N",
                ylabel=MEASURE_LABELS[m],
                title=(f"Fig 2a: {criterion_text(data.dataset)}" if m == "m0" else None),
                xlog=True,
                ylog=True,
            )
        for s in data.panels.get("samples", []):
            style.errorbar(axes[2], s.x, s.y, s.lo, s.hi, kind=s.kind, label=s.label)
        style.style_axes(
            axes[2],
            xlabel="hidden units N",
            ylabel="samples to criterion",
            title="learning time (at the M0 optimum)",
            xlog=True,
            ylog=True,
        )
        style.legend(axes[0], loc="upper left", fontsize=6.5)
        style.footnote(axes[1], data.notes, created=ax is None)
    return axes
