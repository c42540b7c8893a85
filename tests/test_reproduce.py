"""End to end: a tiny reproduction on synthetic data (real training, a few seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from thrifty.figures import FIGURES
from thrifty.reproduce import estimated_cost, reproduce

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("thrifty.experiments") is None,
    reason="thrifty.experiments is not available",
)

TINY_FIGURES = ("fig1b", "fig2a", "fig5")
"""Enough for both sweep rounds (Fig 2a's synapse masks wait for N_min from Fig 1b)."""


@pytest.mark.slow
def test_tiny_reproduction_runs_draws_reports_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "repro"
    report = reproduce(
        "tiny", out=out, datasets=("synthetic",), figures=TINY_FIGURES, progress=False
    )
    assert report == out / "report.md"
    text = report.read_text()
    html = (out / "report.html").read_text()
    assert "Claims on synthetic" in text and "data:image/png;base64," in html
    for name in TINY_FIGURES:
        for suffix in ("png", "pdf"):
            path = out / "figures" / f"{name}_synthetic.{suffix}"
            assert path.stat().st_size > 1000, path
    runs = pd.read_csv(out / "runs.csv")
    records = sorted(p.stem for p in (out / "records").glob("*.json"))
    assert sorted(runs["key"]) == records
    assert (runs["status"] != "failed").all()
    # The second round ran the synapse masks for the measured N_min.
    assert runs["rules"].fillna("").str.contains("synapse-mask-optimal").any()
    # Every record key the report cites exists.
    cited = {w for line in text.splitlines() for w in line.split() if len(w) == 16}
    assert {w for w in cited if all(ch in "0123456789abcdef" for ch in w)} <= set(records)

    # Resumable: a second call trains nothing and gives the same records.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    reproduce("tiny", out=out, datasets=("synthetic",), figures=TINY_FIGURES, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert after == before


def test_a_data_set_left_out_is_noted_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader of report.md learns that a data set asked for was left out, not only
    the terminal that ran it."""
    from thrifty import reproduce as reproduce_module

    def without_fashion(datasets: Any, data_dir: Any = None, **kwargs: Any) -> tuple:
        return tuple(d for d in datasets if d != "fashion-mnist")

    monkeypatch.setattr(reproduce_module, "fetch_data", without_fashion)
    report = reproduce(
        "tiny",
        out=tmp_path / "repro",
        datasets=("synthetic", "fashion-mnist"),
        figures=("fig1b",),
        progress=False,
    )
    text = report.read_text()
    assert "fashion-mnist: left out of this reproduction" in text
    assert "Claims on synthetic" in text and "Claims on fashion-mnist" not in text


def test_reproduce_rejects_unknown_scale_and_figures(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        reproduce("huge", out=tmp_path)
    with pytest.raises(ValueError, match="figure"):
        reproduce("tiny", out=tmp_path, datasets=("synthetic",), figures=("fig7",))
    assert set(FIGURES) >= set(TINY_FIGURES)


def test_expensive_runs_go_first() -> None:
    from thrifty.config import RunConfig

    small = RunConfig(n_hidden=100)
    large = RunConfig(n_hidden=3000)
    cached = RunConfig(n_hidden=300, synapses="caching:threshold=0.001")
    assert estimated_cost(large) > estimated_cost(small)
    assert estimated_cost(cached) > estimated_cost(RunConfig(n_hidden=300))


def test_unavailable_second_data_set_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fashion-MNIST missing (no Debian package, no mirror) leaves it out; MNIST missing fails."""
    from thrifty import train
    from thrifty.data import DataError
    from thrifty.reproduce import fetch_data

    def fake_load(config: Any, **kwargs: Any) -> None:
        if config.dataset == "fashion-mnist":
            raise DataError("no source for fashion-mnist")

    monkeypatch.setattr(train, "load_dataset", fake_load)
    assert fetch_data(("mnist", "fashion-mnist")) == ("mnist",)
    with pytest.raises(DataError):
        fetch_data(("fashion-mnist", "mnist"), required=("fashion-mnist",))
