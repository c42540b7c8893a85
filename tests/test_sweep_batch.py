"""A sweep that batches runs differing only in numbers gives the records of single runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thrifty.config import RunConfig
from thrifty.experiments import ResultStore, run_sweep
from thrifty.experiments.sweep import _tasks, batch_key


def _configs() -> list[RunConfig]:
    base = dict(dataset="synthetic", n_hidden=12, check_interval=200)
    configs = [RunConfig(**base, seed=s, lr=lr) for s in (0, 1) for lr in (0.01, 0.02)]
    configs.append(RunConfig(**base, seed=0, rules=("subnet:units=6",)))  # other structure
    return configs


def test_tasks_group_by_structure() -> None:
    configs = {c.key(): c for c in _configs()}
    tasks = _tasks(list(configs), configs, batch=3)
    assert sorted(len(t) for t in tasks) == [1, 1, 3]
    for task in tasks:
        assert len({batch_key(configs[k]) for k in task}) == 1


def _records(
    configs: list[RunConfig], tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[dict, dict]]:
    """(single run, batched run) records of each config, after both sweeps succeeded;
    the second sweep must have run some of them together (one call of ``run_many``)."""
    from thrifty import train

    sizes: list[int] = []
    run_many = train.run_many

    def counted(cfgs: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(cfgs))
        return run_many(cfgs, *args, **kwargs)

    a = run_sweep(configs, tmp_path / "single", batch=1, progress=False)
    monkeypatch.setattr(train, "run_many", counted)
    b = run_sweep(configs, tmp_path / "batched", batch=batch, progress=False)
    assert max(sizes, default=0) > 1, sizes
    assert a.failed == b.failed == 0 and a.done == b.done == len(configs)
    single, batched = ResultStore(tmp_path / "single"), ResultStore(tmp_path / "batched")
    return [(single.read(c.key()), batched.read(c.key())) for c in configs]


def test_batched_sweep_equals_single_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for x, y in _records(_configs(), tmp_path, batch=4, monkeypatch=monkeypatch):
        assert (x["status"], x["samples"]) == (y["status"], y["samples"])
        assert x["energy"]["total"]["m0"] == y["energy"]["total"]["m0"]
        assert x["curve"] == y["curve"]


def test_batched_top_k_equals_single_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Top-k per layer searches its threshold in loops whose length depends on the data;
    vmapped, runs with different fractions and seeds still give their own records."""
    base = dict(dataset="synthetic", n_hidden=12, check_interval=200)
    configs = [
        RunConfig(**base, seed=s, rules=(f"top-k:fraction={f}",))
        for s, f in ((0, 0.02), (1, 0.02), (0, 0.5))
    ]
    for x, y in _records(configs, tmp_path, batch=3, monkeypatch=monkeypatch):
        assert x["samples"] == y["samples"]
        got, want = y["energy"]["total"], x["energy"]["total"]
        assert (got["m0"], got["m0_potentiation"]) == (want["m0"], want["m0_potentiation"])
        # sums of floats may round differently when vmapped
        assert got["m1"] == pytest.approx(want["m1"], rel=1e-5)
        assert x["curve"] == y["curve"]
