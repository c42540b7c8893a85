"""Run configs and sweeps from TOML or JSON files.

A file holds one run or a sweep::

    # sweep.toml
    seeds = [0, 1, 2]            # top-level keys come before the first [table] in TOML

    [run]                        # fields of thrifty.config.RunConfig shared by every run
    dataset = "mnist"
    budget_epochs = 5

    [grid]                       # lists; every combination is a run (cartesian product)
    n_hidden = [100, 1000]
    lr = [0.01, 0.03]
    rules = ["", "subnet:units=100", ["subnet:units=100", "top-k:fraction=0.05"]]

gives 2 × 2 × 3 × 3 = 36 configs. The same structure in JSON::

    {"run": {"dataset": "mnist"}, "grid": {"n_hidden": [100, 1000]}, "seeds": [0, 1, 2]}

Top-level keys
--------------
``run``
    A table of config fields (all optional: defaults of :class:`~thrifty.config.RunConfig`).
``runs``
    A list of such tables (``[[runs]]`` in TOML), each laid over ``run``: explicit
    configs, to which the grid and the seeds then apply.
``grid``
    A table mapping config fields to non-empty lists of values. In ``rules`` (and
    ``alphas``) each value of the list is one alternative: a list of rules, a single rule
    string, or ``""``/``[]`` for plain backprop.
``seeds``
    A list of seeds (integers >= 0); the same as ``grid.seed``.

A file with none of these keys is a single run: its top-level table is the ``[run]``
table (as ``thrifty train --config`` reads it).

Every error is a :class:`~thrifty.config.ConfigError` that names the file, the table and the
field, with the allowed keys or values. Rule strings are checked later, by
:func:`thrifty.train.check_config` (which :func:`~thrifty.experiments.run_sweep` calls).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thrifty.config import ConfigError, RunConfig

__all__ = [
    "MAX_CONFIGS",
    "TOP_LEVEL_KEYS",
    "configs_from_file",
    "configs_from_mapping",
    "read",
    "run_fields",
]

TOP_LEVEL_KEYS = ("grid", "run", "runs", "seeds")
"""The keys of a structured file."""

MAX_CONFIGS = 1_000_000
"""Largest number of configs a file may expand to (a guard against a typo in a grid)."""

_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
_NUMBER_FIELDS = ("lr", "sigma", "budget_epochs", "criterion")
_LIST_FIELDS = ("rules", "alphas")


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML or JSON file (by suffix ``.json``; anything else is TOML) into a dict.

    Raises
    ------
    ConfigError
        Missing or unreadable file, a syntax error, or a top level that is not a table.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no such config file {str(p)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc}") from None
    kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
    try:
        data = (
            json.loads(text, object_pairs_hook=_unique_keys)
            if kind == "JSON"
            else tomllib.loads(text)
        )
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError and JSONDecodeError too
        raise ConfigError(f"{str(p)!r} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{str(p)!r} must hold a table (a JSON object) with keys {', '.join(TOP_LEVEL_KEYS)}"
            f" or config fields, got a {type(data).__name__}"
        )
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (JSON would keep the last
    silently; TOML refuses it too)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} is given twice in one object")
        out[key] = value
    return out


def configs_from_file(path: str | os.PathLike[str]) -> list[RunConfig]:
    """The configs a TOML or JSON file describes: one run, or a sweep (see module docs).

    Parameters
    ----------
    path : str or os.PathLike
        ``*.json`` is read as JSON, anything else as TOML.

    Returns
    -------
    list of RunConfig
        In the order of ``runs``, then the grid (first key slowest), then the seeds.

    Raises
    ------
    ConfigError
        Naming the file, the table and the field, with what is allowed.

    Examples
    --------
    >>> configs = configs_from_file("sweep.toml")  # doctest: +SKIP
    >>> len(configs), configs[0].n_hidden  # doctest: +SKIP
    (36, 100)
    """
    return configs_from_mapping(read(path), source=str(path))


def configs_from_mapping(data: Mapping[str, Any], *, source: str = "config") -> list[RunConfig]:
    """The configs of an already parsed file (the dict that :func:`read` returns).

    Parameters
    ----------
    data : mapping
        With the keys :data:`TOP_LEVEL_KEYS`, or config fields only (one run).
    source : str
        Named in error messages.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: must be a table, got {type(data).__name__}")
    _check_keys(data, source, "top level")
    if not data:
        raise ConfigError(
            f"{source}: empty; give a [run] table, a [grid] table or config fields "
            f"({', '.join(_FIELDS)})"
        )
    if not any(k in data for k in TOP_LEVEL_KEYS):
        return [_config(run_fields(data, source), f"{source} (run)")]
    _check_top_level(data, source)

    base = _table(data.get("run", {}), source, "run")
    bases = [base]
    if "runs" in data:
        runs = data["runs"]
        if not isinstance(runs, list) or not runs:
            raise ConfigError(f"{source}: runs must be a non-empty list of tables, got {runs!r}")
        bases = [{**base, **_table(r, source, f"runs[{i}]")} for i, r in enumerate(runs)]

    grid = _table(data.get("grid", {}), source, "grid")
    axes: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{source} [grid]: {name} must be a non-empty list of values, got {values!r}"
            )
        axes[name] = [_grid_value(name, v) for v in values]
    if "seeds" in data:
        seeds = data["seeds"]
        if "seed" in axes:
            raise ConfigError(f"{source}: give the seeds either as seeds or as grid.seed, not both")
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        ):
            raise ConfigError(
                f"{source}: seeds must be a non-empty list of integers >= 0, got {seeds!r}"
            )
        axes["seed"] = list(seeds)

    count = len(bases) * math.prod(len(v) for v in axes.values())
    if count > MAX_CONFIGS:
        raise ConfigError(
            f"{source}: the grid expands to {count} configs, more than {MAX_CONFIGS}; "
            f"sizes: {', '.join(f'{k}={len(v)}' for k, v in axes.items())}"
        )
    names = list(axes)
    out = []
    for i, fields in enumerate(bases):
        for combo in itertools.product(*(axes[n] for n in names)):
            point = dict(zip(names, combo, strict=True))
            where = f"{source} (run{'s[' + str(i) + ']' if 'runs' in data else ''}"
            where += (", " + ", ".join(f"{k}={v!r}" for k, v in point.items())) if point else ""
            out.append(_config({**fields, **point}, where + ")"))
    return out


def run_fields(data: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """The config fields of a file that describes one run: its ``[run]`` table, or its
    top level when it has no table (the fields are checked by :class:`RunConfig`).

    Raises
    ------
    ConfigError
        For an empty file, a sweep (``grid``, ``runs``, ``seeds``), keys beside
        ``[run]`` or tables other than it, naming ``source``.
    """
    if not data:
        raise ConfigError(
            f"{source}: empty; give a [run] table or config fields ({', '.join(_FIELDS)})"
        )
    if "run" not in data:
        tables = sorted(k for k, v in data.items() if isinstance(v, Mapping))
        if tables:
            raise ConfigError(
                f"{source}: unknown table(s) {', '.join(map(repr, tables))}; allowed top-level "
                f"keys: {', '.join(TOP_LEVEL_KEYS)}"
            )
        _check_keys(data, source, "top level")
        return dict(data)
    _check_top_level(data, source)
    sweep = sorted({"grid", "runs", "seeds"} & set(data))
    if sweep:
        raise ConfigError(f"{source}: describes a sweep ({', '.join(sweep)}), not one run")
    return _table(data["run"], source, "run")


def _check_top_level(data: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(TOP_LEVEL_KEYS)} (config fields go into the [run] table)"
        )


def _check_keys(table: Mapping[Any, Any], source: str, where: str) -> None:
    bad = [k for k in table if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{source} {where}: keys must be strings, got {bad[0]!r}")


def _table(value: Any, source: str, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: {name} must be a table of config fields, got {type(value).__name__}"
        )
    _check_keys(value, source, f"[{name}]")
    unknown = sorted(set(value) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{source} [{name}]: unknown config field(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(_FIELDS)}"
        )
    return dict(value)


def _grid_value(name: str, value: Any) -> Any:
    """One alternative of a grid axis; a bare rule string or α means a list of one."""
    if name == "rules":
        if value == "":
            return []
        if isinstance(value, str):
            return [value]
    if name == "alphas" and _is_number(value):
        return [value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _precheck(fields: Mapping[str, Any]) -> None:
    """Types that RunConfig's own checks do not catch with a ConfigError (see the report)."""
    for name in _LIST_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        if name == "alphas" and not all(_is_number(a) for a in value):
            raise ConfigError(f"alphas must be a list of numbers > 0, got {value!r}")
    for name in (*_NUMBER_FIELDS, "alphas"):
        values = fields.get(name)
        for v in values if isinstance(values, list | tuple) else [values]:
            if isinstance(v, int) and not isinstance(v, bool):
                try:
                    float(v)
                except OverflowError:
                    raise ConfigError(
                        f"{name} must be a finite number, got an integer of {v.bit_length()} bits"
                    ) from None


def _config(fields: Mapping[str, Any], where: str) -> RunConfig:
    try:
        _precheck(fields)
        return RunConfig.from_dict(dict(fields))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
