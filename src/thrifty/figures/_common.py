"""What every figure module shares: reading the records table, medians, optimisation.

The figures compute only from the DataFrame of :func:`thrifty.experiments.load` (one row
per run). This module turns it into medians over seeds with their spread, and picks the
best parameter of a rule per network size.

Conventions
-----------
- A run that did not reach the criterion (status ``budget``, ``diverged`` or
  ``failed``) counts as **infinite** energy and learning time in a median: a point whose
  seeds mostly failed has no finite median and is not drawn. The spread (``lo``, ``hi``)
  is the range of the finite values over seeds.
- Rule strings are compared by meaning, not spelling: ``"top-k:fraction=0.1"`` and
  ``"top-k:per=layer,fraction=0.1"`` are the same rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from thrifty.config import CRITERIA, RunConfig, whole

MEASURES = ("m0", "m1")
"""The two energy measures of the paper."""

MEASURE_LABELS = {
    "m0": "M0: synaptic updates",
    "m1": "M1: Σ|Δw| (weight units)",
    "samples": "samples to criterion",
    "m0_potentiation": "M0, potentiation only",
    "m1_potentiation": "M1, potentiation only (weight units)",
}
"""Axis labels of the measures."""

# Defaults of string parameters, so that spellings with and without them compare equal.
_STRING_DEFAULTS: dict[str, dict[str, str]] = {
    "top-k": {"per": "layer"},
    "neuron-select": {"by": "error"},
    "caching": {"per": "synapse"},
}
_NUMERIC_DEFAULTS: dict[str, dict[str, float]] = {
    "caching": {"tau": 1000.0, "cost": 0.001, "consolidate_units": 0.0},
    "synapse-mask": {"hidden": 1.0, "output": 1.0},
}


# ------------------------------------------------------------------------------ parsing


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def parse_terms(text: str | None) -> list[tuple[str, dict[str, float | str]]]:
    """Parse ``"subnet:units=100 + top-k:fraction=0.05"`` into ``[(name, params), ...]``.

    Numbers become floats; string parameters with a default (``per``, ``by``) are filled
    in. ``""``, ``"plain"`` and ``"backprop"`` give ``[]``.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    out = []
    for raw in str(text).split("+"):
        term = raw.strip()
        if not term:
            continue
        name, _, rest = term.partition(":")
        name = name.strip()
        if name in ("plain", "backprop"):
            continue
        params: dict[str, float | str] = dict(_STRING_DEFAULTS.get(name, {}))
        params.update(_NUMERIC_DEFAULTS.get(name, {}))
        for item in rest.split(","):
            if "=" in item:
                k, _, v = item.partition("=")
                params[k.strip()] = _value(v.strip())
        out.append((name, params))
    return out


def family_of(text: str | None) -> str:
    """The structure of a rule (or synapse) string without its numbers.

    ``"top-k:fraction=0.1,per=neuron"`` → ``"top-k(per=neuron)"``;
    ``"subnet:units=100 + top-k:fraction=0.1"`` → ``"subnet + top-k(per=layer)"``;
    ``""`` → ``""`` (plain backprop); ``"plain"`` → ``""``.
    """
    parts = []
    for name, params in parse_terms(text):
        strings = sorted((k, v) for k, v in params.items() if isinstance(v, str))
        parts.append(name + (f"({','.join(f'{k}={v}' for k, v in strings)})" if strings else ""))
    return " + ".join(parts)


def param_of(text: str | None, name: str, param: str) -> float | None:
    """A numeric parameter of the term ``name`` in a rule string (None when absent)."""
    for n, params in parse_terms(text):
        if n == name and isinstance(params.get(param), float):
            return float(params[param])  # type: ignore[arg-type]
    return None


def fmt(value: float) -> str:
    """Short decimal text of a number for rule strings: ``0.1``, ``0.0003``, ``100``."""
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.6g}"


# --------------------------------------------------------------------------- selection


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A working copy with derived columns.

    Adds ``family`` (rule structure), ``syn_family`` (synapse structure, ``""`` for
    plain), ``ok`` (converged) and float copies of the energy columns; keeps, of runs
    that differ only in their budget or in extra measurements (``simpson``,
    ``alphas``), one: a converged one with the most measurements, else the one with
    the largest budget.
    """
    out = df.copy()
    if out.empty:
        for col in ("family", "syn_family", "ok"):
            out[col] = pd.Series(dtype=object)
        return out
    out["rules"] = out["rules"].fillna("").astype(str)
    out["synapses"] = out["synapses"].fillna("plain").astype(str)
    out["family"] = [family_of(r) for r in out["rules"]]
    out["syn_family"] = [family_of(s) for s in out["synapses"]]
    out["ok"] = out["status"].astype(str) == "converged"
    for col in out.columns:
        if col.startswith(("m0", "m1", "ineff_", "remaining_")) or col in (
            "samples",
            "accuracy",
            "test_accuracy",
            "lr",
            "sigma",
            "criterion",
            "budget_epochs",
            "wall_time_s",
        ):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    if "budget_epochs" in out.columns:
        # Runs that differ only in their budget or in what they measure besides energy
        # (the Simpson tally, extra M_α meters) trained the same way: keep one. Converged
        # twins stopped at the same sample, so the one with the most measurements is
        # kept (then the largest budget); of twins none of which converged, the one
        # that ran longest (then the most measurements). A converged twin beats others.
        extra = ("budget_epochs", *MEASUREMENT_FIELDS)
        ident = [c for c in out.columns if c in RunConfig.__dataclass_fields__ and c not in extra]
        out["_ident"] = ["|".join(t) for t in zip(*(out[c].map(repr) for c in ident), strict=True)]
        measured = [c for c in MEASUREMENT_FIELDS if c in out.columns]
        n_measured = sum((out[c].map(bool).astype(int) for c in measured), start=0)
        budget = out["budget_epochs"].fillna(0.0)
        ok = out["ok"]
        sortable = pd.DataFrame(
            {
                "_ok": ok.astype(int),
                "_first": np.where(ok, n_measured, budget),
                "_second": np.where(ok, budget, n_measured),
                "_ident": out["_ident"],
            },
            index=out.index,
        )
        order = ["_ok", "_first", "_second"]
        keep = sortable.sort_values(order, ascending=False, kind="stable")
        keep = keep.drop_duplicates("_ident").index
        out = out.loc[sorted(keep)].drop(columns="_ident")
    return out


MEASUREMENT_FIELDS = ("simpson", "alphas")
"""Config fields that add measurements without changing the training."""


def ratio_of_medians(a: Summary | None, b: Summary | None) -> float:
    """``a.median / b.median`` (a saving: plain backprop over a rule); nan when either
    is missing or infinite (most seeds did not converge) or ``b``'s is not above 0."""
    if a is None or b is None:
        return math.nan
    if not (math.isfinite(a.median) and math.isfinite(b.median)) or b.median <= 0:
        return math.nan
    return a.median / b.median


def at_common_seeds(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of ``a`` and of ``b`` at the seeds both hold, or both as they are when
    they share none.

    Runs of one seed share their initial weights and sample order whatever their rules,
    so a saving taken over the same seeds compares like with like; over all runs, a
    baseline of three seeds against a rule of one would mix the spread between seeds
    into the saving. When no seed is shared, each keeps all its runs.
    """
    if "seed" not in a.columns or "seed" not in b.columns:
        return a, b
    common = set(a["seed"].dropna()) & set(b["seed"].dropna())
    if not common:
        return a, b
    return a[a["seed"].isin(common)], b[b["seed"].isin(common)]


def paired_saving(baseline: pd.DataFrame, rows: pd.DataFrame, column: str) -> float:
    """:func:`ratio_of_medians` of ``column``, ``baseline`` over ``rows``, each summarised
    at the seeds both hold (:func:`at_common_seeds`); nan when either is empty.

    Where those seeds give no saving (most of one side's runs there missed the
    criterion) the medians over all runs of each side are taken, as when they share
    no seed.
    """
    if baseline.empty or rows.empty:
        return math.nan
    return ratio_of_medians(*(summarise(r, column) for r in paired_runs(baseline, rows, column)))


def paired_runs(
    baseline: pd.DataFrame, rows: pd.DataFrame, column: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of each side that :func:`paired_saving` divides the medians of: those at
    the common seeds, or all of them where those give no saving."""
    paired = at_common_seeds(baseline, rows)
    if math.isfinite(ratio_of_medians(*(summarise(r, column) for r in paired))):
        return paired
    return baseline, rows


def budget_of_failures(rows: pd.DataFrame) -> float:
    """The least budget (epochs) of the runs in ``rows`` that stopped at their budget;
    ``inf`` when every one diverged (no budget would have helped)."""
    stopped = rows[rows["status"] != "diverged"]
    return float(stopped["budget_epochs"].min()) if len(stopped) else math.inf


def failure_text(budget: float) -> str:
    """``"did not reach the criterion within 2 epochs"``, or ``"diverged"`` (``inf``)."""
    if math.isinf(budget):
        return "diverged"
    return f"did not reach the criterion within {epochs_text(budget)}"


def missed_points(series: Series, table: pd.DataFrame, name: str) -> str | None:
    """A note naming the points of ``series`` not drawn because their runs did not
    reach the criterion (``"per neuron: p = 0.01 did not reach the criterion within 2
    epochs"``), with ``name`` for the x value; None when every point is drawn."""
    status = table["status"] if "status" in table else pd.Series("budget", index=table.index)

    def why(keys: Sequence[str]) -> str:
        ended = table[table["key"].isin(keys) & (status != "converged")]
        stopped = ended[ended["status"] != "failed"] if "status" in ended else ended
        if stopped.empty:
            return "did not run (failed: see its records)"
        return failure_text(budget_of_failures(stopped))

    missed = [
        f"{name} = {x:g} {why(keys)}"
        for x, y, keys in zip(series.x, series.y, series.keys, strict=True)
        if not math.isfinite(y)
    ]
    return f"{series.label}: " + "; ".join(missed) if missed else None


def epochs_text(epochs: float) -> str:
    """``"1 epoch"``, ``"1.5 epochs"``."""
    return f"{epochs:g} epoch" + ("" if epochs == 1 else "s")


def _close(a: pd.Series, b: float, rel: float = 1e-6) -> pd.Series:
    return (a - b).abs() <= rel * max(abs(b), 1e-12)


def select(
    df: pd.DataFrame,
    *,
    dataset: str,
    family: str | Callable[[str], bool] | None = "",
    syn_family: str | None = "",
    lr: float | None = 0.01,
    activation: str | None = "leaky_relu",
    loss: str | None = "mse",
    inputs: str | None = "centred",
    criterion: float | None = None,
    sigma: float | None = 0.01,
    n_hidden: int | None = None,
) -> pd.DataFrame:
    """Rows of a :func:`prepare`-d table that match; ``None`` leaves a field free.

    The defaults select the paper's standard protocol: plain backprop, plain synapses,
    η = 0.01, leaky ReLU, MSE, centred inputs, σ = 0.01, the data set's own criterion,
    the default protocol and all training images.
    """
    if df.empty:
        return df
    m = df["dataset"] == dataset
    if "protocol" in df.columns:
        m &= df["protocol"].fillna("default") == "default"
    if "n_train" in df.columns:
        m &= df["n_train"].isna()
    crit = CRITERIA.get(dataset, 0.95) if criterion is None else criterion
    if "criterion" in df.columns:
        m &= _close(df["criterion"].fillna(crit), crit)
    if family is not None:
        m &= df["family"].map(family) if callable(family) else df["family"] == family
    if syn_family is not None:
        m &= df["syn_family"] == syn_family
    if lr is not None:
        m &= _close(df["lr"], lr)
    if sigma is not None and "sigma" in df.columns:
        m &= _close(df["sigma"].fillna(sigma), sigma)
    for name, value in (("activation", activation), ("loss", loss), ("inputs", inputs)):
        if value is not None and name in df.columns:
            m &= df[name] == value
    if n_hidden is not None:
        m &= df["n_hidden"] == n_hidden
    return df[m]


# -------------------------------------------------------------------------- summaries


@dataclass
class Summary:
    """Median over seeds of one measure at one point, with spread and provenance.

    Attributes
    ----------
    median : float
        Median over runs, failures counting as +inf (so ``inf`` when most failed).
    lo, hi : float
        Range of the finite values (nan when none).
    n_ok, n_runs : int
        Converged runs and all runs at this point.
    keys : tuple of str
        Record keys of the runs.
    """

    median: float
    lo: float
    hi: float
    n_ok: int
    n_runs: int
    keys: tuple[str, ...]


def summarise(rows: pd.DataFrame, column: str, *, failures: str = "inf") -> Summary:
    """Median of ``column`` over ``rows`` (seeds); see :class:`Summary`.

    ``failures="inf"`` counts non-converged runs as +inf; ``"keep"`` uses their values
    (accuracies, which a failed run also has).
    """
    values = rows[column].to_numpy(dtype=float) if column in rows else np.full(len(rows), np.nan)
    ok = rows["ok"].to_numpy(dtype=bool) if "ok" in rows else np.ones(len(rows), bool)
    if failures == "inf":
        values = np.where(ok & np.isfinite(values), values, np.inf)
    finite = values[np.isfinite(values)]
    median = float(np.median(values)) if values.size else math.nan
    if failures == "keep" and not finite.size:
        median = math.nan
    elif failures == "keep":
        median = float(np.median(finite))
    return Summary(
        median=median,
        lo=float(finite.min()) if finite.size else math.nan,
        hi=float(finite.max()) if finite.size else math.nan,
        n_ok=int(ok.sum()),
        n_runs=len(rows),
        keys=tuple(str(k) for k in rows["key"]) if "key" in rows else (),
    )


@dataclass
class Series:
    """One line of a figure: a measure against x, medians over seeds.

    Attributes
    ----------
    label : str
        Legend text.
    kind : str
        Style key (colour, marker) in :mod:`thrifty.figures.style`.
    x, y, lo, hi : numpy.ndarray
        Positions, medians (inf or nan where not drawn) and spread.
    n_ok, n_runs : numpy.ndarray of int
        Converged and total runs per point.
    keys : list of tuple of str
        Record keys per point (traceability).
    params : list
        The parameter chosen per point when it was optimised (else None entries).
    """

    label: str
    kind: str
    x: np.ndarray
    y: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_ok: np.ndarray
    n_runs: np.ndarray
    keys: list[tuple[str, ...]] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    @property
    def finite(self) -> np.ndarray:
        """Mask of points with a finite median (drawn)."""
        return np.isfinite(self.y)

    def drawn(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the drawn points."""
        m = self.finite
        return self.x[m], self.y[m]

    def at(self, x: float) -> float:
        """Median at ``x`` (nan when absent)."""
        hits = np.flatnonzero(np.isclose(self.x, x))
        return float(self.y[hits[0]]) if hits.size else math.nan

    def scaled(self, factor: float) -> Series:
        """The same series with y, lo and hi multiplied by ``factor``."""
        return Series(
            self.label,
            self.kind,
            self.x,
            self.y * factor,
            self.lo * factor,
            self.hi * factor,
            self.n_ok,
            self.n_runs,
            self.keys,
            self.params,
        )

    def all_keys(self) -> list[str]:
        """Every record key behind the series."""
        return [k for ks in self.keys for k in ks]


def empty_series(label: str, kind: str) -> Series:
    """A series without points."""
    e = np.array([], float)
    return Series(label, kind, e, e, e, e, np.array([], int), np.array([], int), [], [])


def series_from(
    summaries: Sequence[tuple[float, Summary, Any]], *, label: str, kind: str
) -> Series:
    """A :class:`Series` from ``(x, summary, chosen_param)`` triples, sorted by x."""
    if not summaries:
        return empty_series(label, kind)
    items = sorted(summaries, key=lambda t: t[0])
    return Series(
        label=label,
        kind=kind,
        x=np.array([t[0] for t in items], float),
        y=np.array([t[1].median for t in items], float),
        lo=np.array([t[1].lo for t in items], float),
        hi=np.array([t[1].hi for t in items], float),
        n_ok=np.array([t[1].n_ok for t in items], int),
        n_runs=np.array([t[1].n_runs for t in items], int),
        keys=[t[1].keys for t in items],
        params=[t[2] for t in items],
    )


def by_x(rows: pd.DataFrame, x: str, column: str, *, label: str, kind: str, **kw: Any) -> Series:
    """Median of ``column`` for each value of ``x`` (e.g. per network size)."""
    if rows.empty:
        return empty_series(label, kind)
    out = [(float(v), summarise(g, column, **kw), None) for v, g in rows.groupby(x)]
    return series_from(out, label=label, kind=kind)


def optimised(
    rows: pd.DataFrame,
    column: str,
    param: Callable[[pd.Series], float | None],
    *,
    label: str,
    kind: str,
    x: str = "n_hidden",
    extra: pd.DataFrame | None = None,
    extra_param: Callable[[pd.Series], float | None] | None = None,
) -> Series:
    """Per x, the best parameter of a rule for ``column``: the one with the smallest median.

    Parameters
    ----------
    rows : DataFrame
        Runs of one rule family, several parameter values per x.
    column : str
        The measure to minimise (``"m0"``, ``"m1"``).
    param : callable row -> float
        The rule's parameter of a run (fraction, units, ...).
    extra, extra_param : DataFrame and callable, optional
        Runs that are also candidates (plain backprop, i.e. fraction 1 or all units)
        and their parameter.

    Returns
    -------
    Series
        ``params`` holds the chosen parameter per x (None where nothing converged).
        Only x values at which ``rows`` has runs appear: the extra candidates never
        make a point on their own.
    """
    frames = []
    if not rows.empty:
        frames.append(rows.assign(_param=[param(r) for _, r in rows.iterrows()]))
    if extra is not None and not extra.empty and extra_param is not None:
        frames.append(extra.assign(_param=[extra_param(r) for _, r in extra.iterrows()]))
    if not frames:
        return empty_series(label, kind)
    allrows = pd.concat(frames)
    if not rows.empty:
        allrows = allrows[allrows[x].isin(set(rows[x]))]
    out = []
    for v, group in allrows.groupby(x):
        best: tuple[float, Summary, Any] | None = None
        for p, g in group.groupby("_param"):
            s = summarise(g, column)
            if best is None or s.median < best[1].median:
                best = (float(v), s, float(p))
        assert best is not None
        if not math.isfinite(best[1].median):
            best = (best[0], best[1], None)
        out.append(best)
    return series_from(out, label=label, kind=kind)


def sweep_series(
    rows: pd.DataFrame, param: Callable[[pd.Series], float | None], column: str, **kw: Any
) -> Series:
    """Median of ``column`` against a rule parameter (e.g. the plastic fraction)."""
    if rows.empty:
        return empty_series(kw["label"], kw["kind"])
    frame = rows.assign(_param=[param(r) for _, r in rows.iterrows()])
    return by_x(frame, "_param", column, **kw)


# ------------------------------------------------------------------------------ data


@dataclass
class FigureData:
    """What a figure module's ``compute`` returns.

    Attributes
    ----------
    figure : str
        Figure name, e.g. ``"fig2a"``.
    dataset : str
    panels : dict of str -> list of Series
        The series of each panel (keys are the module's panel names).
    values : dict
        Numbers of the figure beyond its series (fits, N_min, optimal sizes, ...).
    notes : list of str
        Gaps and decisions a reader should know (drawn into the figure, copied into the report).
    """

    figure: str
    dataset: str
    panels: dict[str, list[Series]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        """Every record key the figure was computed from."""
        seen: dict[str, None] = {}
        for series in self.panels.values():
            for s in series:
                for k in s.all_keys():
                    seen[k] = None
        return list(seen)

    @property
    def empty(self) -> bool:
        """True when no panel has a drawn point."""
        return not any(s.finite.any() for ss in self.panels.values() for s in ss)


def criterion_text(dataset: str) -> str:
    """``"95% on mnist"`` style text of a data set's criterion."""
    return f"{CRITERIA.get(dataset, 0.95):.0%} on {dataset}"


def unique_configs(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """Configs without duplicates (same key), in first-seen order."""
    seen: dict[str, RunConfig] = {}
    for c in configs:
        seen.setdefault(c.key(), c)
    return list(seen.values())


MAX_SEEDS = 100
"""The most seeds per point a reproduction takes (the quick scale at 100 seeds plans
14 500 runs before those of its second round; a mistyped larger number would plan
millions before any run)."""


def check_seeds(n_seeds: Any) -> int:
    """``n_seeds`` as a Python int (NumPy's integers too), or a ValueError when it is
    not an integer in [1, MAX_SEEDS]."""
    count = whole(n_seeds)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SEEDS:
        raise ValueError(f"seeds must be an integer in [1, {MAX_SEEDS}], got {n_seeds!r}")
    return count


def with_seeds(configs: Iterable[RunConfig], n_seeds: int) -> list[RunConfig]:
    """Every setting of ``configs`` (a config less its seed) at seeds ``0 … n_seeds − 1``.

    Settings keep their first-seen order, each with its seeds in order; seeds of a
    setting beyond ``n_seeds`` are left out, missing ones are added. A ValueError
    when ``n_seeds`` is not a positive integer.
    """
    check_seeds(n_seeds)
    settings: dict[str, RunConfig] = {}
    for c in configs:
        settings.setdefault(c.setting_key(), c)
    return [dataclasses.replace(c, seed=s) for c in settings.values() for s in range(n_seeds)]


# ------------------------------------------------------------------------ rule strings
# One spelling per rule, so that figures that share runs produce identical configs (and
# so identical keys, which the sweep runs once).


def subnet_rule(units: int) -> str:
    """``subnet:units=<S>``."""
    return f"subnet:units={int(units)}"


def top_k_rule(fraction: float, per: str = "layer") -> str:
    """``top-k:fraction=<p>,per=<layer|neuron>``."""
    return f"top-k:fraction={fmt(fraction)},per={per}"


def neuron_mask_rule(fraction: float) -> str:
    """``neuron-mask:fraction=<p>``."""
    return f"neuron-mask:fraction={fmt(fraction)}"


def neuron_select_rule(fraction: float, by: str) -> str:
    """``neuron-select:fraction=<p>,by=<error|activity>``."""
    return f"neuron-select:fraction={fmt(fraction)},by={by}"


def synapse_mask_rule(hidden: float, output: float = 1.0) -> str:
    """``synapse-mask:hidden=<p1>,output=<p2>``."""
    return f"synapse-mask:hidden={fmt(hidden)},output={fmt(output)}"


def optimal_mask_rule(n_min: float) -> str:
    """``synapse-mask-optimal:n_min=<N_min>``."""
    return f"synapse-mask-optimal:n_min={fmt(n_min)}"


def caching_spec(
    threshold: float, *, tau: float = 1000, cost: float = 0.001, consolidate_units: int = 0
) -> str:
    """``caching:threshold=<θ>,tau=<τ>,cost=<c>[,consolidate_units=<S>]``."""
    spec = f"caching:threshold={fmt(threshold)},tau={fmt(tau)},cost={fmt(cost)}"
    if consolidate_units:
        spec += f",consolidate_units={int(consolidate_units)}"
    return spec
