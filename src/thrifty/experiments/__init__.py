"""Experiments: sweeps of run configs, the executors they run on, and the results store.

Example
-------
>>> from thrifty.config import RunConfig
>>> from thrifty.experiments import load, run_sweep
>>> configs = [RunConfig(dataset="synthetic", n_hidden=20, lr=lr) for lr in (0.01, 0.1)]
>>> run_sweep(configs, "results", workers=2)  # doctest: +SKIP
>>> load("results")[["lr", "status", "samples", "m0", "m1"]]  # doctest: +SKIP

Importing this package imports neither JAX nor pandas; they load when first needed.
"""

from thrifty.experiments.configfile import configs_from_file, configs_from_mapping
from thrifty.experiments.store import (
    RecordError,
    ResultStore,
    StoreError,
    failed_record,
    flatten,
    load,
    to_parquet,
)
from thrifty.experiments.sweep import SweepResult, clear_cache, dataset_for, run_one, run_sweep

__all__ = [
    "RecordError",
    "ResultStore",
    "StoreError",
    "SweepResult",
    "clear_cache",
    "configs_from_file",
    "configs_from_mapping",
    "dataset_for",
    "failed_record",
    "flatten",
    "load",
    "run_one",
    "run_sweep",
    "to_parquet",
]
