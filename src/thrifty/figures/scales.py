"""The three scales of a reproduction and which figures each draws.

- ``tiny``: for tests; a handful of very short runs, one seed. Meant for
  ``dataset="synthetic"``.
- ``quick``: the whole set in about 11–14 minutes on a 2-core CPU with 2 workers: few
  sizes, coarse grids, 3 seeds where runs are cheap and fewer where they are not,
  reduced budgets for sweeps whose points are expected to fail.
- ``full``: the paper's scale: N up to 10^5, 5 seeds, fine grids, full budgets.

Each figure module keeps its own grids per scale; this module holds what they share.
``reproduce(..., seeds=N)`` (``thrifty reproduce --seeds N``) replaces every figure's
seeds with ``0 … N − 1`` (:func:`thrifty.figures._common.with_seeds`).
"""

from __future__ import annotations

from typing import Any

from thrifty.config import DATASETS, RunConfig

SCALES = ("tiny", "quick", "full")
"""The known scales."""

FIGURES = (
    "fig1a",
    "fig1b",
    "fig1c",
    "fig2a",
    "fig2b",
    "fig2c",
    "controls",
    "fig3a",
    "fig3b",
    "fig3d",
    "fig4a",
    "fig4b",
    "fig5",
    "fig6",
    "sigma",
)
"""Every figure, in the paper's order (Fig 3c is a diagram, not data); ``controls``
holds the negative results that the paper states in the text of Fig 2's section, and
``sigma`` (beyond the paper) the cost of the initial weights' scale for a subnet."""

SEEDS = {"tiny": 1, "quick": 3, "full": 5}
"""Seeds of a cheap point at each scale (expensive points may use fewer at ``quick``)."""

# Which figures are drawn for a data set other than MNIST, per scale. Fig 1c, 2b, 2c and
# 5 need no runs of their own beyond those of Fig 1b and 2a.
_SECOND_DATASET = {
    "tiny": FIGURES,
    "quick": ("fig1b", "fig1c", "fig2a", "fig2b", "fig2c", "fig3b", "fig5"),
    "full": FIGURES,
}


def check_scale(scale: str) -> str:
    """``scale`` itself, or a ValueError naming the allowed values."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    return scale


def seeds(scale: str, *, quick: int | None = None) -> range:
    """Seeds of a point: ``SEEDS[scale]``, or ``quick`` of them at the quick scale."""
    check_scale(scale)
    if scale == "quick" and quick is not None:
        return range(quick)
    return range(SEEDS[scale])


def plan(scale: str, dataset: str) -> tuple[str, ...]:
    """The figures drawn for ``dataset`` at ``scale``: all on MNIST (and synthetic data)."""
    check_scale(scale)
    if dataset in ("mnist", "synthetic"):
        return FIGURES
    return _SECOND_DATASET[scale]


def base(scale: str, dataset: str, **fields: Any) -> RunConfig:
    """A config of the standard protocol; ``tiny`` runs get a 2-epoch budget."""
    check_scale(scale)
    if scale == "tiny":
        fields.setdefault("budget_epochs", 2.0)
    return RunConfig(dataset=dataset, **fields)


def pick(scale: str, grids: dict[str, Any]) -> Any:
    """The entry of a per-scale dict of grids."""
    return grids[check_scale(scale)]


def grid(grids: dict[str, dict[str, Any]], scale: str, dataset: str) -> dict[str, Any]:
    """A module's grid at ``scale``, with the entries it overrides for ``dataset``.

    ``grids[scale]`` may hold a dict under the data set's name whose entries replace
    the general ones (e.g. fewer sizes on Fashion-MNIST at the quick scale).
    """
    general = dict(pick(scale, grids))
    special = general.pop(dataset, None) or {}
    for name in DATASETS:
        general.pop(name, None)
    general.update(special)
    return general
