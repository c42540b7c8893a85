"""One look for every figure: colours per rule family, markers, axes, saving.

Nothing happens at import time: matplotlib is imported inside the functions, and
figures are built as :class:`matplotlib.figure.Figure` objects rendered by the Agg
canvas, so no pyplot state and no display are involved.

Colours follow the paper: plain backprop black, random synapse mask green, neuron mask
blue, subnet purple, largest updates per layer cyan, per neuron orange.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS: dict[str, str] = {
    "plain": "#000000",
    "synapse-mask": "#2ca02c",
    "neuron-mask": "#1f77b4",
    "subnet": "#9467bd",
    "top-k-layer": "#17becf",
    "top-k-neuron": "#ff7f0e",
    "select-activity": "#8c564b",
    "select-error": "#e377c2",
    "subnet-top-k": "#6a0dad",
    "caching": "#d62728",
    "caching-subnet": "#9467bd",
    "caching-consolidate": "#7f7f7f",
    "window-first": "#8fd8e0",
    "window-last": "#0b6e79",
    "m0": "#000000",
    "m1": "#d62728",
    "samples": "#444444",
    "theory": "#555555",
}
"""Colour of each series kind (and of the two measures M0, M1 where they share axes)."""

MARKERS: dict[str, str] = {
    "plain": "o",
    "synapse-mask": "s",
    "neuron-mask": "^",
    "subnet": "D",
    "top-k-layer": "v",
    "top-k-neuron": "<",
    "select-activity": ">",
    "select-error": "P",
    "subnet-top-k": "*",
    "caching": "X",
    "caching-subnet": "D",
    "caching-consolidate": "h",
    "window-first": "v",
    "window-last": "v",
}

RC: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 150,
    "figure.dpi": 100,
}
"""Matplotlib settings applied while a figure is built and saved."""

PANEL_SIZE = (3.4, 2.8)
"""Width and height of one panel, inches."""


def color(kind: str) -> str:
    """Colour of a series kind (grey for unknown kinds)."""
    return COLORS.get(kind, "#7f7f7f")


def marker(kind: str) -> str:
    """Marker of a series kind."""
    return MARKERS.get(kind, "o")


def rc_context() -> Any:
    """A context manager applying :data:`RC`."""
    import matplotlib as mpl

    return mpl.rc_context(RC)


def new_axes(
    n_panels: int = 1, *, ncols: int | None = None, size: tuple[float, float] = PANEL_SIZE
) -> np.ndarray:
    """A new figure with ``n_panels`` axes in a row (or ``ncols`` columns); returns the axes.

    The figure uses the Agg canvas and touches no global pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = ncols or n_panels
    nrows = -(-n_panels // ncols)
    with rc_context():
        fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return axes[:n_panels]


def axes_for(ax: Any, n_panels: int, **kwargs: Any) -> np.ndarray:
    """The axes to draw into: ``ax`` (one Axes or a sequence) or new ones."""
    if ax is None:
        return new_axes(n_panels, **kwargs)
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if axes.size < n_panels:
        raise ValueError(f"this figure draws {n_panels} panels; got {axes.size} axes")
    return axes


def style_axes(
    ax: Axes,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    xlog: bool = False,
    ylog: bool = False,
) -> None:
    """Labels, log scales and a light grid.

    A log axis whose data span almost nothing (all points equal, up to rounding) is
    widened to a factor of 1.5 each way around them, so that it can be drawn.
    """
    with rc_context():
        if xlog:
            ax.set_xscale("log")
            _widen_narrow_log_range(ax.get_xlim(), ax.set_xlim)
            _log_ticks(ax.xaxis, ax.get_xlim())
        if ylog:
            ax.set_yscale("log")
            _widen_narrow_log_range(ax.get_ylim(), ax.set_ylim)
            _log_ticks(ax.yaxis, ax.get_ylim())
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, loc="left", wrap=True)
        ax.grid(True, which="major", alpha=0.25, linewidth=0.6)


def _widen_narrow_log_range(lim: tuple[float, float], set_lim: Any) -> None:
    lo, hi = sorted(lim)
    if lo > 0 and np.isfinite(hi) and hi / lo < 1.01:
        centre = np.sqrt(lo * hi)
        set_lim(centre / 1.5, centre * 1.5)


def tick_text(value: float) -> str:
    """Tick label of a log axis: ``0.003``, ``300``, ``10⁶``-style powers beyond."""
    if value <= 0 or not np.isfinite(value):
        return ""
    exponent = np.log10(value)
    if 1e-3 <= value < 1e5:
        return f"{value:g}"
    if abs(exponent - round(exponent)) < 1e-9:
        return f"$10^{{{round(exponent)}}}$"
    mantissa = value / 10 ** np.floor(exponent)
    return f"${mantissa:.3g}\\times10^{{{int(np.floor(exponent))}}}$"


def _log_ticks(axis: Any, lim: tuple[float, float]) -> None:
    """Readable ticks on a log axis: 1-2-3-5 steps within short ranges, no minor labels.

    The steps are chosen when the axis is drawn, from its final limits.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    del lim

    class AdaptiveLogLocator(LogLocator):
        def tick_values(self, vmin: float, vmax: float) -> Any:
            lo, hi = sorted((vmin, vmax))
            decades = np.log10(hi / lo) if lo > 0 and hi > 0 else 10.0
            subs: tuple[float, ...] = (1.0,)
            if decades < 0.4:
                subs = tuple(np.arange(1.0, 10.0, 0.5))
            elif decades < 0.6:
                subs = tuple(np.arange(1.0, 10.0))
            elif decades < 1.2:
                subs = (1.0, 2.0, 3.0, 5.0)
            elif decades < 3:
                subs = (1.0, 3.0)
            self.set_params(subs=subs)
            return super().tick_values(vmin, vmax)

    axis.set_major_locator(AdaptiveLogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: tick_text(v)))
    axis.set_minor_formatter(NullFormatter())


def spread(index: int, count: int, width: float = 0.06) -> float:
    """Factor that moves the ``index``-th of ``count`` series on a log x axis a little
    apart from the others (over ``width`` in log space in all), so that series with
    equal values stay visible; 1 for a single series."""
    if count <= 1:
        return 1.0
    return float(np.exp(width * (index / (count - 1) - 0.5)))


def errorbar(
    ax: Axes,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    lo: Sequence[float] | np.ndarray | None = None,
    hi: Sequence[float] | np.ndarray | None = None,
    *,
    kind: str,
    label: str | None = None,
    linestyle: str = "-",
    markerfacecolor: str | None = None,
    **kwargs: Any,
) -> None:
    """Medians joined by a line with their spread (lo to hi) as error bars.

    Non-finite medians are left out (runs that did not reach the criterion).
    """
    xa = np.asarray(x, float)
    ya = np.asarray(y, float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    if not keep.any():
        return
    yerr = None
    if lo is not None and hi is not None:
        la = np.asarray(lo, float)[keep]
        ha = np.asarray(hi, float)[keep]
        yk = ya[keep]
        la = np.where(np.isfinite(la), la, yk)
        ha = np.where(np.isfinite(ha), ha, yk)
        yerr = np.vstack([np.maximum(yk - la, 0), np.maximum(ha - yk, 0)])
    with rc_context():
        ax.errorbar(
            xa[keep],
            ya[keep],
            yerr=yerr,
            color=color(kind),
            marker=marker(kind),
            linestyle=linestyle,
            label=label,
            capsize=2,
            elinewidth=0.8,
            markerfacecolor=markerfacecolor or color(kind),
            **kwargs,
        )


def theory_line(
    ax: Axes,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    kind: str = "theory",
    label: str | None = None,
    linewidth: float = 1.2,
) -> None:
    """A theory or fit curve: dashed, no markers."""
    with rc_context():
        ax.plot(x, y, linestyle="--", color=color(kind), label=label, linewidth=linewidth)


def note(ax: Axes, text: str, *, loc: str = "lower left") -> None:
    """A small grey note inside the axes (gaps, missing runs)."""
    positions = {
        "lower left": (0.02, 0.02, "left", "bottom"),
        "upper left": (0.02, 0.98, "left", "top"),
        "lower right": (0.98, 0.02, "right", "bottom"),
        "upper right": (0.98, 0.98, "right", "top"),
        "center": (0.5, 0.5, "center", "center"),
    }
    x, y, ha, va = positions[loc]
    with rc_context():
        ax.text(
            x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=7, color="#666666", wrap=True
        )


def footnote(axes: Any, notes: Sequence[str], *, created: bool) -> None:
    """Notes (gaps, missing runs) under the figure, or inside the first axes when the
    caller supplied the axes (their figure is not ours to annotate)."""
    if not notes:
        return
    text = "; ".join(notes)
    first = np.atleast_1d(np.asarray(axes, dtype=object)).ravel()[0]
    if created:
        with rc_context():
            first.figure.supxlabel(text, fontsize=6.5, color="#666666", wrap=True)
    else:
        note(first, text, loc="lower left")


def legend(ax: Axes, **kwargs: Any) -> None:
    """A legend when the axes has labelled artists."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        with rc_context():
            ax.legend(**kwargs)


def figure_of(axes: Any) -> Figure:
    """The figure that holds an Axes or a sequence of Axes."""
    first = np.atleast_1d(np.asarray(axes, dtype=object)).ravel()[0]
    return first.figure


def save(fig: Figure, stem: Path | str, *, formats: Iterable[str] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.pdf``; returns the paths written.

    Each file is replaced whole or not at all (:func:`thrifty.data.atomic_write`: a
    temporary file beside it, flushed to disk, then renamed; a file replaced keeps its
    permissions).
    """
    from thrifty.data import atomic_write

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with rc_context():
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt)
            atomic_write(path, buffer.getvalue())
            paths.append(path)
    return paths
