"""Training runs: statuses, exact counts, determinism, run_many against run."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty import data, train
from thrifty.config import ConfigError, RunConfig
from thrifty.network import augment
from thrifty.train import (
    VMAP_DEFERRED_ON_CPU_UP_TO,
    VMAP_ON_CPU_UP_TO,
    _batched,
    _correct,
    _correct_from,
    _hidden_rows,
    batch_mode,
    check_config,
    expected_n_train,
    load_dataset,
    preprocessing_for,
    run,
    run_chunk,
    run_many,
)
from util import dot_precisions, initial_state

SMALL = dict(dataset="synthetic", n_hidden=16, check_interval=100)


@pytest.fixture(scope="module")
def synthetic() -> data.Dataset:
    return load_dataset(RunConfig(dataset="synthetic"))


def test_plain_backprop_m0_is_samples_times_synapses(synthetic: data.Dataset) -> None:
    record = run(RunConfig(**SMALL), synthetic)
    assert record["status"] == "converged"
    n_syn = 16 * 785 + 10 * 17
    assert record["n_synapses"] == {"hidden": 16 * 785, "output": 10 * 17}
    assert record["energy"]["total"]["m0"] == record["samples"] * n_syn
    assert record["energy"]["hidden"]["m0"] == record["samples"] * 16 * 785
    assert isinstance(record["energy"]["total"]["m0"], int)
    # the check where the criterion was met is the last point of the curve
    assert record["curve"][-1] == [record["samples"], record["accuracy"]]
    assert record["accuracy"] >= 0.9
    assert 0 < record["minimal_energy"]["total"]["m0"] <= n_syn
    assert record["inefficiency"]["m0"] >= 1


def test_budget_ends_runs_that_never_converge(synthetic: data.Dataset) -> None:
    cfg = RunConfig(**SMALL, criterion=1.0, budget_epochs=0.1)
    record = run(cfg, synthetic)
    assert record["status"] == "budget"
    assert record["samples"] == 200  # 0.1 epoch of 2000 samples, a whole number of checks
    assert len(record["curve"]) == 2


def test_budget_is_rounded_up_to_a_check_and_must_hold_one(synthetic: data.Dataset) -> None:
    """0.075 epochs of 2000 samples are 150, rounded up to two checks of 100; a budget
    shorter than one check would be stretched to it, and is refused before training."""
    record = run(RunConfig(**SMALL, budget_epochs=0.075, criterion=1.0), synthetic)
    assert (record["status"], record["samples"]) == ("budget", 200)
    with pytest.raises(ConfigError, match="shorter than one check interval") as exc:
        run(RunConfig(**{**SMALL, "check_interval": 1000}, budget_epochs=0.4), synthetic)
    # what would do: 1000 of 2000 samples is half an epoch; 0.4 epochs are 800 samples
    assert "budget_epochs to at least 0.5 or lower check_interval to at most 800" in str(exc.value)


def test_a_budget_of_whole_checks_is_not_stretched_by_float_rounding() -> None:
    """1.1 epochs of 50 000 images are 55 checks of 1000, though 1.1 · 50 000 is
    55 000.000000000007 in floats; 1.1001 epochs still take a check more."""
    from thrifty.train import budget_samples

    def budget(epochs: float) -> int:
        return budget_samples(RunConfig(budget_epochs=epochs).resolved(), 50_000)

    assert 1.1 * 50_000 > 55_000
    assert [budget(e) for e in (0.14, 0.56, 1.1, 2.2, 4.4)] == [7000, 28000, 55000, 110000, 220000]
    assert budget(1.1001) == 56_000
    # a run counts its samples in int32: a budget beyond that is refused, not wrapped
    assert budget(42_949) == 2_147_450_000
    with pytest.raises(ConfigError, match=r"more than a run can count: at most 2147483647"):
        budget(1e30)


def test_budgets_of_stored_data_sets_are_checked_before_loading() -> None:
    assert expected_n_train(RunConfig()) == 50_000
    assert expected_n_train(RunConfig(protocol="reference")) == 60_000
    assert expected_n_train(RunConfig(dataset="fashion-mnist", n_train=3000)) == 3000
    assert expected_n_train(RunConfig(dataset="synthetic")) is None
    with pytest.raises(ConfigError, match="budget of 500 samples"):
        check_config(RunConfig(budget_epochs=0.01))
    check_config(RunConfig(budget_epochs=0.02))  # exactly one check
    # more training images than the data set has (50 000 once the validation sixth is
    # set apart) are refused before loading it, too
    with pytest.raises(ConfigError, match="n_train must be at most the 50000"):
        check_config(RunConfig(n_train=50_001))
    check_config(RunConfig(n_train=50_000))


def test_data_other_than_the_configs_are_refused(synthetic: data.Dataset) -> None:
    """A record names its data set and preprocessing: data of another set, or prepared
    for another protocol, are refused before training."""
    with pytest.raises(ConfigError, match="names 'mnist' but the data given are 'synthetic'"):
        run(RunConfig(**{**SMALL, "dataset": "mnist"}), synthetic)
    raw = dataclasses.replace(
        synthetic, name="mnist", preprocessing=preprocessing_for(RunConfig(inputs="raw"))
    )
    with pytest.raises(ConfigError, match="prepared as"):
        run_many([RunConfig(**{**SMALL, "dataset": "mnist"})], raw)
    # synthetic data in the form the config's inputs do not name
    with pytest.raises(ConfigError, match="its centred form, the config's inputs 'raw'"):
        run(RunConfig(**SMALL, inputs="raw"), synthetic)
    # no data, a name, or a dict for a config: named, not an AttributeError inside
    config = RunConfig(**SMALL)
    for nothing in (None, "synthetic"):
        with pytest.raises(TypeError, match=r"dataset must be a thrifty\.data\.Dataset"):
            run(config, nothing)
    with pytest.raises(TypeError, match=r"config must be a RunConfig .*from_dict"):
        run(config.to_dict(), synthetic)  # type: ignore[arg-type]


def test_n_train_beyond_the_training_set_is_refused(synthetic: data.Dataset) -> None:
    with pytest.raises(ConfigError, match="n_train must be at most the 2000"):
        run(RunConfig(**SMALL, n_train=2001), synthetic)


def test_divergence_is_reported_with_its_sample(synthetic: data.Dataset) -> None:
    record = run(RunConfig(**SMALL, lr=1e4), synthetic)
    assert record["status"] == "diverged"
    assert record["diverged_at"] is not None and 0 <= record["diverged_at"] < 100
    assert record["samples"] == record["diverged_at"]
    # the samples before the divergence are paid in full (every update of plain
    # backprop on these inputs is non-zero), the one that diverged is not
    n_syn = sum(record["n_synapses"].values())
    assert record["energy"]["total"]["m0"] == record["diverged_at"] * n_syn
    assert np.isfinite(record["energy"]["total"]["m1"])
    assert record["accuracy"] is None


def test_a_sample_whose_update_is_not_finite_is_where_the_run_diverged(
    synthetic: data.Dataset,
) -> None:
    """η = 1e38: the first sample's loss is finite, its update overflows. The run
    diverged at that sample and is charged nothing (not an infinite M1)."""
    record = run(RunConfig(**SMALL, lr=1e38), synthetic)
    assert record["status"] == "diverged"
    assert record["diverged_at"] == record["samples"] == 0
    assert record["energy"]["total"]["m0"] == 0 and record["energy"]["total"]["m1"] == 0.0


def test_same_seed_same_record_other_seed_differs(synthetic: data.Dataset) -> None:
    a = run(RunConfig(**SMALL, seed=3), synthetic)
    b = run(RunConfig(**SMALL, seed=3), synthetic)
    c = run(RunConfig(**SMALL, seed=4), synthetic)
    assert a["energy"] == b["energy"] and a["curve"] == b["curve"]
    assert a["energy"] != c["energy"]


def test_invalid_config_fails_before_work() -> None:
    with pytest.raises(ConfigError, match="n_hidden"):
        RunConfig(n_hidden=0)
    with pytest.raises(ConfigError, match="lr"):
        RunConfig(lr=-0.1)
    with pytest.raises(ConfigError, match="dataset"):
        RunConfig(dataset="cifar")
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_dict({"n_hiden": 3})
    with pytest.raises(ConfigError, match=r"n_hidden must be an integer in \[1, 2735647\]"):
        RunConfig(n_hidden=3_000_000_000)
    # numbers that float32 would round to infinity or to zero; float64 holds them
    for field, value, becomes in (("lr", 1e300, "inf"), ("sigma", 1e-320, "0.0")):
        with pytest.raises(ConfigError, match=f"{field} must be .* float32 .*would be {becomes}"):
            check_config(RunConfig(**{field: value}))
        check_config(RunConfig(**{field: value}, dtype="float64"))
    with pytest.raises(ConfigError, match="alphas must be"):
        check_config(RunConfig(alphas=(1e39,)))
    # a learning rate below the smallest normal number of the type: every update would
    # be flushed to zero, yet counted
    for dtype, value in (("float32", 1e-40), ("float64", 1e-320)):
        with pytest.raises(ConfigError, match=f"lr must be at least the smallest normal {dtype}"):
            RunConfig(lr=value, dtype=dtype)
    RunConfig(lr=1e-37)
    RunConfig(lr=1e-300, dtype="float64")


def test_float64_needs_x64_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import jax

    monkeypatch.setattr(jax.config, "read", lambda name: False)
    with pytest.raises(ConfigError, match="64-bit"):
        check_config(RunConfig(dtype="float64"))


def test_run_many_equals_separate_runs(synthetic: data.Dataset) -> None:
    """Runs differing in seed, learning rate and fraction, batched, give the records of
    separate runs: same status, samples, counts and curve; M1 within float64 rounding."""
    configs = [
        RunConfig(**SMALL, dtype="float64", seed=s, lr=lr, rules=(f"top-k:fraction={f}",))
        for s, lr, f in [(0, 0.01, 0.1), (1, 0.03, 0.3), (2, 0.01, 1.0)]
    ]
    configs.append(dataclasses.replace(configs[0], lr=1e4))  # diverges inside the batch
    many = run_many(configs, synthetic)
    for got, cfg in zip(many, configs, strict=True):
        want = run(cfg, synthetic)
        assert got["key"] == want["key"]
        assert (got["status"], got["samples"], got["diverged_at"]) == (
            want["status"],
            want["samples"],
            want["diverged_at"],
        )
        assert got["energy"]["total"]["m0"] == want["energy"]["total"]["m0"]
        assert got["energy"]["hidden"]["m0"] == want["energy"]["hidden"]["m0"]
        assert got["energy"]["total"]["m1"] == pytest.approx(
            want["energy"]["total"]["m1"], rel=1e-12
        )
        assert got["curve"] == want["curve"]
    assert [r["status"] for r in many][-1] == "diverged"


def test_run_many_freezes_transient_weights_of_finished_runs(synthetic: data.Dataset) -> None:
    """Caching runs that stop at different times in one batch: a finished run's
    transient weights stop decaying and consolidating, so what remains in them and the
    energy equal those of the run done alone."""
    configs = [
        RunConfig(**SMALL, dtype="float64", lr=lr, synapses="caching:threshold=0.02,tau=50")
        for lr in (0.05, 0.01)
    ]
    many = run_many(configs, synthetic)
    assert many[0]["samples"] != many[1]["samples"]
    for got, cfg in zip(many, configs, strict=True):
        want = run(cfg, synthetic)
        assert (got["status"], got["samples"]) == (want["status"], want["samples"])
        assert got["energy"]["total"]["m0"] == want["energy"]["total"]["m0"]
        for layer in ("hidden", "output"):
            g, w = got["synapse_summary"][layer], want["synapse_summary"][layer]
            assert g["remaining_m0"] == w["remaining_m0"]
            assert g["remaining_m1"] == pytest.approx(w["remaining_m1"], rel=1e-12)


def test_run_many_groups_structures(synthetic: data.Dataset) -> None:
    configs = [RunConfig(**SMALL), RunConfig(**SMALL, rules=("subnet:units=4",))]
    records = run_many(configs, synthetic)
    assert [r["config"]["rules"] for r in records] == [[], ["subnet:units=4"]]
    assert records[1]["energy"]["hidden"]["m0"] == records[1]["samples"] * 4 * 785


def test_run_many_batches_apart_strings_that_write_out_other_parameters(
    synthetic: data.Dataset,
) -> None:
    """A parameter written out (even at its default) and one left out give other numbers
    to the compiled program: such runs go to separate batches (they raised a pytree
    error as one), by run_many and by the sweep's batch key."""
    from thrifty.experiments.sweep import batch_key

    for strings, field in [
        (("caching:threshold=0.02", "caching:threshold=0.02,tau=1000"), "synapses"),
        (("synapse-mask:hidden=0.5", "synapse-mask:hidden=0.5,output=0.9"), "rules"),
    ]:
        configs = [RunConfig(**SMALL, **{field: (s,) if field == "rules" else s}) for s in strings]
        assert batch_key(configs[0]) != batch_key(configs[1])
        many = run_many(configs, synthetic)
        for got, cfg in zip(many, configs, strict=True):
            want = run(cfg, synthetic)
            assert (got["status"], got["samples"]) == (want["status"], want["samples"])
            assert got["energy"]["total"]["m0"] == want["energy"]["total"]["m0"]
    same = [RunConfig(**SMALL, rules=(f"synapse-mask:hidden={p}",)) for p in (0.3, 0.5)]
    assert batch_key(same[0]) == batch_key(same[1])


def test_seeds_sharing_a_jax_key_are_found_and_a_sweep_warns(tmp_path: Path) -> None:
    """The JAX key of a seed holds 32 bits: seeds 14 375 and 53 572 share it (the first
    such pair), and a sweep with both says so."""
    import jax

    from thrifty.experiments import run_sweep
    from thrifty.train import seeds, seeds_sharing_a_key

    (a, _), (b, _), (c, _) = seeds(14_375), seeds(53_572), seeds(14_376)
    assert (jax.random.key_data(a) == jax.random.key_data(b)).all()
    assert not (jax.random.key_data(a) == jax.random.key_data(c)).all()
    assert seeds_sharing_a_key([0, 14_375, 53_572, 53_573]) == [(14_375, 53_572)]
    assert len({train._key_word(s) for s in range(53_572)}) == 53_572
    configs = [RunConfig(**SMALL, n_train=100, budget_epochs=1, seed=s) for s in (14_375, 53_572)]
    with pytest.warns(UserWarning, match="seeds 14375 and 53572 share their JAX key"):
        run_sweep(configs, tmp_path / "store", progress=False)
    other = [configs[0], dataclasses.replace(configs[1], lr=0.02)]  # not one config
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_sweep(other, tmp_path / "other", progress=False)


def test_simpson_index_of_a_fixed_subnet(synthetic: data.Dataset) -> None:
    record = run(RunConfig(**SMALL, rules=("subnet:units=4",), simpson=True), synthetic)
    values = record["simpson"]["values"]
    assert len(values) == len(record["curve"])
    for _start, hidden, output in values:
        assert hidden == pytest.approx(4 * 785, rel=1e-5)
        assert output == pytest.approx(10 * 5, rel=1e-5)


def test_cached_checks_equal_full_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """CheckSet recomputes only changed hidden units and gives the full pass's accuracy;
    when more than a quarter changed it drops its cache, and keeps one again once few
    units change between checks."""
    import jax
    import jax.numpy as jnp

    from thrifty import train
    from thrifty.network import Params, augment, init_params
    from thrifty.train import CheckSet, accuracy

    monkeypatch.setattr(train, "HIDDEN_CACHE_BYTES", 1 << 30)  # whatever memory is free

    rng = np.random.default_rng(0)
    # 700 images: chunks of 234 rows, the last padded with two
    x = augment(jnp.asarray(rng.normal(0, 0.3, (700, 784)), jnp.float32))
    y = jnp.asarray(rng.integers(0, 10, 700), jnp.int32)
    p0 = init_params(jax.random.key(0), n_hidden=64, sigma=0.1)
    checks = CheckSet(x, y, activation="leaky_relu")
    assert checks.accuracy(p0) == accuracy(p0, x, y, activation="leaky_relu")
    assert checks.hidden is not None
    w = np.asarray(p0.hidden).copy()
    accuracies = []
    # 1, 6 and 16 units changed since the first check (a quarter of 64): cached; then
    # 40: in full, with a new reference; then 3: the cache is built again with these
    # weights as its reference, and used with 2 and 9 units changed since them
    steps = [(range(0, 1), True), (range(1, 6), True), (range(6, 16), True)]
    steps += [(range(0, 40), False), (range(50, 53), True), (range(53, 55), True)]
    steps += [(range(20, 27), True)]
    for rows, cached in steps:
        w[list(rows)] += rng.normal(0, 0.2, (len(rows), 785))
        params = Params(jnp.asarray(w), p0.output + 0.01 * len(rows))
        acc = checks.accuracy(params)
        assert acc == accuracy(params, x, y, activation="leaky_relu")
        assert (checks.hidden is not None) == cached, rows
        accuracies.append(acc)
    assert len(set(accuracies)) > 1  # the changes reach the accuracy


def _small_check_set(seed: int) -> tuple[np.random.Generator, Any, Any, Any, Any]:
    """``(rng, x, y, initial params, CheckSet)``: 300 random images, 64 hidden units."""
    import jax.numpy as jnp

    from thrifty.network import augment, init_params
    from thrifty.train import CheckSet

    rng = np.random.default_rng(seed)
    x = augment(jnp.asarray(rng.normal(0, 0.3, (300, 784)), jnp.float32))
    y = jnp.asarray(rng.integers(0, 10, 300), jnp.int32)
    p0 = init_params(jax.random.key(seed + 1), n_hidden=64, sigma=0.1)
    return rng, x, y, p0, CheckSet(x, y, activation="leaky_relu")


@pytest.mark.parametrize("limited_by", ["HIDDEN_CACHE_BYTES", "environment", "free memory"])
def test_checks_of_a_set_too_big_to_keep_are_full_passes(
    monkeypatch: pytest.MonkeyPatch, limited_by: str
) -> None:
    """A check set whose hidden activity would exceed the cache limit (set, from the
    environment, or a quarter of the free memory) keeps none and gives the full pass's
    accuracy at every check."""
    import jax.numpy as jnp

    from thrifty import train
    from thrifty.network import Params

    size = 300 * 64 * 4  # bytes of the set's hidden activity
    monkeypatch.delenv("THRIFTY_CHECK_CACHE_BYTES", raising=False)
    monkeypatch.delenv("THRIFTY_LOCAL_WORKERS", raising=False)
    if limited_by == "HIDDEN_CACHE_BYTES":
        monkeypatch.setattr(train, "HIDDEN_CACHE_BYTES", size - 1)
    elif limited_by == "environment":
        monkeypatch.setenv("THRIFTY_CHECK_CACHE_BYTES", str(size - 1))
        monkeypatch.setattr(train, "free_memory_bytes", lambda: 1 << 40)
    else:
        monkeypatch.setattr(train, "free_memory_bytes", lambda: 4 * size - 1)
    rng, x, y, p0, checks = _small_check_set(1)
    w = np.asarray(p0.hidden).copy()
    for unit in (None, 3):
        if unit is not None:
            w[unit] += rng.normal(0, 0.5, 785)
        params = Params(jnp.asarray(w), p0.output)
        assert checks.accuracy(params) == train.accuracy(params, x, y, activation="leaky_relu")
        assert checks.hidden is None and checks.w_ref is None


def test_checks_keep_a_cache_only_while_memory_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built while memory allows, dropped when more than a quarter of the units changed,
    refused while memory is short, built again once it allows: every check gives the
    full pass's accuracy."""
    import jax.numpy as jnp

    from thrifty import train
    from thrifty.network import Params

    size = 300 * 64 * 4
    free = {"bytes": 4 * size}
    monkeypatch.setattr(train, "HIDDEN_CACHE_BYTES", None)
    monkeypatch.delenv("THRIFTY_CHECK_CACHE_BYTES", raising=False)
    monkeypatch.delenv("THRIFTY_LOCAL_WORKERS", raising=False)
    monkeypatch.setattr(train, "free_memory_bytes", lambda: free["bytes"])
    rng, x, y, p0, checks = _small_check_set(4)
    w = np.asarray(p0.hidden).copy()
    # (units changed, free bytes, cache kept after the check)
    steps = [(range(0), 4 * size, True), (range(0, 20), 4 * size, False)]
    steps += [(range(20, 22), 4 * size - 1, False), (range(22, 24), 4 * size - 1, False)]
    steps += [(range(24, 26), 4 * size, True), (range(26, 27), 0, True)]
    for rows, free["bytes"], kept in steps:
        w[list(rows)] += rng.normal(0, 0.3, (len(rows), 785))
        params = Params(jnp.asarray(w), p0.output)
        assert checks.accuracy(params) == train.accuracy(params, x, y, activation="leaky_relu")
        assert (checks.hidden is not None) == kept, (rows, free)


def test_hidden_cache_limit_is_a_quarter_of_the_free_memory_up_to_4_gib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thrifty import train

    gib = 1 << 30
    monkeypatch.setattr(train, "HIDDEN_CACHE_BYTES", None)
    monkeypatch.delenv("THRIFTY_CHECK_CACHE_BYTES", raising=False)
    monkeypatch.delenv("THRIFTY_LOCAL_WORKERS", raising=False)
    for free, limit in [(None, gib), (8 * gib, 2 * gib), (64 * gib, 4 * gib), (0, 0)]:
        monkeypatch.setattr(train, "free_memory_bytes", lambda free=free: free)
        assert train.hidden_cache_limit() == limit
    # local workers share the memory
    monkeypatch.setattr(train, "free_memory_bytes", lambda: 24 * gib)
    monkeypatch.setenv("THRIFTY_LOCAL_WORKERS", "3")
    assert train.hidden_cache_limit() == 2 * gib
    monkeypatch.setenv("THRIFTY_LOCAL_WORKERS", "0")
    with pytest.raises(ValueError, match="THRIFTY_LOCAL_WORKERS must be a whole number"):
        train.hidden_cache_limit()
    # the environment variable, then the module's attribute, override
    monkeypatch.setenv("THRIFTY_CHECK_CACHE_BYTES", "5000")
    assert train.hidden_cache_limit() == 5000
    monkeypatch.setenv("THRIFTY_CHECK_CACHE_BYTES", "2GB")
    with pytest.raises(ValueError, match="THRIFTY_CHECK_CACHE_BYTES must be a whole number"):
        train.hidden_cache_limit()
    monkeypatch.setattr(train, "HIDDEN_CACHE_BYTES", 12345)
    assert train.hidden_cache_limit() == 12345


def test_local_workers_tell_the_checks_how_many_share_the_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thrifty.experiments.executors import LocalPool

    monkeypatch.delenv("THRIFTY_LOCAL_WORKERS", raising=False)
    pool = LocalPool(2)
    try:
        assert pool.submit(os.getenv, "THRIFTY_LOCAL_WORKERS").result() == "2"
    finally:
        pool.shutdown()
    assert "THRIFTY_LOCAL_WORKERS" not in os.environ  # the driver's is left alone


def test_free_memory_is_the_least_of_what_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's available memory, the room under the cgroup limits and a Dask
    worker's memory limit: the least of those known (0 counts), None when none is."""
    from thrifty import train

    if jax.default_backend() != "cpu":
        pytest.skip("the CPU's sources of free memory")
    for meminfo, cgroup, dask, free in [
        (9000, None, None, 9000),
        (9000, 5000, None, 5000),
        (9000, 0, None, 0),
        (9000, 5000, 3000, 3000),
        (None, None, 3000, 3000),
        (None, None, None, None),
    ]:
        monkeypatch.setattr(train, "_meminfo_available", lambda v=meminfo: v)
        monkeypatch.setattr(train, "_cgroup_room", lambda v=cgroup: v)
        monkeypatch.setattr(train, "_dask_worker_limit", lambda v=dask: v)
        assert train.free_memory_bytes() == free


def test_the_memory_limit_of_a_dask_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from thrifty import train

    def worker(limit: Any) -> Any:
        def get_worker() -> Any:
            if limit == "outside":
                raise ValueError("No worker found")
            return types.SimpleNamespace(memory_manager=types.SimpleNamespace(memory_limit=limit))

        return types.SimpleNamespace(get_worker=get_worker)

    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    assert train._dask_worker_limit() is None  # no Dask in this process
    for limit, want in [(8_000_000_000, 8_000_000_000), (None, None), (0, None), ("outside", None)]:
        monkeypatch.setitem(sys.modules, "distributed", worker(limit))
        assert train._dask_worker_limit() == want


def test_free_memory_reads_meminfo_and_the_tightest_cgroup_limit(tmp_path: Path) -> None:
    from thrifty import train

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n")
    assert train._meminfo_available(str(meminfo)) == 1000 * 1024
    assert train._meminfo_available(str(tmp_path / "none")) is None

    def write(directory: Path, **files: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (directory / name.replace("_", ".", 1)).write_text(text + "\n")

    membership = tmp_path / "cgroup"

    def room(root: Path, line: str) -> int | None:
        membership.write_text(line + "\n")
        return train._cgroup_room(str(root), str(membership))

    # version 2: the job's cgroup a/b under a limited a, and no limit at the root
    v2 = tmp_path / "v2"
    write(v2, memory_max="max", memory_current="7")
    write(v2 / "a", memory_max="3000", memory_current="1000")
    write(v2 / "a" / "b", memory_max="5000", memory_current="4500")
    assert room(v2, "0::/a/b") == 500  # b is the tightest
    (v2 / "a" / "b" / "memory.current").write_text("1500\n")
    assert room(v2, "0::/a/b") == 2000  # now a, above it, is
    (v2 / "a" / "b" / "memory.current").write_text("6000\n")
    assert room(v2, "0::/a/b") == 0  # over its limit
    # inactive file pages (page cache the kernel reclaims first) are not counted as used
    (v2 / "a" / "b" / "memory.current").write_text("4500\n")
    (v2 / "a" / "b" / "memory.stat").write_text("anon 100\ninactive_file 1000\n")
    assert room(v2, "0::/a/b") == 1500
    (v2 / "a" / "memory.max").write_text("max\n")
    (v2 / "a" / "b" / "memory.max").write_text("max\n")
    assert room(v2, "0::/a/b") is None
    # a container: its cgroup path is not under the mount, whose root has the limit
    (v2 / "memory.max").write_text("800\n")
    assert room(v2, "0::/elsewhere/job") == 793
    # version 1: a limit in the memory hierarchy; the huge number means none
    v1 = tmp_path / "v1"
    write(v1 / "memory" / "job", memory_limit_in_bytes="4096", memory_usage_in_bytes="1024")
    (v1 / "memory" / "job" / "memory.stat").write_text("cache 900\ntotal_inactive_file 24\n")
    assert room(v1, "9:pids:/job\n4:memory:/job") == 3096
    (v1 / "memory" / "job" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert room(v1, "9:pids:/job\n4:memory:/job") is None
    assert train._cgroup_room(str(tmp_path / "none"), str(tmp_path / "none")) is None


def test_batch_mode_vmaps_small_networks_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU, run_many vmaps plain runs of small networks and maps larger ones and
    caching runs; the environment variable overrides both."""
    monkeypatch.delenv("THRIFTY_BATCH", raising=False)
    if jax.default_backend() == "cpu":
        assert batch_mode(100) == "vmap"
        assert batch_mode(VMAP_ON_CPU_UP_TO) == "vmap"
        assert batch_mode(VMAP_ON_CPU_UP_TO + 1) == "map"
        assert batch_mode() == "map"
        assert batch_mode(100, "caching") == "map"
        assert batch_mode(VMAP_DEFERRED_ON_CPU_UP_TO, deferred=True) == "vmap"
        assert batch_mode(VMAP_DEFERRED_ON_CPU_UP_TO + 1, deferred=True) == "map"
        assert batch_mode(VMAP_DEFERRED_ON_CPU_UP_TO + 1) == "vmap"
    monkeypatch.setenv("THRIFTY_BATCH", "map")
    assert batch_mode(100) == "map"
    monkeypatch.setenv("THRIFTY_BATCH", "vmap")
    assert batch_mode(10_000) == "vmap"


@pytest.mark.parametrize("rules", [(), ("top-k:fraction=0.05",)])
@pytest.mark.parametrize("caller_default", [None, "bfloat16"])
def test_every_matrix_product_is_true_float32(
    rules: tuple[str, ...], caller_default: str | None
) -> None:
    """The compiled training chunk, run_many's batched chunk and the accuracy checks
    ask for HIGHEST precision in every matrix product, whatever the caller's default
    (a GPU's own default rounds float32 operands to TensorFloat-32)."""
    rng = np.random.default_rng(0)
    x = augment(jnp.asarray(rng.normal(0, 0.3, (8, 784)), jnp.float32))
    y = jnp.asarray(rng.integers(0, 10, 8), jnp.int32)
    config = RunConfig(**SMALL, rules=rules).resolved()
    idx = jnp.arange(4, dtype=jnp.int32)
    with jax.default_matmul_precision(caller_default):
        structure, numbers, state, key = initial_state(config, 784)
        p = state.params
        two = functools.partial(jax.tree.map, lambda a: jnp.stack([a, a]))
        _, batched_chunk = _batched(structure, "vmap")
        programs = {
            "run_chunk": run_chunk.lower(state, idx, idx, x, y, numbers, key, structure=structure),
            "run_many": batched_chunk.lower(
                two(state), two(idx), idx, x, y, two(numbers), two(key)
            ),
            "accuracy": _correct.lower(p, x, y, activation="leaky_relu"),
            "hidden rows": _hidden_rows.lower(p.hidden, x[None], activation="leaky_relu"),
            "checks": _correct_from.lower(
                jnp.zeros((1, 8, 16)),
                idx[:2],
                p.hidden[:2],
                p.output,
                x[None],
                y[None],
                activation="leaky_relu",
            ),
        }
    for name, program in programs.items():
        precisions = dot_precisions(program)
        assert precisions, f"{name}: no matrix product found"
        assert set(precisions) == {"HIGHEST, HIGHEST"}, (name, precisions)


def test_a_run_warns_when_its_weights_would_not_fit_the_free_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A network too large for the memory left gets a warning that names the sizes,
    before anything is allocated; one that fits gets none."""
    import warnings

    import thrifty.train as train_module

    config = RunConfig(dataset="synthetic", n_hidden=20, budget_epochs=0.5)
    dataset = data.synthetic()
    structure = train_module.Structure.of(config, n_inputs=784, n_outputs=10)
    # 4 copies of 20 · 785 + 10 · 21 float32 weights: 254 560 bytes
    monkeypatch.setattr(train_module, "free_memory_bytes", lambda: 254_559)
    with pytest.warns(UserWarning, match=r"N=20: a run holds about 0\.0 GB .* may be stopped"):
        train_module.warn_if_memory_short(structure)
    monkeypatch.setattr(train_module, "free_memory_bytes", lambda: 254_560)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_module.warn_if_memory_short(structure)
        monkeypatch.setattr(train_module, "free_memory_bytes", lambda: None)  # unknown
        train_module.warn_if_memory_short(structure)
    monkeypatch.setattr(train_module, "free_memory_bytes", lambda: 1000)
    with pytest.warns(UserWarning, match="may be stopped for lack of memory"):
        record = run(config, dataset)  # run itself warns, and goes on
    assert record["samples"] > 0


def test_runs_of_plain_backprop_never_keep_the_check_activity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under plain backprop every unit learns at every sample: its checks are full
    passes from the first, with no activity built only to be dropped at the second,
    while a subnet's run keeps it. Both runs' accuracies are full passes' either way."""
    import thrifty.train as train_module

    built: list[int] = []
    hidden_rows = train_module._hidden_rows

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return hidden_rows(*args, **kwargs)

    monkeypatch.setattr(train_module, "HIDDEN_CACHE_BYTES", 1 << 30)
    monkeypatch.setattr(train_module, "_hidden_rows", counting)
    dataset = data.synthetic()
    for rules, keeps in [((), False), (("backprop",), False), (("subnet:units=5",), True)]:
        built.clear()
        config = RunConfig(dataset="synthetic", n_hidden=20, rules=rules, budget_epochs=1.0)
        record = run(config, dataset)
        assert record["curve"]  # a check ran
        assert bool(built) == keeps, rules
    x = jnp.asarray(np.asarray(augment(jnp.asarray(dataset.x_val))))
    y = jnp.asarray(dataset.y_val, jnp.int32)
    params = train_module.init_params(jax.random.key(0), n_hidden=20, sigma=0.1)
    checks = train_module.CheckSet(x, y, activation="leaky_relu", keep=False)
    assert checks.accuracy(params) == train_module.accuracy(params, x, y, activation="leaky_relu")
    assert checks.hidden is None and checks.w_ref is None
