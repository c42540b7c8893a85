"""End to end: a tiny reproduction on synthetic data (real training, a few seconds)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from thrifty.figures import FIGURES
from thrifty.reproduce import _notes, estimated_cost, reproduce

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("thrifty.experiments") is None,
    reason="thrifty.experiments is not available",
)

TINY_FIGURES = ("fig1b", "fig2a", "fig5")
"""Enough for both sweep rounds (Fig 2a's synapse masks wait for N_min from Fig 1b)."""


@pytest.mark.slow
def test_tiny_reproduction_runs_draws_reports_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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

    # Resumable: a second call trains nothing and gives the same records; with every
    # run stored it needs no data (copied records redraw without the data set).
    from thrifty import reproduce as reproduce_module
    from thrifty.data import DataError

    def no_data(*args: Any, **kwargs: Any) -> tuple[str, ...]:
        raise DataError("no data on this machine")

    monkeypatch.setattr(reproduce_module, "fetch_data", no_data)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    (out / "report.md").unlink()
    reproduce("tiny", out=out, datasets=("synthetic",), figures=TINY_FIGURES, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert after == before and "Claims on synthetic" in (out / "report.md").read_text()
    # with nothing to train, a scheduler given is not needed (nothing answers there)
    reproduce(
        "tiny",
        out=out,
        datasets=("synthetic",),
        figures=TINY_FIGURES,
        scheduler="tcp://127.0.0.1:1",
        progress=False,
    )
    # drawing one figure again keeps the others whose runs are all stored in the report
    # and runs.csv (fig1c, fig2b, fig2c: drawn from the runs of fig1b and fig2a, though
    # not asked for before)
    full = (out / "report.md").read_text()
    reproduce("tiny", out=out, datasets=("synthetic",), figures=("fig2a",), progress=False)
    text = (out / "report.md").read_text()
    assert sorted(pd.read_csv(out / "runs.csv")["key"]) == records
    assert "figures limited to fig2a\n" in text
    also = "synthetic: fig1b, fig1c, fig2b, fig2c, fig5"
    assert f"also drawn, from the records of earlier runs: {also}\n" in text
    for claim in ("Fig 1b", "Fig 5"):
        assert f"| {claim} |" in full and f"| {claim} |" in text, claim
    # a figure that cannot be written stops the call and keeps the report and runs.csv
    from thrifty.experiments.store import StoreError

    def unwritable(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("read-only file system")

    before = {name: (out / name).read_bytes() for name in ("report.md", "runs.csv")}
    monkeypatch.setattr(reproduce_module, "draw", unwritable)
    with pytest.raises(StoreError, match="cannot write the figure fig1b"):
        reproduce("tiny", out=out, datasets=("synthetic",), figures=("fig1b",), progress=False)
    assert {name: (out / name).read_bytes() for name in before} == before
    monkeypatch.undo()
    monkeypatch.setattr(reproduce_module, "fetch_data", no_data)
    # one more figure has runs still to do: the data is needed again
    with pytest.raises(DataError, match="no data"):
        reproduce(
            "tiny",
            out=out,
            datasets=("synthetic",),
            figures=(*TINY_FIGURES, "fig3a"),
            progress=False,
        )
    # report only: no data, nothing trained; a figure with a run missing is named
    runs = pd.read_csv(out / "runs.csv")
    mask_run = runs.loc[runs["rules"].fillna("").str.contains("synapse-mask-optimal"), "key"]
    (out / "records" / f"{mask_run.iloc[0]}.json").unlink()
    kept = sorted(p.name for p in (out / "records").glob("*.json"))
    reproduce("tiny", out=out, datasets=("synthetic",), report_only=True, progress=False)
    assert sorted(p.name for p in (out / "records").glob("*.json")) == kept
    text = (out / "report.md").read_text()
    assert "report only: drawn from the records stored, nothing trained" in text
    assert "synthetic: not drawn, their runs not all stored" in text
    assert re.search(r"fig2a \(\d+ of \d+\)", text)
    assert "| Fig 1b |" in text
    assert "report_only=True" in text
    assert mask_run.iloc[0] not in set(pd.read_csv(out / "runs.csv")["key"])


def test_a_subset_of_data_sets_keeps_the_stored_figures_of_the_others() -> None:
    """Reproducing MNIST alone in a finished reproduction of both data sets draws the
    Fashion-MNIST figures from their records too; figures whose runs are not all
    stored are not drawn."""
    from test_figures import fake_frame
    from thrifty.figures import all_configs, plan
    from thrifty.reproduce import _stored_figures

    first = fake_frame(all_configs("quick", ("mnist", "fashion-mnist")))
    records = fake_frame(all_configs("quick", ("mnist", "fashion-mnist"), df=first))
    stored = _stored_figures("quick", ("mnist",), None, records, None)
    assert {d for _, d in stored} == {"fashion-mnist"}
    assert sorted(n for n, _ in stored) == sorted(plan("quick", "fashion-mnist"))
    # one run of fig1b missing: fig1b and the figures drawn from its runs are left out;
    # a failed run is stored (drawn as a run that missed the criterion)
    fig1b = sorted(c.key() for c in all_configs("quick", ("fashion-mnist",), ("fig1b",), records))
    partial = records[records["key"] != fig1b[0]]
    left = _stored_figures("quick", ("mnist",), None, partial, None)
    assert ("fig1b", "fashion-mnist") not in left and ("fig3b", "fashion-mnist") in left
    failed = records.copy()
    failed.loc[failed["key"] == fig1b[0], "status"] = "failed"
    assert _stored_figures("quick", ("mnist",), None, failed, None) == stored
    assert _stored_figures("quick", ("mnist", "fashion-mnist"), None, records, None) == {}


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
    # figures of the data set whose runs are stored are drawn, and one note says both
    stored = [("fig1b", "fashion-mnist"), ("fig2a", "mnist"), ("fig3a", "fashion-mnist")]
    notes = _notes("quick", ("mnist", "fashion-mnist"), None, ("fashion-mnist",), None, stored)
    about_fashion = [n for n in notes if "fashion-mnist:" in n and "not drawn at" not in n]
    assert len(about_fashion) == 1
    assert about_fashion[0].startswith(
        "fashion-mnist: drawn only from the records of earlier runs: fig1b, fig3a, its data "
        "could not be had"
    )
    assert "also drawn, from the records of earlier runs: mnist: fig2a" in notes


def _stubbed_reproduction(
    monkeypatch: pytest.MonkeyPatch, out: Path, records: pd.DataFrame, have: tuple[str, ...]
) -> list[tuple[str, str]]:
    """Make :func:`reproduce` read ``records`` as the store of ``out``, find the data of
    ``have`` only, train nothing, and list the (figure, data set) pairs it draws."""
    from thrifty import experiments
    from thrifty import reproduce as reproduce_module

    drawn: list[tuple[str, str]] = []

    def fetch(asked: Any, data_dir: Any = None, **kwargs: Any) -> tuple[str, ...]:
        return tuple(d for d in asked if d in have)

    def sweep(configs: Any, out: Any, **kwargs: Any) -> Any:
        assert all(c.dataset in have for c in configs)
        return SimpleNamespace(done=0, skipped=len(configs), failed=0)

    def draw(name: str, df: Any, dataset: str, out_dir: Any) -> Any:
        drawn.append((name, dataset))
        raise ValueError("not drawn in this test")

    (out / "records").mkdir(parents=True)
    monkeypatch.setattr(reproduce_module, "_load", lambda out: records.copy())
    monkeypatch.setattr(reproduce_module, "fetch_data", fetch)
    monkeypatch.setattr(experiments, "run_sweep", sweep)
    monkeypatch.setattr(reproduce_module, "draw", draw)
    return drawn


def test_a_data_set_left_out_draws_only_its_fully_stored_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Fashion-MNIST's data missing, :func:`reproduce` draws every MNIST figure
    and only those Fashion-MNIST figures whose runs are all stored (not every figure of
    the data set); the report names those with runs missing."""
    from test_figures import fake_frame
    from thrifty.figures import all_configs, plan

    first = fake_frame(all_configs("quick", ("mnist", "fashion-mnist")))
    records = fake_frame(all_configs("quick", ("mnist", "fashion-mnist"), df=first))
    fig2a = all_configs("quick", ("fashion-mnist",), ("fig2a",), records)
    only_2a = {c.key() for c in fig2a} - {
        c.key() for c in all_configs("quick", ("fashion-mnist",), ("fig1b", "fig3b"), records)
    }
    partial = records[records["key"] != sorted(only_2a)[0]]
    out = tmp_path / "repro"
    drawn = _stubbed_reproduction(monkeypatch, out, partial, have=("mnist",))
    report = reproduce("quick", out=out, progress=False)
    assert [n for n, d in drawn if d == "mnist"] == list(plan("quick", "mnist"))
    fashion = [n for n, d in drawn if d == "fashion-mnist"]
    assert "fig1b" in fashion and "fig3b" in fashion
    assert "fig2a" not in fashion and "fig2c" not in fashion  # fig2c draws fig2a's runs
    notes = report.read_text().split("## Notes")[1].split("\n## ")[0]
    have, planned = len(fig2a) - 1, len(fig2a)
    assert "fashion-mnist: not drawn, their runs not all stored" in notes
    assert f"fig2a ({have} of {planned})" in notes and "fig2c (" in notes


def test_a_subset_names_figures_left_out_only_where_something_of_theirs_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing Fig 1b alone where only its runs are stored names no other figure (they
    share runs with it but were never drawn); a figure with a run of its own stored,
    or a file of an earlier drawing, is named."""
    from test_figures import fake_frame
    from thrifty.figures import all_configs

    fig1b = fake_frame(all_configs("quick", ("mnist",), ("fig1b",)))
    out = tmp_path / "repro"
    _stubbed_reproduction(monkeypatch, out, fig1b, have=("mnist",))
    text = reproduce("quick", out=out, datasets=("mnist",), figures=("fig1b",), progress=False)
    assert "not drawn, their runs not all stored" not in text.read_text()
    (out / "figures").mkdir(exist_ok=True)
    (out / "figures" / "fig3a_mnist.png").write_bytes(b"an earlier drawing")
    text = reproduce("quick", out=out, datasets=("mnist",), figures=("fig1b",), progress=False)
    notes = text.read_text()
    assert "mnist: not drawn, their runs not all stored" in notes and "fig3a (" in notes
    assert "fig4a (" not in notes


def test_record_notes_name_unreadable_records_and_failed_runs() -> None:
    from thrifty.reproduce import _record_notes

    df = pd.DataFrame({"key": ["a" * 16, "b" * 16], "status": ["converged", "failed"]})
    notes = _record_notes(df, ["/x/records/cccccccccccccccc.json"], {})
    assert len(notes) == 2
    assert "1 record file(s) could not be read" in notes[0]
    assert "cccccccccccccccc.json" in notes[0]
    assert (
        notes[1].startswith("1 run(s) failed with an error, not a result") and "b" * 16 in notes[1]
    )
    assert _record_notes(df[df["status"] != "failed"], [], {}) == []


def test_a_figures_path_that_cannot_hold_figures_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thrifty import reproduce as reproduce_module
    from thrifty.experiments.store import StoreError

    def no_data(*args: Any, **kwargs: Any) -> tuple[str, ...]:
        raise AssertionError("the data was fetched before the figures directory was checked")

    monkeypatch.setattr(reproduce_module, "fetch_data", no_data)
    out = tmp_path / "repro"
    out.mkdir()
    (out / "figures").write_text("not a directory")
    with pytest.raises(StoreError, match="is not a directory"):
        reproduce("tiny", out=out, datasets=("synthetic",), progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["figures"]


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


def test_with_seeds_gives_every_setting_exactly_the_seeds_asked() -> None:
    from thrifty.config import RunConfig
    from thrifty.figures._common import with_seeds

    a0, a1 = RunConfig(n_hidden=10, seed=0), RunConfig(n_hidden=10, seed=1)
    b2 = RunConfig(n_hidden=20, seed=2)
    a_spelled = RunConfig(n_hidden=10, sigma=0.01, seed=2)  # σ's default, written out
    both = with_seeds([a0, b2, a1, a_spelled], 2)
    assert [(c.n_hidden, c.seed) for c in both] == [(10, 0), (10, 1), (20, 0), (20, 1)]
    assert both[1].key() == a1.key()
    assert [(c.n_hidden, c.seed) for c in with_seeds([a1, b2], 1)] == [(10, 0), (20, 0)]
    for bad in (0, -1, 1.5, True, 101, 10**9):
        with pytest.raises(ValueError, match=r"seeds must be an integer in \[1, 100\]"):
            with_seeds([a0], bad)  # type: ignore[arg-type]
    assert len(with_seeds([a0], 100)) == 100
    assert [c.seed for c in with_seeds([a0], np.int64(2))] == [0, 1]


@pytest.mark.slow
def test_seeds_set_every_points_seeds_and_are_named_in_the_report(tmp_path: Path) -> None:
    """``seeds=2`` at the tiny scale (one seed of its own) runs each point at seeds 0
    and 1; the figures and the report use those runs, and the report says so."""
    out = tmp_path / "repro"
    report = reproduce(
        "tiny", out=out, datasets=("synthetic",), figures=("fig1b",), seeds=2, progress=False
    )
    runs = pd.read_csv(out / "runs.csv")
    per_size = runs.groupby("n_hidden")["seed"].apply(lambda s: sorted(s.tolist()))
    assert len(per_size) == 4 and all(seeds == [0, 1] for seeds in per_size)
    text = report.read_text()
    assert "tiny scale: 2 seeds per point, set for this run" in text
    assert "seeds=2" in text
    # one seed in the same directory: the records of seed 1 stay, but take no part
    # (a data set or figure named twice counts once)
    twice = {"datasets": ("synthetic", "synthetic"), "figures": ("fig1b", "fig1b")}
    report = reproduce("tiny", out=out, seeds=1, progress=False, **twice)  # type: ignore[arg-type]
    assert set(pd.read_csv(out / "runs.csv")["seed"]) == {0}
    text = report.read_text()
    assert text.count("Claims on synthetic") == 1
    assert "figures limited to fig1b\n" in text
    assert "also drawn, from the records of earlier runs: synthetic: fig1c, fig2b, fig5\n" in text
    assert len(list((out / "records").glob("*.json"))) == len(runs)
    with pytest.raises(ValueError, match="seeds must be an integer"):
        reproduce("tiny", out=out, datasets=("synthetic",), seeds=0)


def test_temporary_files_of_killed_reproductions_are_removed(tmp_path: Path) -> None:
    """Temporaries of thrifty's table, reports and figures go when their writer no
    longer runs on this host, or when they are older than a day (a writer on another
    host); those of a live writer, of another host while fresh, and files of other
    names stay."""
    from thrifty.data import writer_tag
    from thrifty.reproduce import STALE_PART_S, _remove_stale_parts

    host = writer_tag().rpartition("_")[0]
    (tmp_path / "figures").mkdir()
    dead_here = [
        tmp_path / f".report.md.{host}_999999999.ab12cd34.part",
        tmp_path / "figures" / f".fig1b_mnist.png.{host}_999999999.0011aabb.part",
    ]
    old_there = tmp_path / ".runs.csv.otherhost_4242.ab12cd34.part"
    fresh_there = tmp_path / ".report.html.otherhost_4242.ab12cd34.part"
    alive = tmp_path / f".runs.csv.{writer_tag()}.ab12cd34.part"
    others = [
        tmp_path / f".my.notes.v2.{host}_999999999.zz.part",
        tmp_path / f".report.md.{host}_99999999999999999999.ab12cd34.part",
        tmp_path / f".report.md.{host}_١٢٣٤.ab12cd34.part",
    ]
    old = time.time() - STALE_PART_S - 60
    for path in (*dead_here, old_there, fresh_there, alive, *others):
        path.write_text("partial")
    for path in (old_there, *others):
        os.utime(path, (old, old))
    (tmp_path / f".report.md.{host}_999999999.00000000.part").mkdir()  # not a file: kept
    _remove_stale_parts(tmp_path)
    assert not any(p.exists() for p in (*dead_here, old_there))
    assert fresh_there.exists() and alive.exists() and all(p.exists() for p in others)
    assert (tmp_path / f".report.md.{host}_999999999.00000000.part").is_dir()


def test_a_figure_that_fails_to_save_leaves_the_earlier_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from thrifty.figures import style

    fig, _ = plt.subplots()
    style.save(fig, tmp_path / "fig")
    before = (tmp_path / "fig.png").read_bytes()
    os.chmod(tmp_path / "fig.png", 0o600)
    style.save(fig, tmp_path / "fig")
    assert (tmp_path / "fig.png").stat().st_mode & 0o777 == 0o600  # a file replaced keeps it

    def half_written(target: Any, **kwargs: Any) -> None:
        target.write(b"half")
        raise OSError("disk full")

    saved = fig.savefig
    fig.savefig = half_written  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        style.save(fig, tmp_path / "fig")
    fig.savefig = saved  # type: ignore[method-assign]

    def no_rename(*args: Any) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="read-only file system"):
        style.save(fig, tmp_path / "fig")
    plt.close(fig)
    assert (tmp_path / "fig.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]


def test_report_only_draws_what_is_stored_and_names_what_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Report only: nothing trained and no data (the stubs fail if asked), every fully
    stored figure drawn, and each figure asked for that is not drawn named with its
    count, those with no run stored included (a data set without records too); a scale
    or seeds other than those of the reproduction that trained there, or of which no
    figure is stored, is refused before anything is drawn, and the report kept."""
    from test_figures import fake_frame
    from thrifty import experiments
    from thrifty import reproduce as reproduce_module
    from thrifty.experiments.store import StoreError
    from thrifty.figures import all_configs

    fig1b = fake_frame(all_configs("quick", ("mnist",), ("fig1b",)))
    out = tmp_path / "repro"
    drawn = _stubbed_reproduction(monkeypatch, out, fig1b, have=("mnist",))
    reproduce("quick", out=out, datasets=("mnist",), figures=("fig1b",), progress=False)
    assert json.loads((out / "reproduction.json").read_text()) == {"scale": "quick", "seeds": None}

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("report only loaded data or ran a sweep")

    monkeypatch.setattr(reproduce_module, "fetch_data", refuse)
    monkeypatch.setattr(experiments, "run_sweep", refuse)
    drawn.clear()
    report = reproduce(
        "quick",
        out=out,
        datasets=("mnist", "fashion-mnist"),
        figures=("fig1b", "fig3d"),
        report_only=True,
    )
    assert ("fig1b", "mnist") in drawn and ("fig5", "mnist") in drawn  # fig5: fig1b's runs
    text = report.read_text()
    planned = len(all_configs("quick", ("mnist",), ("fig3d",)))
    assert "mnist: not drawn, their runs not all stored" in text
    assert f"fig3d (0 of {planned})" in text and "fig3a (" not in text
    assert "fashion-mnist: no figure has all its runs stored" in text
    assert "fashion-mnist: not drawn, their runs not all stored" in text

    kept, drawn_before = report.read_bytes(), list(drawn)
    for scale, seeds in (("full", None), ("quick", 3)):
        with pytest.raises(StoreError, match="is of the quick scale with its default seeds"):
            reproduce(scale, out=out, seeds=seeds, report_only=True)
    (out / "reproduction.json").unlink()
    with pytest.raises(StoreError, match="no figure of the full scale has all its runs stored"):
        reproduce("full", out=out, report_only=True)
    with pytest.raises(StoreError, match="with 3 seeds has all its runs stored"):
        reproduce("quick", out=out, seeds=3, report_only=True)
    assert report.read_bytes() == kept and drawn == drawn_before


def test_report_only_needs_readable_records_and_creates_nothing(tmp_path: Path) -> None:
    from thrifty.experiments.store import StoreError

    with pytest.raises(StoreError, match="no records in"):
        reproduce("quick", out=tmp_path / "none", report_only=True)
    assert not (tmp_path / "none").exists()
    empty = tmp_path / "empty"
    (empty / "records").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"no records in .*empty"):
        reproduce("quick", out=empty, report_only=True)
    (empty / "records" / f"{'a' * 16}.json").write_text("{")
    with pytest.warns(UserWarning), pytest.raises(StoreError, match="none of the 1 record file"):
        reproduce("quick", out=empty, report_only=True)
    assert sorted(p.name for p in empty.iterdir()) == ["records"]


def test_a_start_without_data_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its data a reproduction stops before writing anything in ``out``."""
    from thrifty import reproduce as reproduce_module
    from thrifty.data import DataError

    def no_data(*args: Any, **kwargs: Any) -> tuple[str, ...]:
        raise DataError("no data on this machine")

    monkeypatch.setattr(reproduce_module, "fetch_data", no_data)
    out = tmp_path / "repro"
    out.mkdir()
    with pytest.raises(DataError):
        reproduce("quick", out=out, progress=False)
    assert list(out.iterdir()) == []
